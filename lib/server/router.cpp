#include "server/router.hpp"

#include "core/json_text.hpp"
#include "core/target_path.hpp"
#include "metrics/metrics.hpp"
#include "server/token_request.hpp"

namespace token_broker {

router::router(metrics& m, readiness_check ready, request_handler* token_route)
    : metrics_(m), ready_(std::move(ready)), token_route_(token_route) {}

bool router::answer(const request& req, connection_context& ctx, response& res) {
    if (is_token_route(req.target)) {
        res.counted_as = route::token;
        if (req.method != http::verb::get && req.method != http::verb::delete_) {
            res.allow = "GET, DELETE";
            set_error(res, errc::method_not_allowed, "use GET or DELETE on /token/{userId}");
            return true;
        }
        if (!token_route_) {
            set_error(res, errc::not_ready, "the token endpoint is not available");
            return true;
        }
        return token_route_->answer(req, ctx, res);
    }

    const auto path = target_path(req.target);
    if (path == "/tokens") {
        res.counted_as = route::tokens;
        if (req.method != http::verb::post) {
            res.allow = "POST";
            set_error(res, errc::method_not_allowed, "use POST on /tokens");
            return true;
        }
        if (!token_route_) {
            set_error(res, errc::not_ready, "the token endpoint is not available");
            return true;
        }
        return token_route_->answer(req, ctx, res);
    }

    // The probes: GET, and HEAD as GET without the body.
    auto probe = [&](enum route r) {
        res.counted_as = r;
        if (req.method == http::verb::get || req.method == http::verb::head)
            return true;
        res.allow = "GET, HEAD";
        set_error(res, errc::method_not_allowed, "use GET");
        return false;
    };

    if (path == "/healthz") {
        if (probe(route::healthz))
            res.body = R"({"status":"ok"})";
    } else if (path == "/readyz") {
        if (probe(route::readyz)) {
            auto reason = ready_ ? ready_() : std::optional<std::string>("no readiness check");
            if (!reason)
                res.body = R"({"status":"ready"})";
            else
                set_error(res, errc::not_ready, *reason);
            if (redis_state_) { // the object's last members
                const auto state = redis_state_();
                res.body.pop_back();
                if (!state.up) {
                    res.body += R"(,"redis":"down"})";
                } else if (state.degraded) {
                    res.body += R"(,"redis":"degraded","redis_reason":)";
                    append_json_string(res.body, *state.degraded);
                    res.body += '}';
                } else {
                    res.body += R"(,"redis":"up"})";
                }
            }
        }
    } else if (path == "/metrics") {
        if (probe(route::metrics)) {
            res.content_type = "text/plain; version=0.0.4; charset=utf-8";
            metrics_.ready(ready_ && !ready_());
            res.body = metrics_.serialize();
        }
    } else {
        res.counted_as = route::other;
        set_error(res, errc::not_found, "no such route; try GET /token/{userId}");
    }
    return true;
}

net::awaitable<void> router::complete(const request& req, connection_context& ctx, response& res) {
    return token_route_->complete(req, ctx, res);
}

} // namespace token_broker
