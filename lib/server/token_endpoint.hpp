// GET and DELETE /token/{userId} and POST /tokens (CONTRACT.md section 3): who is asking (caller
// keys), what they ask for (target or body validation), whether they may (user patterns), then the
// answer from the token service, and an audit line for every answer (for every item of a batch).
//
// A batch's items go through the same rules and the same look-up as a GET: its hits are answered at
// once, its misses fetched concurrently on the connection's executor (duplicates and requests from
// elsewhere share one fetch), and the whole answer comes within zoom.request_timeout_ms (plus
// 200 ms): an item still waiting then is answered 504 upstream_timeout, as its GET would have been.
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
    // `batch_timeout`: zoom.request_timeout_ms.
    token_endpoint(token_service& tokens, std::shared_ptr<const authenticator> keys, log_format format,
                   std::shared_ptr<spdlog::logger> log,
                   std::chrono::milliseconds batch_timeout = zoom_config{}.request_timeout);

    // Replaces the caller keys (SIGHUP). Thread-safe; requests under way keep the keys they started with.
    void replace_keys(std::shared_ptr<const authenticator> keys);

    // Authentication, validation, authorization, DELETE and the cache: all but waiting for a fetch
    // (or, with a shared tier, for a DELETE to reach every replica), which is left in ctx.pending
    // for complete().
    bool answer(const request& req, connection_context& ctx, response& res) override;
    net::awaitable<void> complete(const request& req, connection_context& ctx, response& res) override;

private:
    // Who asks: true with ctx.pending's keys, key and key name set; else `res` holds the 401, which
    // is audited.
    bool authenticate(const request& req, connection_context& ctx, response& res) const;
    // Whether the caller may ask for `user_id`.
    bool may_ask_for(const connection_context& ctx, std::string_view user_id) const noexcept;
    // The one look at the cache for an admitted query: true when answered (status and body set,
    // audited), false for a miss (`t` holds its place).
    bool look_up(const request& req, const connection_context& ctx, const token_query& q,
                 token_service::ticket& t, unsigned& status, std::string& body);
    // The status and {"error": ...} body of `e`.
    static unsigned error_answer(const broker_error& e, std::string& body);

    bool answer_batch(const request& req, connection_context& ctx, response& res);
    net::awaitable<void> complete_batch(const request& req, connection_context& ctx, response& res);
    net::awaitable<void> complete_item(std::shared_ptr<pending_batch> batch, std::size_t index,
                                       const request* req, std::string_view key_name);
    static void render_batch(const pending_batch& batch, std::string& out);

    void audit(const request& req, unsigned status, std::string_view key_name, std::string_view user_id,
               std::string_view type, std::string_view source, std::string_view error_code) const;

    token_service& tokens_;
    std::atomic<std::shared_ptr<const authenticator>> keys_;
    log_format format_;
    std::shared_ptr<spdlog::logger> log_;
    std::chrono::milliseconds batch_timeout_;
};

} // namespace token_broker
