// The request handler of the webhook listener (CONTRACT.md section 9): `POST {webhook.path}` and
// nothing else (404 elsewhere, 405 for another method). Each request is verified (signature over the
// raw body, timestamp window), answered from the replay memory when it was seen already, read into an
// event (lib/webhook/event.hpp) and acted on through the token service: evictions are forgets with
// every guarantee of section 7, answered 200 once every replica confirmed and 503 when that is not
// confirmed within `confirm_within`. One audit line and one count of
// token_broker_webhook_events_total per request that reached the route.
#pragma once

#include "core/error.hpp"
#include "core/secret.hpp"
#include "log/log_format.hpp"
#include "server/request_handler.hpp"
#include "webhook/replay_memory.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace token_broker::webhook {

class receiver final : public request_handler {
public:
    struct settings {
        std::string path = "/zoom/webhook";
        secret secret_token;
        std::chrono::seconds tolerance{5400};
        std::string account_id;                 // zoom.account_id; empty: every account's events are acted on
        std::chrono::seconds revoked_for{3600}; // max(cache.negative_ttl_s, 1 h)
        std::chrono::milliseconds confirm_within{2500}; // for every replica to forget
        std::size_t replay_entries = 10000;
        log_format format = log_format::text;
    };
    using wall_clock = std::function<std::chrono::system_clock::time_point()>;

    // app_deauthorized: drops the Zoom access token on this replica and tells the others; an error
    // when they could not be told (the answer is then 503, so that Zoom retries). Completes on the
    // caller's executor.
    using deauthorizer = std::function<net::awaitable<result<void>>()>;

    // `tokens`, `m` and `log` must outlive the receiver. `deauthorize`: see deauthorizer; when null,
    // that event is answered 200 and counted as ignored, with a warning. `now` is the wall clock
    // (replaced in tests).
    receiver(
        settings s, token_service& tokens, metrics& m, std::shared_ptr<spdlog::logger> log,
        deauthorizer deauthorize, wall_clock now = [] { return std::chrono::system_clock::now(); });

    bool answer(const request& req, connection_context& ctx, response& res) override;
    net::awaitable<void> complete(const request& req, connection_context& ctx, response& res) override;

private:
    // Answers, remembers a final answer for replays, counts and audits.
    void finish(const request& req, response& res, std::string_view event, std::string_view outcome,
                std::string_view account, std::string_view users, const pending_webhook* p);

    settings settings_;
    token_service& tokens_;
    metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
    deauthorizer deauthorize_;
    wall_clock now_;
    replay_memory replays_;
};

} // namespace token_broker::webhook
