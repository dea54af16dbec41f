#include "server/router.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace token_broker {

std::string_view target_path(std::string_view target) noexcept {
    return target.substr(0, target.find('?'));
}

router::router(metrics& m, readiness_check ready, request_handler* token_endpoint)
    : metrics_(m), ready_(std::move(ready)), token_endpoint_(token_endpoint) {}

bool router::handle_now(const request& req, response& res) {
    return dispatch(req, res);
}

net::awaitable<void> router::handle(const request& req, response& res) {
    const bool token_route = target_path(req.target).starts_with("/token/") && token_endpoint_ &&
                             (req.method == http::verb::get || req.method == http::verb::delete_);
    if (!token_route) {
        dispatch(req, res);
        co_return;
    }
    res.counted_as = route::token;
    co_await token_endpoint_->handle(req, res);
}

bool router::dispatch(const request& req, response& res) {
    const auto path = target_path(req.target);
    const bool get = req.method == http::verb::get;

    if (path.starts_with("/token/")) {
        res.counted_as = route::token;
        if (!get && req.method != http::verb::delete_) {
            res.allow = "GET, DELETE";
            set_error(res, errc::method_not_allowed, "use GET or DELETE on /token/{userId}");
            return true;
        }
        if (!token_endpoint_) {
            set_error(res, errc::not_ready, "the token endpoint is not available");
            return true;
        }
        return token_endpoint_->handle_now(req, res);
    }

    auto probe = [&](enum route r) {
        res.counted_as = r;
        if (get)
            return true;
        res.allow = "GET";
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
        }
    } else if (path == "/metrics") {
        if (probe(route::metrics)) {
            res.content_type = "text/plain; version=0.0.4; charset=utf-8";
            res.body = metrics_.serialize();
        }
    } else {
        res.counted_as = route::other;
        set_error(res, errc::not_found, "no such route; try GET /token/{userId}");
    }
    return true;
}

} // namespace token_broker
