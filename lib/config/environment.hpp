// The environment variables that override the configuration file (CONTRACT.md section 2): the
// Zoom credentials and the Redis secrets, each also as NAME_FILE, TOKEN_BROKER_REDIS_URL,
// TOKEN_BROKER_ADDRESS, TOKEN_BROKER_PORT and TOKEN_BROKER_LOG_LEVEL. Not a public interface.
#pragma once

#include "config/config.hpp"

#include <string_view>

namespace token_broker::config_detail {

// A Zoom credential's variable and the key it overrides.
struct credential_variable {
    std::string_view name;
    std::string zoom_config::*member;
    std::string_view key;
};

inline constexpr credential_variable credential_variables[] = {
    {"ZOOM_ACCOUNT_ID", &zoom_config::account_id, "zoom.account_id"},
    {"ZOOM_CLIENT_ID", &zoom_config::client_id, "zoom.client_id"},
    {"ZOOM_CLIENT_SECRET", &zoom_config::client_secret, "zoom.client_secret"},
    {"ZOOM_ACCESS_TOKEN", &zoom_config::access_token, "zoom.access_token"},
};

// Applies the variables `env` sets to `cfg`, each checked as its key is. A variable set to the
// empty string counts as not set. Throws config_error naming the variable.
void apply_environment(config& cfg, const env_lookup& env);

} // namespace token_broker::config_detail
