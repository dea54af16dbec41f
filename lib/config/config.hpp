// The broker's configuration: one JSON file, overridden by environment variables
// (CONTRACT.md section 2). Every key has a default except the Zoom credentials.
#pragma once

#include "auth/caller_keys.hpp"
#include "core/secret.hpp"
#include "log/log_format.hpp"

#include <spdlog/common.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker {

using milliseconds = std::chrono::milliseconds;
using seconds = std::chrono::seconds;

struct listener_tls_config {
    std::string cert_file;      // PEM chain; with key_file the listener speaks HTTPS
    std::string key_file;       // PEM private key
    std::string client_ca_file; // PEM; when set, clients must present a certificate it signed
    bool enabled() const { return !cert_file.empty(); }
};

struct server_config {
    std::string address = "127.0.0.1"; // an IPv4 or IPv6 address, or "localhost"
    std::uint16_t port = 8080;
    unsigned threads = 1;
    milliseconds header_timeout{10000}; // for a request to arrive from its first byte, and for its
                                        // answer to be taken; not while the answer is made
    milliseconds idle_timeout{60000};   // between requests on a kept-alive connection
    milliseconds drain_timeout{10000};  // for requests in flight at shutdown
    std::size_t max_header_bytes = 8192;
    std::size_t max_body_bytes = 65536;
    std::size_t max_connections = 10000;
    listener_tls_config tls;
    // Not a key of the file: the path whose POST bodies the listener keeps for its handler (every
    // other body is read and dropped). "/tokens" for the token API, webhook.path for Zoom's events.
    std::string kept_body_path = "/tokens";
};

struct zoom_config {
    std::string api_base_url = "https://api.zoom.us/v2";         // https, without a trailing slash
    std::string oauth_token_url = "https://zoom.us/oauth/token"; // https
    std::string account_id;                                      // S2S OAuth credentials...
    std::string client_id;
    std::string client_secret;
    std::string access_token; // ...or a fixed bearer token
    std::string ca_file;      // PEM bundle trusted in addition to the system store
    milliseconds connect_timeout{3000};
    milliseconds request_timeout{10000};
    std::size_t max_connections = 16;
    unsigned max_retries = 2;
    double requests_per_second = 20;

    bool uses_oauth() const { return !account_id.empty(); }
};

struct cache_config {
    std::size_t max_entries = 100000;
    seconds refresh_margin{300};
    seconds negative_ttl{30};
};

struct auth_config {
    std::vector<caller_key> keys;   // those of the file, then those of keys_file
    std::size_t keys_from_file = 0; // how many of `keys`, at the end, came from keys_file
    std::string keys_file;
    bool allow_unauthenticated = false;
};

struct log_config {
    spdlog::level::level_enum level = spdlog::level::info;
    log_format format = log_format::text;
};

// One host:port of a redis+sentinel:// or redis+cluster:// URL.
struct redis_endpoint {
    std::string host; // a DNS name or an IP literal (IPv6 without brackets)
    std::uint16_t port = 26379;
    bool operator==(const redis_endpoint&) const = default;
};

// The shared cache of replicas (CONTRACT.md section 7). Without a url there is no Redis, and every
// secret here is empty.
struct redis_config {
    std::string url;           // as configured ("" = no Redis); validated, never holds a password
    bool tls = false;          // rediss://, rediss+sentinel:// or rediss+cluster://
    std::string host;          // from url (an IPv6 address without brackets); empty under Sentinel
    std::uint16_t port = 6379; // from url (default 6379)
    int db = 0;                // the /db of the url
    std::string user;          // user@ of the url, may be empty: the data nodes' user, also under Sentinel
    secret password;           // the data nodes' password (AUTH), also under Sentinel
    // redis+sentinel://host1:26379,host2:26379/MASTERNAME[/db]: the sentinels to ask for the master
    // (in the URL's order; port 26379 by default) and the master's name. Empty: host and port are
    // the server.
    std::vector<redis_endpoint> sentinels;
    std::string master_name;
    secret sentinel_password; // AUTH of the sentinels themselves (not of the data nodes); may be empty
    // redis+cluster://host1:6379,host2:6379: nodes of a Redis Cluster to ask for its slot map (in the
    // URL's order; port 6379 by default). Empty: not a cluster.
    std::vector<redis_endpoint> cluster_seeds;
    std::string ca_file; // PEM bundle trusted in addition to the system store; rediss:// only
    std::string key_prefix = "token-broker:";
    secret encryption_key;          // 32 raw bytes (decoded from 64 hex digits), empty when no url
    secret previous_encryption_key; // 32 raw bytes or empty
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds command_timeout{250};
    std::size_t max_reply_bytes = 1048576; // what one reply may announce and hold (section 7)
    // How long a replica serves its in-memory copies after its subscription last proved alive; and
    // the life of its registration, which a forget waits for (CONTRACT.md section 7).
    std::chrono::milliseconds invalidation_lease{1000};
    // The life of a fetch's cross-replica lock, renewed by its holder while its Zoom call runs.
    std::chrono::milliseconds lock_lease{2000};
    bool enabled() const noexcept { return !url.empty(); }
    bool sentinel() const noexcept { return !sentinels.empty(); }
    bool cluster() const noexcept { return !cluster_seeds.empty(); }
};

// The listener for Zoom's event notifications (CONTRACT.md section 9). Port 0: no such listener.
struct webhook_config {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;
    std::string path = "/zoom/webhook"; // starts with '/'
    secret secret_token;                // the app's Secret Token; required when port != 0
    seconds tolerance{5400};            // how far x-zm-request-timestamp may be from the clock
    std::size_t max_body_bytes = 65536;
    listener_tls_config tls; // cert_file and key_file only (no client certificates)
    bool enabled() const noexcept { return port != 0; }
};

struct config {
    server_config server;
    zoom_config zoom;
    cache_config cache;
    auth_config auth;
    log_config log;
    redis_config redis;
    webhook_config webhook;
};

// A configuration error. what() is "config: <key>: <reason>", e.g.
// "config: zoom.request_timeout_ms: must be a positive integer". The key is the full dotted key of
// the file ("server.tls.cert_file", "auth.keys[2].sha256"), an environment variable's name
// ("TOKEN_BROKER_PORT"), or a file's name for a problem with a whole file. Neither ever holds a
// secret value.
class config_error : public std::runtime_error {
public:
    config_error(std::string key, std::string reason);
    const std::string& key() const noexcept { return key_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string key_;
    std::string reason_;
};

// Looks up an environment variable; std::nullopt when it is not set. load_config treats a variable
// set to the empty string as not set, as Docker Compose's `NAME=${NAME:-}` idiom expects.
using env_lookup = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (std::getenv).
env_lookup process_environment();

// Reads and validates the configuration file at `path`, then applies the environment overrides
// (ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET, ZOOM_ACCESS_TOKEN, TOKEN_BROKER_REDIS_PASSWORD,
// TOKEN_BROKER_REDIS_ENCRYPTION_KEY, TOKEN_BROKER_REDIS_PREVIOUS_ENCRYPTION_KEY,
// ZOOM_WEBHOOK_SECRET_TOKEN, each also as NAME_FILE, TOKEN_BROKER_REDIS_URL, TOKEN_BROKER_WEBHOOK_PORT,
// TOKEN_BROKER_ADDRESS, TOKEN_BROKER_PORT, TOKEN_BROKER_LOG_LEVEL), loads auth.keys_file, and checks the
// rules that span keys (credentials present, keys required off loopback, an encryption key with a Redis URL).
// Relative file paths in the file are resolved against the directory of `path`; those of NAME_FILE variables
// against the current directory. A NAME_FILE's content is used without its trailing whitespace (the newline
// an editor or `echo` leaves). The files named by server.tls.*, zoom.ca_file and redis.ca_file are loaded as
// they will be used (config/tls_files.hpp). Throws config_error on any problem; never returns a configuration
// that breaks the contract.
config load_config(const std::filesystem::path& path, const env_lookup& env);

// The level named by `name`: one of trace, debug, info, warn, error, critical, off (exactly so);
// std::nullopt for anything else.
std::optional<spdlog::level::level_enum> parse_log_level(std::string_view name);

// The port number written as `digits`: decimal digits only (leading zeros allowed), 1 to 65535;
// std::nullopt for anything else. For TOKEN_BROKER_PORT and the port of a URL: Boost.URL 1.81's
// port_number() wraps some values above 65535 around (boostorg/url#666, fixed in 1.82).
std::optional<std::uint16_t> parse_port_number(std::string_view digits);

// True when `address` is a loopback address (127.0.0.0/8, ::1) or "localhost".
bool is_loopback_address(std::string_view address);

} // namespace token_broker
