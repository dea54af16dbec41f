#include "config/config.hpp"

#include "config/tls_files.hpp"

#include <boost/algorithm/hex.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/grammar/ci_string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <memory>
#include <set>
#include <system_error>
#include <utility>

namespace token_broker {

namespace json = boost::json;
namespace fs = std::filesystem;

config_error::config_error(std::string key, std::string reason)
    : std::runtime_error("config: " + key + ": " + reason), key_(std::move(key)), reason_(std::move(reason)) {
}

namespace {

// ---------------------------------------------------------------------------------------------
// Files

struct file_closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

// Reads the whole file at `path` into `content`. On failure sets `ec` (ENOENT, EACCES, EISDIR...).
bool try_read_file(const fs::path& path, std::string& content, std::error_code& ec) {
    std::unique_ptr<std::FILE, file_closer> file(std::fopen(path.c_str(), "rb"));
    if (!file) {
        ec.assign(errno, std::generic_category());
        return false;
    }
    content.clear();
    char buffer[8192];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get()))
        content.append(buffer, n);
    if (std::ferror(file.get())) {
        ec.assign(errno, std::generic_category());
        return false;
    }
    return true;
}

// Throws config_error(key, "cannot read <path>: <reason>") unless the file at `path` can be read.
void check_readable_file(const std::string& path, const std::string& key) {
    std::string content;
    std::error_code ec;
    if (!try_read_file(path, content, ec))
        throw config_error(key, "cannot read " + path + ": " + ec.message());
}

// ---------------------------------------------------------------------------------------------
// JSON text

// Follows a parse to find what json::parse lets pass or reports without a place: the offset of a
// syntax error, and a key repeated in one object (the parser would keep the last value silently,
// and a repeated key is as likely a mistake as a misspelt one).
class json_checker {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    using error_code = boost::system::error_code;
    using string_view = json::string_view;

    // The dotted path of the first repeated key, once one was found.
    std::optional<std::string> repeated_key;

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_array_begin(error_code&) {
        frames_.push_back(frame{false, {}, {}, 0});
        return true;
    }
    bool on_array_end(std::size_t, error_code&) {
        frames_.pop_back();
        return value_done();
    }
    bool on_object_begin(error_code&) {
        frames_.push_back(frame{true, {}, {}, 0});
        return true;
    }
    bool on_object_end(std::size_t, error_code&) {
        frames_.pop_back();
        return value_done();
    }
    bool on_string_part(string_view, std::size_t, error_code&) { return true; }
    bool on_string(string_view, std::size_t, error_code&) { return value_done(); }
    bool on_key_part(string_view s, std::size_t, error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(string_view s, std::size_t, error_code& ec) {
        key_.append(s.data(), s.size());
        frame& f = frames_.back();
        const bool fresh = f.keys.insert(key_).second;
        f.key = std::move(key_);
        key_.clear();
        if (fresh)
            return true;
        repeated_key = path();
        ec = json::error::syntax;
        return false;
    }
    bool on_number_part(string_view, error_code&) { return true; }
    bool on_int64(std::int64_t, string_view, error_code&) { return value_done(); }
    bool on_uint64(std::uint64_t, string_view, error_code&) { return value_done(); }
    bool on_double(double, string_view, error_code&) { return value_done(); }
    bool on_bool(bool, error_code&) { return value_done(); }
    bool on_null(error_code&) { return value_done(); }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }

private:
    struct frame {
        bool is_object;
        std::set<std::string, std::less<>> keys;
        std::string key;   // objects: the current member's key
        std::size_t index; // arrays: the current element's index
    };

    bool value_done() {
        if (!frames_.empty() && !frames_.back().is_object)
            ++frames_.back().index;
        return true;
    }

    std::string path() const {
        std::string p;
        for (const frame& f : frames_) {
            if (!f.is_object) {
                p += "[" + std::to_string(f.index) + "]";
                continue;
            }
            if (!p.empty())
                p += '.';
            p += f.key;
        }
        return p;
    }

    std::vector<frame> frames_;
    std::string key_;
};

// Joins a file's name and a dotted key found in it: "keys.json[0].name", "keys.json: keys".
std::string key_in_file(const std::string& file, const std::string& key) {
    if (file.empty())
        return key;
    if (key.empty() || key.front() == '[')
        return file + key;
    return file + ": " + key;
}

// Parses the JSON text of the file `file`. Errors name its line and column but never quote the
// text, which may hold a secret. Keys are reported relative to `key_root` (see key_in_file).
json::value parse_json(std::string_view text, const std::string& file, const std::string& key_root) {
    // RFC 8259 section 8.1 lets a parser ignore a UTF-8 byte-order mark, which some editors write.
    // One of UTF-16 or UTF-32 says the file is not UTF-8 at all.
    if (text.starts_with("\xEF\xBB\xBF"))
        text.remove_prefix(3);
    else if (text.starts_with("\xFE\xFF") || text.starts_with("\xFF\xFE") ||
             text.starts_with(std::string_view("\0\0\xFE\xFF", 4)))
        throw config_error(file, "starts with a UTF-16 or UTF-32 byte-order mark: save it as UTF-8");
    json::basic_parser<json_checker> checker{json::parse_options{}};
    boost::system::error_code ec;
    const std::size_t consumed = checker.write_some(false, text.data(), text.size(), ec);
    if (checker.handler().repeated_key)
        throw config_error(key_in_file(key_root, *checker.handler().repeated_key), "repeated key");
    std::string error;
    if (ec)
        error = ec.message();
    else if (consumed < text.size())
        error = "unexpected text after the JSON value";
    if (!error.empty()) {
        const std::string_view before = text.substr(0, consumed);
        const auto line = std::count(before.begin(), before.end(), '\n') + 1;
        const auto line_start = before.rfind('\n');
        const auto column = consumed - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
        throw config_error(file, "invalid JSON: line " + std::to_string(line) + ", column " +
                                     std::to_string(column) + ": " + error);
    }
    return json::parse(text); // cannot fail: the text was just checked
}

// ---------------------------------------------------------------------------------------------
// Values

std::string join_key(const std::string& parent, std::string_view name) {
    return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// How one member of an object is read: `read(value, full dotted key)`.
struct field {
    std::string_view name;
    std::function<void(const json::value&, const std::string&)> read;
};

// Reads the members of the object `v` with `fields`; any other member is an unknown key.
void read_object(const json::value& v, const std::string& key, std::initializer_list<field> fields) {
    const json::object* object = v.if_object();
    if (!object)
        throw config_error(key, "must be an object");
    for (const auto& member : *object) {
        const std::string_view name(member.key().data(), member.key().size());
        const std::string member_key = join_key(key, name);
        const auto f =
            std::find_if(fields.begin(), fields.end(), [&](const field& f) { return f.name == name; });
        if (f == fields.end())
            throw config_error(member_key, "unknown key");
        f->read(member.value(), member_key);
    }
}

std::string read_string(const json::value& v, const std::string& key) {
    if (const json::string* s = v.if_string())
        return std::string(s->data(), s->size());
    throw config_error(key, "must be a string");
}

bool read_bool(const json::value& v, const std::string& key) {
    if (const bool* b = v.if_bool())
        return *b;
    throw config_error(key, "must be true or false");
}

struct integer_rule {
    std::int64_t min;
    std::int64_t max;
    std::string_view reason;    // for anything but an integer from min to max...
    std::string_view too_large; // ...except one above max, when this is not empty
};

std::int64_t read_integer(const json::value& v, const std::string& key, const integer_rule& rule) {
    std::optional<std::int64_t> number;
    bool above_max = false;
    if (const std::int64_t* n = v.if_int64())
        number = *n;
    else if (const std::uint64_t* u = v.if_uint64()) {
        if (*u <= std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            number = std::int64_t(*u);
        else
            above_max = true;
    }
    above_max = above_max || (number && *number > rule.max);
    if (above_max && !rule.too_large.empty())
        throw config_error(key, std::string(rule.too_large));
    if (!number || above_max || *number < rule.min)
        throw config_error(key, std::string(rule.reason));
    return *number;
}

constexpr integer_rule port_rule{1, 65535, "must be an integer from 1 to 65535", {}};
constexpr integer_rule timeout_rule{1, 86'400'000, "must be a positive integer",
                                    "must be at most 86400000 (one day)"};
constexpr integer_rule drain_rule{0, 86'400'000, "must be a non-negative integer",
                                  "must be at most 86400000 (one day)"};
constexpr integer_rule seconds_rule{0, 31'536'000, "must be a non-negative integer",
                                    "must be at most 31536000 (one year)"};

double read_rate(const json::value& v, const std::string& key) {
    // Below one call every 10 s, a second miss waits longer than the default zoom.request_timeout_ms
    // for its turn; far below, the interval between calls overflows the clock's range.
    constexpr double min_rate = 0.1;
    constexpr double max_rate = 100'000;
    if (!v.is_number())
        throw config_error(key, "must be a positive number");
    const double rate = v.to_number<double>();
    if (!(rate > 0))
        throw config_error(key, "must be a positive number");
    if (rate < min_rate)
        throw config_error(key, "must be at least 0.1 (one request every 10 s)");
    if (rate > max_rate)
        throw config_error(key, "must be at most 100000");
    return rate;
}

// Every server.address and TOKEN_BROKER_ADDRESS is one of these: the listener binds it as is.
void check_listen_address(const std::string& address, const std::string& key) {
    if (address == "localhost")
        return;
    boost::system::error_code ec;
    boost::asio::ip::make_address(address, ec);
    if (ec)
        throw config_error(key, "must be an IP address (such as 127.0.0.1, 0.0.0.0 or ::) or localhost");
}

std::string read_https_url(const json::value& v, const std::string& key, bool drop_trailing_slash) {
    const std::string text = read_string(v, key);
    const auto parsed = boost::urls::parse_uri(text);
    if (!parsed || parsed->scheme_id() != boost::urls::scheme::https || parsed->encoded_host().empty())
        throw config_error(key, "must be an https:// URL with a host");
    if (parsed->has_userinfo())
        throw config_error(key, "must not hold a user name or password");
    if (parsed->has_port() && !parse_port_number(parsed->port()))
        throw config_error(key, "must have a port from 1 to 65535, if any");
    if (parsed->has_query() || parsed->has_fragment())
        throw config_error(key, "must not have a query or a fragment");
    if (!drop_trailing_slash)
        return text;
    // Paths are appended to the base ("/users/..."): "https://api.zoom.us/v2/" must not make "//".
    boost::urls::url url(*parsed);
    std::string path(url.encoded_path());
    while (!path.empty() && path.back() == '/')
        path.pop_back();
    url.set_encoded_path(path);
    return std::string(url.buffer());
}

// Zoom's ids, secrets and tokens are visible ASCII; anything else (a space, a line break from a
// secret file) would end up in an HTTP header or be a copy-and-paste accident.
void check_credential_text(const std::string& value, const std::string& key) {
    if (!std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
        throw config_error(key, "must hold only visible ASCII characters (no spaces or line breaks)");
}

std::string read_credential(const json::value& v, const std::string& key) {
    std::string value = read_string(v, key);
    check_credential_text(value, key);
    return value;
}

// A relative path is taken relative to `base_dir`, the configuration file's directory, so that the
// meaning of the file does not depend on where the broker was started from.
std::string read_path(const json::value& v, const std::string& key, const fs::path& base_dir) {
    const std::string text = read_string(v, key);
    if (text.empty())
        return text;
    const fs::path path(text);
    return path.is_absolute() ? text : (base_dir / path).lexically_normal().string();
}

log_format read_log_format(const json::value& v, const std::string& key) {
    const std::string text = read_string(v, key);
    if (text == "text")
        return log_format::text;
    if (text == "json")
        return log_format::json;
    throw config_error(key, "must be text or json");
}

constexpr std::string_view log_level_reason = "must be one of trace, debug, info, warn, error, critical, off";

spdlog::level::level_enum to_log_level(const std::string& text, const std::string& key) {
    if (auto level = parse_log_level(text))
        return *level;
    throw config_error(key, std::string(log_level_reason));
}

std::array<std::uint8_t, 32> read_sha256(const json::value& v, const std::string& key) {
    const std::string text = read_string(v, key);
    if (text.size() != 64 ||
        !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
        throw config_error(key, "must be 64 hexadecimal digits: the SHA-256 of the key");
    std::array<std::uint8_t, 32> digest{};
    boost::algorithm::unhex(text.begin(), text.end(), digest.begin());
    return digest;
}

// Visible ASCII only: no space, no control character (a line break in a key's name would forge a
// log line), nothing a user id can hold (CONTRACT.md section 3: user ids are visible ASCII).
bool is_visible_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::vector<std::string> read_user_patterns(const json::value& v, const std::string& key) {
    const json::array* list = v.if_array();
    if (!list)
        throw config_error(key, "must be an array of user ids or patterns");
    std::vector<std::string> users;
    for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string element_key = key + "[" + std::to_string(i) + "]";
        const json::string* user = (*list)[i].if_string();
        if (!user || user->empty())
            throw config_error(element_key, "must be a non-empty string");
        if (!is_visible_ascii(*user))
            throw config_error(element_key, "must hold only visible ASCII characters (no spaces or control "
                                            "characters): no user id holds anything else");
        users.emplace_back(user->data(), user->size());
    }
    return users;
}

// ---------------------------------------------------------------------------------------------
// Fields

template <class Integer>
field integer_field(std::string_view name, Integer& out, integer_rule rule) {
    return {name, [&out, rule](const json::value& v, const std::string& key) {
                out = static_cast<Integer>(read_integer(v, key, rule));
            }};
}

template <class Duration>
field duration_field(std::string_view name, Duration& out, integer_rule rule) {
    return {name, [&out, rule](const json::value& v, const std::string& key) {
                out = Duration(read_integer(v, key, rule));
            }};
}

field path_field(std::string_view name, std::string& out, const fs::path& base_dir) {
    return {name, [&out, &base_dir](const json::value& v, const std::string& key) {
                out = read_path(v, key, base_dir);
            }};
}

field credential_field(std::string_view name, std::string& out) {
    return {name, [&out](const json::value& v, const std::string& key) { out = read_credential(v, key); }};
}

// ---------------------------------------------------------------------------------------------
// Sections

void read_server(const json::value& v, const std::string& key, const fs::path& base_dir, server_config& s) {
    read_object(
        v, key,
        {
            {"address",
             [&](const json::value& v, const std::string& k) {
                 s.address = read_string(v, k);
                 check_listen_address(s.address, k);
             }},
            integer_field("port", s.port, port_rule),
            integer_field("threads", s.threads, {1, 64, "must be an integer from 1 to 64", {}}),
            duration_field("header_timeout_ms", s.header_timeout, timeout_rule),
            duration_field("idle_timeout_ms", s.idle_timeout, timeout_rule),
            duration_field("drain_timeout_ms", s.drain_timeout, drain_rule),
            integer_field("max_header_bytes", s.max_header_bytes,
                          {1024, 1'048'576, "must be an integer from 1024 to 1048576", {}}),
            integer_field("max_body_bytes", s.max_body_bytes,
                          {1, 1'048'576, "must be a positive integer", "must be at most 1048576 (1 MiB)"}),
            integer_field("max_connections", s.max_connections,
                          {1, 1'000'000, "must be a positive integer", "must be at most 1000000"}),
            {"tls",
             [&](const json::value& v, const std::string& k) {
                 read_object(v, k,
                             {
                                 path_field("cert_file", s.tls.cert_file, base_dir),
                                 path_field("key_file", s.tls.key_file, base_dir),
                                 path_field("client_ca_file", s.tls.client_ca_file, base_dir),
                             });
             }},
        });
}

void read_zoom(const json::value& v, const std::string& key, const fs::path& base_dir, zoom_config& z) {
    read_object(
        v, key,
        {
            {"api_base_url", [&](const json::value& v,
                                 const std::string& k) { z.api_base_url = read_https_url(v, k, true); }},
            {"oauth_token_url",
             [&](const json::value& v, const std::string& k) {
                 z.oauth_token_url = read_https_url(v, k, false);
             }},
            credential_field("account_id", z.account_id),
            credential_field("client_id", z.client_id),
            credential_field("client_secret", z.client_secret),
            credential_field("access_token", z.access_token),
            path_field("ca_file", z.ca_file, base_dir),
            duration_field("connect_timeout_ms", z.connect_timeout, timeout_rule),
            duration_field("request_timeout_ms", z.request_timeout, timeout_rule),
            integer_field("max_connections", z.max_connections,
                          {1, 1024, "must be an integer from 1 to 1024", {}}),
            integer_field("max_retries", z.max_retries, {0, 10, "must be an integer from 0 to 10", {}}),
            {"requests_per_second",
             [&](const json::value& v, const std::string& k) { z.requests_per_second = read_rate(v, k); }},
        });
}

void read_cache(const json::value& v, const std::string& key, cache_config& c) {
    read_object(
        v, key,
        {
            integer_field("max_entries", c.max_entries,
                          {1, 100'000'000, "must be a positive integer", "must be at most 100000000"}),
            duration_field("refresh_margin_s", c.refresh_margin, seconds_rule),
            duration_field("negative_ttl_s", c.negative_ttl, seconds_rule),
        });
}

void read_auth(const json::value& v, const std::string& key, const fs::path& base_dir, auth_config& a) {
    read_object(
        v, key,
        {
            {"keys", [&](const json::value& v, const std::string& k) { a.keys = parse_caller_keys(v, k); }},
            path_field("keys_file", a.keys_file, base_dir),
            {"allow_unauthenticated",
             [&](const json::value& v, const std::string& k) { a.allow_unauthenticated = read_bool(v, k); }},
        });
}

void read_log(const json::value& v, const std::string& key, log_config& l) {
    read_object(
        v, key,
        {
            {"level", [&](const json::value& v,
                          const std::string& k) { l.level = to_log_level(read_string(v, k), k); }},
            {"format", [&](const json::value& v, const std::string& k) { l.format = read_log_format(v, k); }},
        });
}

// ---------------------------------------------------------------------------------------------
// Redis (CONTRACT.md sections 2 and 7)

// Sets the url and the parts of `r` taken from it: redis://[user@]host[:port][/db], or rediss://
// for TLS. Never quotes the text, which might hold a password.
void read_redis_url(const std::string& text, const std::string& key, redis_config& r) {
    namespace urls = boost::urls;
    const std::string form =
        "must be a redis:// or rediss:// URL with a host, an optional port and an optional /db number";
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
        const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
        if (ec != std::errc{} || end != path.data() + path.size() || db < 0)
            throw config_error(key, "must name its database as /0, /1 ...: a number from 0 to 2147483647");
    }
    std::string host = parsed->host_address();
    std::string user = parsed->has_userinfo() ? std::string(parsed->user()) : std::string();
    if (!is_visible_ascii(host) || !is_visible_ascii(user))
        throw config_error(key, "must hold only visible ASCII characters in its host and user name");
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

void read_redis(const json::value& v, const std::string& key, const fs::path& base_dir, redis_config& r) {
    read_object(v, key,
                {
                    {"url",
                     [&](const json::value& v, const std::string& k) {
                         if (std::string text = read_string(v, k); !text.empty())
                             read_redis_url(text, k, r);
                     }},
                    {"password",
                     [&](const json::value& v, const std::string& k) {
                         r.password = read_redis_password(read_string(v, k), k);
                     }},
                    path_field("ca_file", r.ca_file, base_dir),
                    {"key_prefix",
                     [&](const json::value& v, const std::string& k) {
                         r.key_prefix = read_string(v, k);
                         if (r.key_prefix.size() > 64 || !is_visible_ascii(r.key_prefix))
                             throw config_error(k, "must be at most 64 visible ASCII characters (no spaces)");
                     }},
                    {"encryption_key",
                     [&](const json::value& v, const std::string& k) {
                         if (std::string text = read_string(v, k); !text.empty())
                             r.encryption_key = read_encryption_key(text, k);
                     }},
                    {"previous_encryption_key",
                     [&](const json::value& v, const std::string& k) {
                         if (std::string text = read_string(v, k); !text.empty())
                             r.previous_encryption_key = read_encryption_key(text, k);
                     }},
                    duration_field("connect_timeout_ms", r.connect_timeout, timeout_rule),
                    duration_field("command_timeout_ms", r.command_timeout, timeout_rule),
                });
}

// ---------------------------------------------------------------------------------------------
// Environment

std::optional<std::string> lookup(const env_lookup& env, std::string_view name) {
    auto value = env(name);
    if (value && value->empty())
        return std::nullopt;
    return value;
}

// The content of a NAME_FILE secret file, without the trailing whitespace.
std::string read_secret_file(const std::string& path, const std::string& variable) {
    std::string content;
    std::error_code ec;
    if (!try_read_file(path, content, ec))
        throw config_error(variable, "cannot read " + path + ": " + ec.message());
    const auto end = content.find_last_not_of(" \t\r\n");
    content.erase(end == std::string::npos ? 0 : end + 1);
    if (content.empty())
        throw config_error(variable, path + " is empty");
    return content;
}

struct credential_variable {
    std::string_view name;
    std::string zoom_config::*member;
    std::string_view key;
};

constexpr credential_variable credential_variables[] = {
    {"ZOOM_ACCOUNT_ID", &zoom_config::account_id, "zoom.account_id"},
    {"ZOOM_CLIENT_ID", &zoom_config::client_id, "zoom.client_id"},
    {"ZOOM_CLIENT_SECRET", &zoom_config::client_secret, "zoom.client_secret"},
    {"ZOOM_ACCESS_TOKEN", &zoom_config::access_token, "zoom.access_token"},
};

// A secret given as NAME, or in the file NAME_FILE names.
struct secret_variable {
    std::string value;
    std::string name; // NAME or NAME_FILE, whichever was set, for error messages
};

std::optional<secret_variable> lookup_secret(const env_lookup& env, const std::string& name) {
    const std::string file_name = name + "_FILE";
    const auto value = lookup(env, name);
    const auto file = lookup(env, file_name);
    if (value && file)
        throw config_error(file_name, "cannot be set together with " + name);
    if (value)
        return secret_variable{*value, name};
    if (file)
        return secret_variable{read_secret_file(*file, file_name), file_name};
    return std::nullopt;
}

void apply_environment(config& cfg, const env_lookup& env) {
    for (const credential_variable& variable : credential_variables) {
        if (auto found = lookup_secret(env, std::string(variable.name))) {
            check_credential_text(found->value, found->name);
            cfg.zoom.*variable.member = std::move(found->value);
        }
    }
    if (auto url = lookup(env, "TOKEN_BROKER_REDIS_URL"))
        read_redis_url(*url, "TOKEN_BROKER_REDIS_URL", cfg.redis);
    if (auto found = lookup_secret(env, "TOKEN_BROKER_REDIS_PASSWORD"))
        cfg.redis.password = read_redis_password(found->value, found->name);
    if (auto found = lookup_secret(env, "TOKEN_BROKER_REDIS_ENCRYPTION_KEY"))
        cfg.redis.encryption_key = read_encryption_key(found->value, found->name);
    if (auto found = lookup_secret(env, "TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY"))
        cfg.redis.previous_encryption_key = read_encryption_key(found->value, found->name);
    if (auto address = lookup(env, "TOKEN_BROKER_ADDRESS")) {
        check_listen_address(*address, "TOKEN_BROKER_ADDRESS");
        cfg.server.address = *address;
    }
    if (auto port = lookup(env, "TOKEN_BROKER_PORT")) {
        const auto number = parse_port_number(*port);
        if (!number)
            throw config_error("TOKEN_BROKER_PORT", std::string(port_rule.reason));
        cfg.server.port = *number;
    }
    if (auto level = lookup(env, "TOKEN_BROKER_LOG_LEVEL"))
        cfg.log.level = to_log_level(*level, "TOKEN_BROKER_LOG_LEVEL");
}

// ---------------------------------------------------------------------------------------------
// Rules that span keys

void check_credentials(const zoom_config& z) {
    const bool any_oauth = !z.account_id.empty() || !z.client_id.empty() || !z.client_secret.empty();
    if (any_oauth && !z.access_token.empty())
        throw config_error("zoom", "both S2S OAuth credentials (zoom.account_id, zoom.client_id, "
                                   "zoom.client_secret) and zoom.access_token are set, in the file or the "
                                   "environment: set only one");
    if (!any_oauth && z.access_token.empty())
        throw config_error("zoom", "no credentials: set zoom.account_id, zoom.client_id and "
                                   "zoom.client_secret, or zoom.access_token");
    if (!any_oauth)
        return;
    for (const credential_variable& variable : credential_variables) {
        if (variable.member != &zoom_config::access_token && (z.*variable.member).empty())
            throw config_error(std::string(variable.key), "is required for S2S OAuth: set it, or " +
                                                              std::string(variable.name) + " or " +
                                                              std::string(variable.name) + "_FILE");
    }
}

void check_redis(redis_config& r) {
    if (!r.enabled()) {
        // No Redis: nothing here is used, so nothing secret is kept.
        r.password = {};
        r.encryption_key = {};
        r.previous_encryption_key = {};
        return;
    }
    if (r.encryption_key.empty())
        throw config_error("redis.encryption_key",
                           "is required with redis.url: 64 hexadecimal digits (32 bytes), in the file or in "
                           "TOKEN_BROKER_REDIS_ENCRYPTION_KEY or TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE");
    if (!r.ca_file.empty() && !r.tls)
        throw config_error("redis.ca_file", "is only for TLS: redis.url must then be rediss://");
}

void check_files(const config& cfg) {
    const listener_tls_config& tls = cfg.server.tls;
    if (!tls.cert_file.empty() && tls.key_file.empty())
        throw config_error("server.tls.key_file", "is required with server.tls.cert_file");
    if (tls.cert_file.empty() && !tls.key_file.empty())
        throw config_error("server.tls.cert_file", "is required with server.tls.key_file");
    if (!tls.client_ca_file.empty() && tls.cert_file.empty())
        throw config_error("server.tls.client_ca_file", "needs server.tls.cert_file and server.tls.key_file");
    const std::pair<const std::string*, std::string_view> files[] = {
        {&tls.cert_file, "server.tls.cert_file"},
        {&tls.key_file, "server.tls.key_file"},
        {&tls.client_ca_file, "server.tls.client_ca_file"},
        {&cfg.zoom.ca_file, "zoom.ca_file"},
        {&cfg.redis.ca_file, "redis.ca_file"},
    };
    for (const auto& [file, key] : files) {
        if (!file->empty())
            check_readable_file(*file, std::string(key));
    }
    // Loaded as they will be used, so that what starting would find is found now.
    if (tls.enabled())
        make_listener_tls_context(tls);
    if (!cfg.zoom.ca_file.empty())
        check_ca_file(cfg.zoom.ca_file, "zoom.ca_file");
    if (!cfg.redis.ca_file.empty())
        check_ca_file(cfg.redis.ca_file, "redis.ca_file");
}

void load_auth_keys_file(auth_config& auth) {
    std::vector<caller_key> file_keys;
    try {
        file_keys = load_keys_file(auth.keys_file);
    } catch (const config_error& e) {
        throw config_error("auth.keys_file", e.key() + ": " + e.reason());
    }
    for (const caller_key& key : file_keys) {
        for (const caller_key& other : auth.keys) {
            if (key.name == other.name)
                throw config_error("auth.keys_file", auth.keys_file + ": key name \"" + key.name +
                                                         "\" is also used in auth.keys");
            if (key.sha256 == other.sha256)
                throw config_error("auth.keys_file", auth.keys_file + ": key \"" + key.name +
                                                         "\" has the same sha256 as \"" + other.name +
                                                         "\" in auth.keys");
        }
    }
    auth.keys_from_file = file_keys.size();
    auth.keys.insert(auth.keys.end(), std::make_move_iterator(file_keys.begin()),
                     std::make_move_iterator(file_keys.end()));
}

void check_auth(const config& cfg) {
    if (cfg.auth.keys.empty() && !cfg.auth.allow_unauthenticated && !is_loopback_address(cfg.server.address))
        throw config_error("auth.keys", "no caller keys, and the listener address " + cfg.server.address +
                                            " is not loopback: add auth.keys or auth.keys_file, or set "
                                            "auth.allow_unauthenticated to true");
}

} // namespace

env_lookup process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* value = std::getenv(std::string(name).c_str());
        if (!value)
            return std::nullopt;
        return std::string(value);
    };
}

config load_config(const fs::path& path, const env_lookup& env) {
    const std::string file = path.string();
    std::string text;
    std::error_code ec;
    if (!try_read_file(path, text, ec))
        throw config_error(file, "cannot read: " + ec.message());
    const json::value root = parse_json(text, file, "");
    if (!root.is_object())
        throw config_error(file, "must hold a JSON object");

    const fs::path absolute = fs::absolute(path, ec);
    if (ec)
        throw config_error(file, "cannot make the path absolute: " + ec.message());
    const fs::path base_dir = absolute.parent_path();

    config cfg;
    read_object(
        root, "",
        {
            {"server",
             [&](const json::value& v, const std::string& k) { read_server(v, k, base_dir, cfg.server); }},
            {"zoom",
             [&](const json::value& v, const std::string& k) { read_zoom(v, k, base_dir, cfg.zoom); }},
            {"cache", [&](const json::value& v, const std::string& k) { read_cache(v, k, cfg.cache); }},
            {"auth",
             [&](const json::value& v, const std::string& k) { read_auth(v, k, base_dir, cfg.auth); }},
            {"log", [&](const json::value& v, const std::string& k) { read_log(v, k, cfg.log); }},
            {"redis",
             [&](const json::value& v, const std::string& k) { read_redis(v, k, base_dir, cfg.redis); }},
        });
    apply_environment(cfg, env);
    check_credentials(cfg.zoom);
    check_redis(cfg.redis);
    check_files(cfg);
    if (!cfg.auth.keys_file.empty())
        load_auth_keys_file(cfg.auth);
    check_auth(cfg);
    return cfg;
}

std::vector<caller_key> parse_caller_keys(const json::value& list, std::string_view where) {
    const json::array* elements = list.if_array();
    if (!elements)
        throw config_error(std::string(where), "must be an array of keys");
    std::vector<caller_key> keys;
    keys.reserve(elements->size());
    for (std::size_t i = 0; i < elements->size(); ++i) {
        const std::string at = std::string(where) + "[" + std::to_string(i) + "]";
        caller_key key;
        bool has_name = false, has_sha256 = false, has_users = false;
        read_object((*elements)[i], at,
                    {
                        {"name",
                         [&](const json::value& v, const std::string& k) {
                             key.name = read_string(v, k);
                             if (key.name.empty())
                                 throw config_error(k, "must be a non-empty string");
                             if (!is_visible_ascii(key.name))
                                 throw config_error(k,
                                                    "must hold only visible ASCII characters (no spaces "
                                                    "or control characters): it is written into log lines");
                             has_name = true;
                         }},
                        {"sha256",
                         [&](const json::value& v, const std::string& k) {
                             key.sha256 = read_sha256(v, k);
                             has_sha256 = true;
                         }},
                        {"users",
                         [&](const json::value& v, const std::string& k) {
                             key.users = read_user_patterns(v, k);
                             has_users = true;
                         }},
                    });
        if (!has_name)
            throw config_error(at + ".name", "is required");
        if (!has_sha256)
            throw config_error(at + ".sha256", "is required");
        if (!has_users)
            throw config_error(at + ".users", R"(is required: [] for nobody, ["*"] for every user)");
        for (std::size_t j = 0; j < keys.size(); ++j) {
            const std::string other = std::string(where) + "[" + std::to_string(j) + "]";
            if (keys[j].name == key.name)
                throw config_error(at + ".name", "\"" + key.name + "\" is also the name of " + other);
            if (keys[j].sha256 == key.sha256)
                throw config_error(at + ".sha256", "is also the sha256 of " + other);
        }
        keys.push_back(std::move(key));
    }
    return keys;
}

std::vector<caller_key> load_keys_file(const fs::path& path) {
    const std::string file = path.string();
    std::string text;
    std::error_code ec;
    if (!try_read_file(path, text, ec))
        throw config_error(file, "cannot read: " + ec.message());
    const json::value root = parse_json(text, file, file);
    if (root.is_array())
        return parse_caller_keys(root, file);
    const json::object* object = root.if_object();
    if (!object)
        throw config_error(file, R"(must hold a JSON array of keys or an object {"keys": [...]})");
    for (const auto& member : *object) {
        if (member.key() != "keys")
            throw config_error(key_in_file(file, std::string(member.key().data(), member.key().size())),
                               "unknown key");
    }
    const json::value* keys = object->if_contains("keys");
    if (!keys)
        throw config_error(key_in_file(file, "keys"), "is required");
    return parse_caller_keys(*keys, key_in_file(file, "keys"));
}

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

bool is_loopback_address(std::string_view address) {
    namespace ip = boost::asio::ip;
    if (address == "localhost")
        return true;
    boost::system::error_code ec;
    const ip::address parsed = ip::make_address(std::string(address), ec);
    if (ec)
        return false;
    if (parsed.is_v4())
        return parsed.to_v4().is_loopback();
    const ip::address_v6 v6 = parsed.to_v6();
    if (v6.is_v4_mapped())
        return ip::make_address_v4(ip::v4_mapped, v6).is_loopback();
    return v6.is_loopback();
}

std::vector<caller_key> reload_caller_keys(const auth_config& auth) {
    auth_config fresh = auth;
    fresh.keys.resize(auth.keys.size() - auth.keys_from_file);
    fresh.keys_from_file = 0;
    if (!fresh.keys_file.empty())
        load_auth_keys_file(fresh);
    return std::move(fresh.keys);
}

} // namespace token_broker
