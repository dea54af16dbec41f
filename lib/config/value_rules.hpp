// The rules of single values that the configuration file and the environment share: a listen
// address, Zoom credential text, a log level, the parts of a Redis URL, an encryption key, a Redis
// password, and the integer ranges. Each throws config_error naming `key`, never quoting a secret.
// Not a public interface.
#pragma once

#include "config/config.hpp"
#include "config/strict_json.hpp"

#include <string>

namespace token_broker::config_detail {

constexpr integer_rule port_rule{1, 65535, "must be an integer from 1 to 65535", {}};
constexpr integer_rule timeout_rule{1, 86'400'000, "must be a positive integer",
                                    "must be at most 86400000 (one day)"};
constexpr integer_rule drain_rule{0, 86'400'000, "must be a non-negative integer",
                                  "must be at most 86400000 (one day)"};
// A lease checked or renewed three times over its life: long enough for a few round trips.
constexpr integer_rule lease_rule{30, 3'600'000, "must be an integer from 30 to 3600000",
                                  "must be at most 3600000 (one hour)"};
constexpr integer_rule seconds_rule{0, 31'536'000, "must be a non-negative integer",
                                    "must be at most 31536000 (one year)"};

// Every server.address and TOKEN_BROKER_ADDRESS is an IP address or "localhost".
void check_listen_address(const std::string& address, const std::string& key);

// Zoom's ids, secrets and tokens are visible ASCII.
void check_credential_text(const std::string& value, const std::string& key);

// webhook.path: starts with '/', at most 256 visible ASCII characters, no '?', '#' or '%'
// (the path is compared with the request target as it is, never decoded).
void check_webhook_path(const std::string& path, const std::string& key);

// The level `text` names (see parse_log_level).
spdlog::level::level_enum to_log_level(const std::string& text, const std::string& key);

// Sets r.url and the parts of `r` taken from it: redis://[user@]host[:port][/db], or rediss://, or
// redis+sentinel://[user@]host1[:port],host2[:port]/MASTERNAME[/db], or rediss+sentinel://, or
// redis+cluster://[user@]host1[:port],host2[:port][/0], or rediss+cluster://.
void read_redis_url(const std::string& text, const std::string& key, redis_config& r);

// 64 hex digits, decoded into 32 raw bytes.
secret read_encryption_key(const std::string& text, const std::string& key);

// Any text without control characters.
secret read_redis_password(const std::string& text, const std::string& key);

} // namespace token_broker::config_detail
