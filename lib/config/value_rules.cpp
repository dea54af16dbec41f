#include "config/value_rules.hpp"

#include <boost/algorithm/hex.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/url/grammar/ci_string.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

namespace token_broker {

namespace config_detail {

// Every server.address and TOKEN_BROKER_ADDRESS is one of these: the listener binds it as is.
void check_listen_address(const std::string& address, const std::string& key) {
    if (address == "localhost")
        return;
    boost::system::error_code ec;
    boost::asio::ip::make_address(address, ec);
    if (ec)
        throw config_error(key, "must be an IP address (such as 127.0.0.1, 0.0.0.0 or ::) or localhost");
}

// Zoom's ids, secrets and tokens are visible ASCII; anything else (a space, a line break from a
// secret file) would end up in an HTTP header or be a copy-and-paste accident.
void check_credential_text(const std::string& value, const std::string& key) {
    if (!std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
        throw config_error(key, "must hold only visible ASCII characters (no spaces or line breaks)");
}

void check_webhook_path(const std::string& path, const std::string& key) {
    if (path.empty() || path.front() != '/')
        throw config_error(key, "must start with '/'");
    if (path.size() > 256 || !std::all_of(path.begin(), path.end(), [](char c) {
            return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '%';
        }))
        throw config_error(key, "must be at most 256 visible ASCII characters, without '?', '#' or '%'");
}

constexpr std::string_view log_level_reason = "must be one of trace, debug, info, warn, error, critical, off";

spdlog::level::level_enum to_log_level(const std::string& text, const std::string& key) {
    if (auto level = parse_log_level(text))
        return *level;
    throw config_error(key, std::string(log_level_reason));
}

namespace {

constexpr std::string_view redis_url_form =
    "must be a redis:// or rediss:// URL with a host, an optional port and an optional /db number, a "
    "redis+sentinel:// or rediss+sentinel:// URL with sentinels and a master name, or a redis+cluster:// or "
    "rediss+cluster:// URL with some of the cluster's nodes";
constexpr std::string_view sentinel_url_form =
    "must be redis+sentinel://[user@]host1[:port],host2[:port]/MASTERNAME[/db] (or rediss+sentinel://): "
    "at least one sentinel and a master name";
constexpr std::string_view cluster_url_form =
    "must be redis+cluster://[user@]host1[:port],host2[:port] (or rediss+cluster://): at least one node";
constexpr std::string_view db_form = "must name its database as /0, /1 ...: a number from 0 to 2147483647";

int read_db(std::string_view digits, const std::string& key) {
    int db = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), db);
    if (ec != std::errc{} || end != digits.data() + digits.size() || db < 0)
        throw config_error(key, std::string(db_form));
    return db;
}

// The user and the hosts of a URL that names several (redis+sentinel://, redis+cluster://), and what
// follows them. Boost.URL does not take a list of hosts: the authority is split here, and each
// host:port and the user are read as the single-host form reads them.
struct host_list {
    std::string user;
    std::vector<redis_endpoint> hosts;
    std::string_view tail; // the path, query and fragment, as written
};

host_list read_host_list(const std::string& text, const std::string& key, std::uint16_t default_port,
                         std::string_view form) {
    const auto after_scheme = text.find("://");
    const std::string_view rest = std::string_view(text).substr(after_scheme + 3);
    const auto authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    std::string_view authority = rest.substr(0, authority_end);
    host_list out;
    out.tail = rest.substr(authority_end);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = authority.substr(0, at);
        authority.remove_prefix(at + 1);
        if (userinfo.find(':') != std::string_view::npos)
            throw config_error(key, "must not hold a password (URLs get logged): set redis.password or "
                                    "TOKEN_BROKER_REDIS_PASSWORD");
        const std::string with_user = "redis://" + std::string(userinfo) + "@h"; // parse_uri keeps a view
        const auto parsed = boost::urls::parse_uri(with_user);
        if (!parsed)
            throw config_error(key, std::string(form));
        out.user = std::string(parsed->user());
    }
    for (bool more = true; more;) {
        const auto comma = authority.find(',');
        more = comma != std::string_view::npos;
        const std::string item(authority.substr(0, comma));
        authority.remove_prefix(more ? comma + 1 : authority.size());
        const std::string one = "redis://" + item; // parse_uri keeps a view
        const auto parsed = boost::urls::parse_uri(one);
        if (item.empty() || !parsed || parsed->has_userinfo() || parsed->encoded_host().empty() ||
            !parsed->encoded_path().empty())
            throw config_error(key, std::string(form));
        if (parsed->has_port() && !parse_port_number(parsed->port()))
            throw config_error(key, "must have ports from 1 to 65535, if any");
        redis_endpoint e{parsed->host_address(),
                         parsed->has_port() ? *parse_port_number(parsed->port()) : default_port};
        if (!is_visible_ascii(e.host))
            throw config_error(key, "must hold only visible ASCII characters in its hosts and user name");
        out.hosts.push_back(std::move(e));
    }
    if (out.tail.find_first_of("?#") != std::string_view::npos)
        throw config_error(key, "must not have a query or a fragment");
    if (!is_visible_ascii(out.user))
        throw config_error(key, "must hold only visible ASCII characters in its hosts and user name");
    return out;
}

// The parts of `r` that a URL sets, before one is read.
void clear_url_parts(redis_config& r) {
    r.host.clear();
    r.port = 6379;
    r.db = 0;
    r.user.clear();
    r.sentinels.clear();
    r.master_name.clear();
    r.cluster_seeds.clear();
}

// redis+sentinel://[user@]host1[:port],host2[:port]/MASTERNAME[/db] (CONTRACT.md section 7, "Redis
// that survives a node").
void read_sentinel_url(const std::string& text, const std::string& key, bool tls, redis_config& r) {
    auto list = read_host_list(text, key, 26379, sentinel_url_form);
    // "/MASTERNAME", "/MASTERNAME/" or "/MASTERNAME/db".
    std::string_view path = list.tail.empty() ? list.tail : list.tail.substr(1);
    const auto slash = path.find('/');
    const std::string_view name = path.substr(0, slash);
    if (name.empty() || name.find('%') != std::string_view::npos || !is_visible_ascii(std::string(name)))
        throw config_error(key, std::string(sentinel_url_form));
    int db = 0;
    if (slash != std::string_view::npos && slash + 1 < path.size())
        db = read_db(path.substr(slash + 1), key);
    clear_url_parts(r);
    r.url = text;
    r.tls = tls;
    r.db = db;
    r.user = std::move(list.user);
    r.sentinels = std::move(list.hosts);
    r.master_name = std::string(name);
}

// redis+cluster://[user@]host1[:port],host2[:port][/] (CONTRACT.md section 7, "Redis that survives a
// node"): the seeds. A cluster has database 0 only, so "/0" is the one path besides "/".
void read_cluster_url(const std::string& text, const std::string& key, bool tls, redis_config& r) {
    auto list = read_host_list(text, key, 6379, cluster_url_form);
    if (!list.tail.empty() && list.tail != "/" && list.tail != "/0")
        throw config_error(key,
                           "must not name a database other than /0: a Redis Cluster has only database 0");
    clear_url_parts(r);
    r.url = text;
    r.tls = tls;
    r.user = std::move(list.user);
    r.cluster_seeds = std::move(list.hosts);
}

} // namespace

// Sets the url and the parts of `r` taken from it: redis://[user@]host[:port][/db], or rediss://
// for TLS, or redis+sentinel:// / rediss+sentinel://, or redis+cluster:// / rediss+cluster://. Never
// quotes the text, which might hold a password.
void read_redis_url(const std::string& text, const std::string& key, redis_config& r) {
    namespace urls = boost::urls;
    const std::string form(redis_url_form);
    if (const auto colon = text.find("://"); colon != std::string::npos) {
        const std::string_view scheme = std::string_view(text).substr(0, colon);
        if (urls::grammar::ci_is_equal(scheme, "redis+sentinel"))
            return read_sentinel_url(text, key, false, r);
        if (urls::grammar::ci_is_equal(scheme, "rediss+sentinel"))
            return read_sentinel_url(text, key, true, r);
        if (urls::grammar::ci_is_equal(scheme, "redis+cluster"))
            return read_cluster_url(text, key, false, r);
        if (urls::grammar::ci_is_equal(scheme, "rediss+cluster"))
            return read_cluster_url(text, key, true, r);
    }
    const auto parsed = urls::parse_uri(text);
    if (!parsed)
        throw config_error(key, form);
    const bool tls = urls::grammar::ci_is_equal(parsed->scheme(), "rediss");
    if (!tls && !urls::grammar::ci_is_equal(parsed->scheme(), "redis"))
        throw config_error(key, form);
    if (parsed->has_password())
        throw config_error(key, "must not hold a password (URLs get logged): set redis.password or "
                                "TOKEN_BROKER_REDIS_PASSWORD");
    if (parsed->encoded_host().empty())
        throw config_error(key, form);
    if (parsed->has_port() && !parse_port_number(parsed->port()))
        throw config_error(key, "must have a port from 1 to 65535, if any");
    if (parsed->has_query() || parsed->has_fragment())
        throw config_error(key, "must not have a query or a fragment");
    int db = 0;
    if (std::string_view path = parsed->encoded_path(); !path.empty() && path != "/") {
        path.remove_prefix(1); // an authority's path is empty or starts with '/'
        db = read_db(path, key);
    }
    std::string host = parsed->host_address();
    std::string user = parsed->has_userinfo() ? std::string(parsed->user()) : std::string();
    if (!is_visible_ascii(host) || !is_visible_ascii(user))
        throw config_error(key, "must hold only visible ASCII characters in its host and user name");
    clear_url_parts(r);
    r.url = text;
    r.tls = tls;
    r.host = std::move(host);
    r.port = parsed->has_port() ? *parse_port_number(parsed->port()) : std::uint16_t{6379};
    r.db = db;
    r.user = std::move(user);
}

// 64 hex digits, decoded into 32 raw bytes. Never quotes the text.
secret read_encryption_key(const std::string& text, const std::string& key) {
    if (text.size() != 64 ||
        !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
        throw config_error(key, "must be 64 hexadecimal digits (32 bytes), as `openssl rand -hex 32` writes");
    std::string bytes(32, '\0');
    boost::algorithm::unhex(text.begin(), text.end(), bytes.begin());
    return secret(std::move(bytes));
}

// A password goes into AUTH as it is: any character but a control character (a line break from a
// copy and paste), which no one means.
secret read_redis_password(const std::string& text, const std::string& key) {
    if (std::any_of(text.begin(), text.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
        throw config_error(key, "must not hold control characters (such as a line break)");
    return secret(text);
}

} // namespace config_detail

std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name) {
    using spdlog::level::level_enum;
    static constexpr std::pair<std::string_view, level_enum> levels[] = {
        {"trace", level_enum::trace}, {"debug", level_enum::debug}, {"info", level_enum::info},
        {"warn", level_enum::warn},   {"error", level_enum::err},   {"critical", level_enum::critical},
        {"off", level_enum::off},
    };
    for (const auto& [level_name, level] : levels) {
        if (name == level_name)
            return level;
    }
    return std::nullopt;
}

std::optional<std::uint16_t> parse_port_number(std::string_view digits) {
    // For an unsigned type, from_chars takes digits only: no sign, no space, no "0x".
    unsigned long number = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (ec != std::errc{} || end != digits.data() + digits.size() || number < 1 || number > 65535)
        return std::nullopt;
    return static_cast<std::uint16_t>(number);
}

} // namespace token_broker
