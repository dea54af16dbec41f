#include "config/config.hpp"

#include "config/environment.hpp"
#include "config/strict_json.hpp"
#include "config/tls_files.hpp"
#include "config/value_rules.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <system_error>
#include <utility>

namespace token_broker {

using namespace config_detail;
namespace json = boost::json;
namespace fs = std::filesystem;

config_error::config_error(std::string key, std::string reason)
    : std::runtime_error("config: " + key + ": " + reason), key_(std::move(key)), reason_(std::move(reason)) {
}

namespace {

// ---------------------------------------------------------------------------------------------
// Values

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
                    {"sentinel_password",
                     [&](const json::value& v, const std::string& k) {
                         r.sentinel_password = read_redis_password(read_string(v, k), k);
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
                    integer_field("max_reply_bytes", r.max_reply_bytes,
                                  {65536, 1'073'741'824, "must be an integer from 65536 to 1073741824", {}}),
                    duration_field("invalidation_lease_ms", r.invalidation_lease, lease_rule),
                    duration_field("lock_lease_ms", r.lock_lease, lease_rule),
                });
}

// ---------------------------------------------------------------------------------------------
// Webhooks (CONTRACT.md sections 2 and 9)

void read_webhook(const json::value& v, const std::string& key, const fs::path& base_dir, webhook_config& w) {
    read_object(
        v, key,
        {
            {"address",
             [&](const json::value& v, const std::string& k) {
                 w.address = read_string(v, k);
                 check_listen_address(w.address, k);
             }},
            integer_field("port", w.port, {0, 65535, "must be an integer from 0 (off) to 65535", {}}),
            {"path",
             [&](const json::value& v, const std::string& k) {
                 w.path = read_string(v, k);
                 check_webhook_path(w.path, k);
             }},
            {"secret_token",
             [&](const json::value& v, const std::string& k) {
                 std::string text = read_string(v, k);
                 check_credential_text(text, k);
                 w.secret_token = secret(std::move(text));
             }},
            duration_field("tolerance_s", w.tolerance, {1, 86'400, "must be an integer from 1 to 86400", {}}),
            integer_field("max_body_bytes", w.max_body_bytes,
                          {1, 1'048'576, "must be a positive integer", "must be at most 1048576 (1 MiB)"}),
            {"tls",
             [&](const json::value& v, const std::string& k) {
                 read_object(v, k,
                             {
                                 path_field("cert_file", w.tls.cert_file, base_dir),
                                 path_field("key_file", w.tls.key_file, base_dir),
                             });
             }},
        });
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
        r.sentinel_password = {};
        r.encryption_key = {};
        r.previous_encryption_key = {};
        return;
    }
    if (r.encryption_key.empty())
        throw config_error("redis.encryption_key",
                           "is required with redis.url: 64 hexadecimal digits (32 bytes), in the file or in "
                           "TOKEN_BROKER_REDIS_ENCRYPTION_KEY or TOKEN_BROKER_REDIS_ENCRYPTION_KEY_FILE");
    if (!r.ca_file.empty() && !r.tls)
        throw config_error(
            "redis.ca_file",
            "is only for TLS: redis.url must then be rediss://, rediss+sentinel:// or rediss+cluster://");
    if (!r.sentinel_password.empty() && !r.sentinel())
        throw config_error(
            "redis.sentinel_password",
            "is only for Sentinel: redis.url must then be redis+sentinel:// or rediss+sentinel://");
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

void check_webhook(webhook_config& w) {
    if (!w.enabled()) {
        w.secret_token = {}; // not used, so not kept
        return;
    }
    if (w.secret_token.empty())
        throw config_error("webhook.secret_token",
                           "is required with webhook.port: the app's Secret Token, in the file or in "
                           "ZOOM_WEBHOOK_SECRET_TOKEN or ZOOM_WEBHOOK_SECRET_TOKEN_FILE");
    const listener_tls_config& tls = w.tls;
    if (!tls.cert_file.empty() && tls.key_file.empty())
        throw config_error("webhook.tls.key_file", "is required with webhook.tls.cert_file");
    if (tls.cert_file.empty() && !tls.key_file.empty())
        throw config_error("webhook.tls.cert_file", "is required with webhook.tls.key_file");
    if (tls.enabled()) {
        check_readable_file(tls.cert_file, "webhook.tls.cert_file");
        check_readable_file(tls.key_file, "webhook.tls.key_file");
        make_listener_tls_context(tls, "webhook.tls");
    }
}

void check_auth(const config& cfg) {
    if (cfg.auth.keys.empty() && !cfg.auth.allow_unauthenticated && !is_loopback_address(cfg.server.address))
        throw config_error("auth.keys", "no caller keys, and the listener address " + cfg.server.address +
                                            " is not loopback: add auth.keys or auth.keys_file, or set "
                                            "auth.allow_unauthenticated to true");
}

} // namespace

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
            {"webhook",
             [&](const json::value& v, const std::string& k) { read_webhook(v, k, base_dir, cfg.webhook); }},
        });
    apply_environment(cfg, env);
    check_credentials(cfg.zoom);
    check_redis(cfg.redis);
    check_files(cfg);
    check_webhook(cfg.webhook);
    if (!cfg.auth.keys_file.empty())
        load_auth_keys_file(cfg.auth);
    check_auth(cfg);
    return cfg;
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

} // namespace token_broker
