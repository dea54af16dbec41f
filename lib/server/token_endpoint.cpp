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

std::optional<token_query> token_endpoint::admit(const request& req, response& res,
                                                 std::string_view& key_name) const {
    res.counted_as = route::token;
    const bool is_delete = req.method == http::verb::delete_;

    // Who: checked before anything else, so an unknown caller learns nothing and costs nothing.
    key_name = anonymous;
    const caller_key* key = nullptr;
    const auto keys = keys_.load(std::memory_order_acquire);
    if (keys && !keys->empty()) {
        auto presented = bearer_token(req.authorization);
        auto& memo = req.caller;
        if (presented && memo.keys == keys && memo.header == req.authorization) {
            key = memo.key;
        } else {
            key = presented ? keys->identify(*presented) : nullptr;
            memo.header = req.authorization;
            memo.keys = keys;
            memo.key = key;
        }
        if (!key) {
            set_error(res, errc::unauthorized,
                      presented ? "unknown caller key" : "send a caller key as Authorization: Bearer <key>");
            audit(req, res, anonymous, "-", "-", "-", code_name(errc::unauthorized));
            return std::nullopt;
        }
        key_name = key->name;
    }

    // What.
    auto query = parse_token_target(req.target, is_delete);
    if (!query) {
        set_error(res, query.error());
        audit(req, res, key_name, "-", "-", "-", code_name(query.error().code));
        return std::nullopt;
    }

    // Whether they may.
    if (key && !authenticator::may_access(*key, query->user_id)) {
        set_error(res, errc::forbidden, "this caller key may not ask for this user");
        audit(req, res, key_name, query->user_id, is_delete ? "all" : to_string(query->type), "-",
              code_name(errc::forbidden));
        return std::nullopt;
    }
    return std::move(*query);
}

bool token_endpoint::handle_now(const request& req, response& res) {
    std::string_view key_name;
    const auto q = admit(req, res, key_name);
    return !q || answer_now(req, res, *q, key_name);
}

bool token_endpoint::answer_now(const request& req, response& res, const token_query& q,
                                std::string_view key_name) {
    if (req.method == http::verb::delete_) {
        tokens_.forget(q.user_id);
        res.status = 204;
        audit(req, res, key_name, q.user_id, "all", "delete", {});
        return true;
    }
    if (!tokens_.answer_from_cache(q, res.body))
        return false;
    audit(req, res, key_name, q.user_id, to_string(q.type), "cache", {});
    return true;
}

net::awaitable<void> token_endpoint::handle(const request& req, response& res) {
    std::string_view key_name;
    const auto q = admit(req, res, key_name);
    if (!q || answer_now(req, res, *q, key_name))
        co_return;
    const auto type = to_string(q->type);
    auto answered = co_await tokens_.answer(*q, res.body);
    if (!answered) {
        set_error(res, answered.error());
        audit(req, res, key_name, q->user_id, type, "zoom", code_name(answered.error().code));
        co_return;
    }
    audit(req, res, key_name, q->user_id, type,
          answered->stale    ? "stale"
          : answered->cached ? "cache"
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
