// Routes requests: /healthz, /readyz, /metrics here, /token/{userId} to the token endpoint.
// Unknown paths are 404 not_found; a known path with another method is 405 with Allow.
#pragma once

#include "server/http_server.hpp"

#include <functional>
#include <optional>
#include <string>

namespace token_broker {

class router final : public request_handler {
public:
    // Why the broker is not ready to answer token requests, or std::nullopt when it is.
    using readiness_check = std::function<std::optional<std::string>()>;

    // `token_endpoint` answers GET and DELETE on /token/...; when null those are answered 503
    // not_ready. All references must outlive the router.
    router(metrics& m, readiness_check ready, request_handler* token_endpoint);

    bool handle_now(const request& req, response& res) override;
    net::awaitable<void> handle(const request& req, response& res) override;

private:
    // Answers every route but the token route's waiting part; false: the token endpoint must wait.
    bool dispatch(const request& req, response& res);

    metrics& metrics_;
    readiness_check ready_;
    request_handler* token_endpoint_;
};

// The path of a request target: everything before '?'.
std::string_view target_path(std::string_view target) noexcept;

} // namespace token_broker
