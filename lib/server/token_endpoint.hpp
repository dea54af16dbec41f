// GET and DELETE /token/{userId} (CONTRACT.md section 3): who is asking (caller keys), what they ask
// for (target validation), whether they may (user patterns), then the answer from the token service,
// and an audit line for every answer.
//
// The audit line's `source` says where the answer came from: `-` refused before the cache was
// looked at (401, 400, 403); `cache` from the cache, a remembered unknown user included; `stale` an
// older token because Zoom was failing; `zoom` Zoom was called for it (a new token, or Zoom's error,
// or Zoom could not be reached); `broker` refused by the broker itself without calling Zoom (its
// request budget, a 429 block, no access token); `delete` a DELETE.
#pragma once

#include "auth/auth.hpp"
#include "cache/token_service.hpp"
#include "server/request_handler.hpp"

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

    // Authentication, validation, authorization, DELETE and the cache: all but waiting for a fetch,
    // which is left in ctx.pending for complete().
    bool answer(const request& req, connection_context& ctx, response& res) override;
    net::awaitable<void> complete(const request& req, connection_context& ctx, response& res) override;

private:
    // Who asks for what, and whether they may: true when admitted, with ctx.pending's query, keys
    // and key name set; else `res` holds the error, which is audited.
    bool admit(const request& req, connection_context& ctx, response& res) const;

    void audit(const request& req, const response& res, std::string_view key_name, std::string_view user_id,
               std::string_view type, std::string_view source, std::string_view error_code) const;

    token_service& tokens_;
    std::atomic<std::shared_ptr<const authenticator>> keys_;
    log_format format_;
    std::shared_ptr<spdlog::logger> log_;
};

} // namespace token_broker
