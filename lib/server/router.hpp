// Routes requests: /healthz, /readyz, /metrics here, /token/{userId} and /tokens to the token
// endpoint.
// Unknown paths are 404 not_found; a known path with another method is 405 with Allow. HEAD is
// answered as GET on the probes (headers only); on the token route it is 405, since a HEAD that
// fetched would spend a Zoom call on an answer nobody reads (docs/CONTRACT.md section 8).
#pragma once

#include "server/request_handler.hpp"

#include <functional>
#include <optional>
#include <string>

namespace token_broker {

class metrics;

class router final : public request_handler {
public:
    // Why the broker is not ready to answer token requests, or std::nullopt when it is.
    using readiness_check = std::function<std::optional<std::string>()>;

    // `token_route` answers GET and DELETE on /token/... and POST on /tokens; when null those are
    // answered 503 not_ready. All references must outlive the router.
    router(metrics& m, readiness_check ready, request_handler* token_route);

    // With Redis configured: whether it is up now, and whether it refuses what sharing needs (the
    // reason), which /readyz's body says ("redis": "up", "down" or "degraded" with "redis_reason")
    // without changing its status (CONTRACT.md section 3). Call before serving.
    struct redis_state {
        bool up = false;
        std::optional<std::string> degraded; // the reason, when Redis answers but refuses
    };
    void report_redis(std::function<redis_state()> state) { redis_state_ = std::move(state); }

    bool answer(const request& req, connection_context& ctx, response& res) override;

    // Only the token route ever leaves work to complete: handed straight to it.
    net::awaitable<void> complete(const request& req, connection_context& ctx, response& res) override;

private:
    metrics& metrics_;
    readiness_check ready_;
    std::function<redis_state()> redis_state_;
    request_handler* token_route_;
};

} // namespace token_broker
