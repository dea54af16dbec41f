#include "redis/sentinel.hpp"

#include <algorithm>
#include <charconv>

namespace token_broker::redis {
namespace {

std::optional<std::uint16_t> port_of(std::string_view digits) {
    unsigned long n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc{} || end != digits.data() + digits.size() || n < 1 || n > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(n);
}

bool is_text(const reply& r) {
    return r.type == reply::kind::string || r.type == reply::kind::status;
}

} // namespace

std::vector<std::string> master_address_query(const std::string& master_name) {
    return {"SENTINEL", "get-master-addr-by-name", master_name};
}

result<address> master_address_of(const reply& r) {
    if (r.is_nil())
        return make_error(errc::cache_unavailable, "the sentinel does not know the master");
    if (r.is_error())
        return make_error(errc::cache_unavailable, "the sentinel refused: " + r.text);
    if (r.type != reply::kind::array || r.elements.size() != 2 || !is_text(r.elements[0]) ||
        !is_text(r.elements[1]) || r.elements[0].text.empty())
        return make_error(errc::cache_unavailable, "the sentinel answered something else than an address");
    const auto port = port_of(r.elements[1].text);
    if (!port)
        return make_error(errc::cache_unavailable, "the sentinel answered an invalid port");
    return address{r.elements[0].text, *port};
}

std::optional<std::string> role_refusal(const reply& r) {
    if (r.is_error())
        return "ROLE refused: " + r.text;
    if (r.type != reply::kind::array || r.elements.empty() || !is_text(r.elements[0]))
        return std::string("ROLE answered something else than a role");
    if (r.elements[0].text != "master")
        return "the server is not the master (ROLE says " + r.elements[0].text + ")";
    return std::nullopt;
}

std::optional<switch_master> parse_switch_master(std::string_view payload) {
    std::vector<std::string_view> words;
    while (!payload.empty()) {
        const auto space = std::min(payload.find(' '), payload.size());
        words.push_back(payload.substr(0, space));
        payload.remove_prefix(std::min(space + 1, payload.size()));
    }
    if (words.size() != 5 || words[0].empty() || words[1].empty() || words[3].empty())
        return std::nullopt;
    const auto from_port = port_of(words[2]);
    const auto to_port = port_of(words[4]);
    if (!from_port || !to_port)
        return std::nullopt;
    return switch_master{
        std::string(words[0]), {std::string(words[1]), *from_port}, {std::string(words[3]), *to_port}};
}

void sentinel_list::answered(std::size_t i) {
    if (i < order_.size())
        std::rotate(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(i),
                    order_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
}

options sentinel_link_options(const options& o, const address& a) {
    options s;
    s.tls = o.tls;
    s.ca_file = o.ca_file;
    s.host = a.host;
    s.port = a.port;
    s.password = o.sentinel_password;
    s.connect_timeout = o.connect_timeout;
    s.command_timeout = o.command_timeout;
    s.max_reply_bytes = o.max_reply_bytes;
    return s;
}

options master_link_options(const options& o, const address& a) {
    options m = o;
    m.host = a.host;
    m.port = a.port;
    return m;
}

} // namespace token_broker::redis
