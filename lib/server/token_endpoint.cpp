#include "server/token_endpoint.hpp"

#include "log/logging.hpp"
#include "server/token_request.hpp"

namespace token_broker {
namespace {

constexpr std::string_view anonymous = "-";

structured_message& audit_message(log_format format) {
    // One buffer per thread and format, reused: an audit line allocates nothing once grown.
    thread_local structured_message text(log_format::text, "audit");
    thread_local structured_message json(log_format::json, "audit");
    auto& m = format == log_format::json ? json : text;
    m.reset("audit");
    return m;
}

} // namespace

token_endpoint::token_endpoint(token_service& tokens, std::shared_ptr<const authenticator> keys,
                               log_format format, std::shared_ptr<spdlog::logger> log)
    : tokens_(tokens), keys_(std::move(keys)), format_(format), log_(std::move(log)) {}

void token_endpoint::replace_keys(std::shared_ptr<const authenticator> keys) {
    keys_.store(std::move(keys), std::memory_order_release);
}

bool token_endpoint::admit(const request& req, connection_context& ctx, response& res) const {
    res.counted_as = route::token;
    const bool is_delete = req.method == http::verb::delete_;
    auto& pending = ctx.pending;

    // Who: checked before anything else, so an unknown caller learns nothing and costs nothing.
    pending.key_name = anonymous;
    pending.keys = keys_.load(std::memory_order_acquire);
    const caller_key* key = nullptr;
    if (pending.keys && !pending.keys->empty()) {
        auto presented = bearer_token(req.authorization);
        auto& memo = ctx.caller;
        if (presented && memo.keys == pending.keys && memo.header == req.authorization) {
            key = memo.key;
        } else {
            key = presented ? pending.keys->identify(*presented) : nullptr;
            memo.header = req.authorization;
            memo.keys = pending.keys;
            memo.key = key;
        }
        if (!key) {
            set_error(res, errc::unauthorized,
                      presented ? "unknown caller key" : "send a caller key as Authorization: Bearer <key>");
            audit(req, res, anonymous, "-", "-", "-", code_name(errc::unauthorized));
            return false;
        }
        pending.key_name = key->name;
    }

    // What.
    auto query = parse_token_target(req.target, is_delete);
    if (!query) {
        set_error(res, query.error());
        audit(req, res, pending.key_name, "-", "-", "-", code_name(query.error().code));
        return false;
    }
    pending.query = std::move(*query);

    // Whether they may.
    if (key && !authenticator::may_access(*key, pending.query.user_id)) {
        set_error(res, errc::forbidden, "this caller key may not ask for this user");
        audit(req, res, pending.key_name, pending.query.user_id, is_delete ? "all" : to_string(pending.query.type),
              "-", code_name(errc::forbidden));
        return false;
    }
    return true;
}

bool token_endpoint::answer(const request& req, connection_context& ctx, response& res) {
    if (!admit(req, ctx, res))
        return true;
    auto& p = ctx.pending;
    if (req.method == http::verb::delete_) {
        tokens_.forget(p.query.user_id);
        res.status = 204;
        audit(req, res, p.key_name, p.query.user_id, "all", "delete", {});
        return true;
    }
    switch (tokens_.look_up(p.query, res.body, p.ticket)) {
    case token_service::lookup::hit:
        audit(req, res, p.key_name, p.query.user_id, to_string(p.query.type), "cache", {});
        return true;
    case token_service::lookup::unknown_user:
        set_error(res, token_service::unknown_user_error());
        audit(req, res, p.key_name, p.query.user_id, to_string(p.query.type), "cache",
              code_name(errc::user_not_found));
        return true;
    case token_service::lookup::miss:
        break;
    }
    return false;
}

net::awaitable<void> token_endpoint::complete(const request& req, connection_context& ctx, response& res) {
    auto& p = ctx.pending;
    const auto type = to_string(p.query.type);
    auto answered = co_await tokens_.complete(p.query, std::move(p.ticket), res.body);
    if (!answered) {
        set_error(res, answered.error());
        audit(req, res, p.key_name, p.query.user_id, type, answered.error().asked_zoom ? "zoom" : "broker",
              code_name(answered.error().code));
        co_return;
    }
    audit(req, res, p.key_name, p.query.user_id, type,
          *answered == answer_source::stale    ? "stale"
          : *answered == answer_source::cached ? "cache"
                                               : "zoom",
          {});
}

void token_endpoint::audit(const request& req, const response& res, std::string_view key_name,
                           std::string_view user_id, std::string_view type, std::string_view source,
                           std::string_view error_code) const {
    if (!log_->should_log(spdlog::level::info))
        return;
    auto& m = audit_message(format_);
    m.field("request_id", req.request_id)
        .field("key", key_name)
        .field("user", user_id)
        .field("type", type)
        .field("source", source)
        .field("status", static_cast<long long>(res.status));
    if (!error_code.empty())
        m.field("error", error_code);
    m.field("duration_us", static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                      std::chrono::steady_clock::now() - req.received_at)
                                                      .count()));
    log_->log(spdlog::level::info, spdlog::string_view_t(m.text()));
}

} // namespace token_broker
