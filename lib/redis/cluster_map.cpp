#include "redis/cluster_map.hpp"

#include <algorithm>
#include <charconv>

namespace token_broker::redis {
namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the Redis Cluster specification's
// reference implementation; the table is built once at compile time.
constexpr std::array<std::uint16_t, 256> crc16_table = [] {
    std::array<std::uint16_t, 256> t{};
    for (std::uint16_t i = 0; i < 256; ++i) {
        std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        t[i] = crc;
    }
    return t;
}();

std::uint16_t crc16(std::string_view bytes) noexcept {
    std::uint16_t crc = 0;
    for (const char c : bytes)
        crc = static_cast<std::uint16_t>((crc << 8) ^
                                         crc16_table[((crc >> 8) ^ static_cast<unsigned char>(c)) & 0xff]);
    return crc;
}

std::optional<std::uint16_t> read_port(std::string_view text) {
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc{} || end != text.data() + text.size() || port == 0 || port > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(port);
}

std::optional<long long> read_integer(const reply& r) {
    if (r.type == reply::kind::integer)
        return r.integer;
    return std::nullopt;
}

} // namespace

std::uint16_t key_slot(std::string_view key) noexcept {
    if (const auto open = key.find('{'); open != std::string_view::npos) {
        const auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1)
            key = key.substr(open + 1, close - open - 1);
    }
    return crc16(key) % cluster_slots;
}

std::optional<std::string_view> command_key(std::span<const std::string> args) noexcept {
    if (args.size() < 2)
        return std::nullopt;
    const auto is = [&args](std::string_view name) {
        return args[0].size() == name.size() &&
               std::equal(name.begin(), name.end(), args[0].begin(), [](char a, char b) {
                   return a == (b >= 'a' && b <= 'z' ? static_cast<char>(b - 'a' + 'A') : b);
               });
    };
    for (const auto* scripted : {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}) {
        if (!is(scripted))
            continue;
        if (args.size() < 4)
            return std::nullopt;
        unsigned keys = 0;
        const auto& n = args[2];
        const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), keys);
        if (ec != std::errc{} || end != n.data() + n.size() || keys == 0)
            return std::nullopt;
        return std::string_view(args[3]);
    }
    for (const auto* keyless :
         {"PUBLISH",      "PING",     "ECHO",    "ROLE",      "WAIT",       "SCRIPT",
          "CLUSTER",      "INFO",     "TIME",    "AUTH",      "HELLO",      "SELECT",
          "CLIENT",       "CONFIG",   "COMMAND", "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE",
          "PUNSUBSCRIBE", "FLUSHALL", "FLUSHDB", "DBSIZE"})
        if (is(keyless))
            return std::nullopt;
    return std::string_view(args[1]);
}

std::string to_string(const node_address& a) {
    return a.host + ":" + std::to_string(a.port);
}

const node_address* slot_map::master_of(std::uint16_t slot) const noexcept {
    if (slot >= cluster_slots || owner_[slot] == none)
        return nullptr;
    return &masters_[owner_[slot]];
}

bool slot_map::has_replicas(std::uint16_t slot) const noexcept {
    return slot < cluster_slots && owner_[slot] != none && replicated_[owner_[slot]];
}

bool slot_map::complete() const noexcept {
    for (const auto o : owner_)
        if (o == none)
            return false;
    return true;
}

std::uint16_t slot_map::index_of(const node_address& node) {
    for (std::size_t i = 0; i < masters_.size(); ++i)
        if (masters_[i] == node)
            return static_cast<std::uint16_t>(i);
    masters_.push_back(node);
    replicated_.push_back(false);
    return static_cast<std::uint16_t>(masters_.size() - 1);
}

void slot_map::move(std::uint16_t slot, const node_address& node) {
    if (slot < cluster_slots)
        owner_[slot] = index_of(node);
}

result<slot_map> slot_map::read(const reply& r, const node_address& asked) {
    const auto bad = [](const std::string& why) {
        return make_error(errc::cache_unavailable, "Redis Cluster answered CLUSTER SLOTS with " + why);
    };
    if (r.type != reply::kind::array)
        return bad(r.is_error() ? "an error: " + r.text.substr(0, 200) : "something that is not an array");
    slot_map m;
    m.owner_.fill(none);
    for (const auto& range : r.elements) {
        if (range.type != reply::kind::array || range.elements.size() < 3)
            return bad("a range that is not [start, end, master...]");
        const auto start = read_integer(range.elements[0]);
        const auto end = read_integer(range.elements[1]);
        if (!start || !end || *start < 0 || *end < *start || *end >= cluster_slots)
            return bad("a slot range out of 0..16383");
        const auto& master = range.elements[2];
        if (master.type != reply::kind::array || master.elements.size() < 2 ||
            master.elements[0].type != reply::kind::string || !read_integer(master.elements[1]))
            return bad("a master that is not [host, port...]");
        const auto port = *read_integer(master.elements[1]);
        if (port <= 0 || port > 65535)
            return bad("a master port out of range");
        node_address node{master.elements[0].text, static_cast<std::uint16_t>(port)};
        if (node.host.empty() || node.host == "?")
            node.host = asked.host;
        const auto owner = m.index_of(node);
        if (range.elements.size() > 3)
            m.replicated_[owner] = true;
        for (auto slot = *start; slot <= *end; ++slot)
            m.owner_[static_cast<std::size_t>(slot)] = owner;
    }
    return m;
}

std::optional<redirect> read_redirect(const reply& r, const node_address& asked) {
    if (!r.is_error())
        return std::nullopt;
    std::string_view text = r.text;
    redirect out;
    if (text.starts_with("MOVED "))
        out.what = redirect::kind::moved;
    else if (text.starts_with("ASK "))
        out.what = redirect::kind::ask;
    else
        return std::nullopt;
    text.remove_prefix(text.find(' ') + 1);
    const auto space = text.find(' ');
    if (space == std::string_view::npos)
        return std::nullopt;
    unsigned slot = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + space, slot);
    if (ec != std::errc{} || end != text.data() + space || slot >= cluster_slots)
        return std::nullopt;
    out.slot = static_cast<std::uint16_t>(slot);
    const auto address = text.substr(space + 1);
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    const auto port = read_port(address.substr(colon + 1));
    if (!port)
        return std::nullopt;
    out.to = {std::string(address.substr(0, colon)), *port};
    if (out.to.host.empty())
        out.to.host = asked.host; // "MOVED 3999 :6381": the same host as the node that answered
    return out;
}

bool is_try_again(const reply& r) noexcept {
    return r.is_error() && r.text.starts_with("TRYAGAIN");
}

} // namespace token_broker::redis
