#include "config/environment.hpp"

#include "config/strict_json.hpp"
#include "config/value_rules.hpp"

#include <cstdlib>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

namespace token_broker {

namespace config_detail {

namespace {

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

} // namespace

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
    if (auto found = lookup_secret(env, "TOKEN_BROKER_REDIS_SENTINEL_PASSWORD"))
        cfg.redis.sentinel_password = read_redis_password(found->value, found->name);
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
    if (auto found = lookup_secret(env, "ZOOM_WEBHOOK_SECRET_TOKEN")) {
        check_credential_text(found->value, found->name);
        cfg.webhook.secret_token = secret(std::move(found->value));
    }
    if (auto port = lookup(env, "TOKEN_BROKER_WEBHOOK_PORT")) {
        const auto number = *port == "0" ? std::optional<std::uint16_t>(0) : parse_port_number(*port);
        if (!number)
            throw config_error("TOKEN_BROKER_WEBHOOK_PORT", "must be an integer from 0 (off) to 65535");
        cfg.webhook.port = *number;
    }
    if (auto level = lookup(env, "TOKEN_BROKER_LOG_LEVEL"))
        cfg.log.level = to_log_level(*level, "TOKEN_BROKER_LOG_LEVEL");
}

} // namespace config_detail

env_lookup process_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const char* value = std::getenv(std::string(name).c_str());
        if (!value)
            return std::nullopt;
        return std::string(value);
    };
}

} // namespace token_broker
