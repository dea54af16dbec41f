// GET and DELETE /token/{userId} (CONTRACT.md section 3): who is asking (caller keys), what they ask
// for (target validation), whether they may (user patterns), then the answer from the token service,
// and an audit line for every answer.
#pragma once

#include "auth/auth.hpp"
#include "cache/token_service.hpp"
#include "server/http_server.hpp"

#include <atomic>
#include <memory>

namespace token_broker {

class token_endpoint final : public request_handler {
public:
    // `keys` empty (no caller keys configured, as allowed on loopback): every caller is let in, and
    // audited as "-". References must outlive the endpoint.
    token_endpoint(token_service& tokens, std::shared_ptr<const authenticator> keys, log_format format,
                   std::shared_ptr<spdlog::logger> log);

    // Replaces the caller keys (SIGHUP). Thread-safe; requests under way keep the keys they started with.
    void replace_keys(std::shared_ptr<const authenticator> keys);

    // Authentication, validation, authorization, DELETE and cache hits: everything but a Zoom fetch.
    bool handle_now(const request& req, response& res) override;
    net::awaitable<void> handle(const request& req, response& res) override;

private:
    // Who asks for what, and whether they may: the query when admitted; else `res` holds the error,
    // which is audited, and std::nullopt is returned.
    std::optional<token_query> admit(const request& req, response& res, std::string_view& key_name) const;

    // DELETE, or a cache hit: answered and audited, true. False for a miss, `res` untouched.
    bool answer_now(const request& req, response& res, const token_query& q, std::string_view key_name);

    void audit(const request& req, const response& res, std::string_view key_name, std::string_view user_id,
               std::string_view type, std::string_view source, std::string_view error_code) const;

    token_service& tokens_;
    std::atomic<std::shared_ptr<const authenticator>> keys_;
    log_format format_;
    std::shared_ptr<spdlog::logger> log_;
};

} // namespace token_broker
