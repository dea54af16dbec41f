#include "server/token_endpoint.hpp"

#include "core/spawn.hpp"
#include "log/logging.hpp"
#include "server/token_batch.hpp"
#include "server/token_request.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace token_broker {
namespace {

constexpr std::string_view anonymous = "-";

// What the broker adds to zoom.request_timeout_ms before a batch's slow items are answered as
// timed out: enough for a fetch that ends at its own deadline to be answered with its own error.
constexpr std::chrono::milliseconds batch_grace{200};

structured_message& audit_message(log_format format) {
    // One buffer per thread and format, reused: an audit line allocates nothing once grown.
    thread_local structured_message text(log_format::text, "audit");
    thread_local structured_message json(log_format::json, "audit");
    auto& m = format == log_format::json ? json : text;
    m.reset("audit");
    return m;
}

std::string_view source_of(answer_source s) noexcept {
    switch (s) {
    case answer_source::stale:
        return "stale";
    case answer_source::cached:
        return "cache";
    case answer_source::fresh:
        break;
    }
    return "zoom";
}

std::string_view source_of(const broker_error& e) noexcept {
    return e.asked_zoom ? "zoom" : "broker";
}

} // namespace

// One item of a POST /tokens: its query and, once answered, its GET's status and body.
struct batch_item_state {
    token_query query;
    token_service::ticket ticket;
    unsigned status = 0; // 0 while it waits for a fetch
    std::string body;    // the GET's body: the answer, or {"error": ...}
};

// A batch whose misses are being fetched. Lives on the connection's executor; shared with the item
// coroutines, which may end after the batch was answered (their fetches still fill the cache).
struct pending_batch {
    std::vector<batch_item_state> items;
    std::size_t waiting = 0;
    bool answered = false; // the deadline passed, or every item is in
    std::optional<net::steady_timer> deadline;
};

token_endpoint::token_endpoint(token_service& tokens, std::shared_ptr<const authenticator> keys,
                               log_format format, std::shared_ptr<spdlog::logger> log,
                               std::chrono::milliseconds batch_timeout)
    : tokens_(tokens), keys_(std::move(keys)), format_(format), log_(std::move(log)),
      batch_timeout_(batch_timeout) {}

void token_endpoint::replace_keys(std::shared_ptr<const authenticator> keys) {
    keys_.store(std::move(keys), std::memory_order_release);
}

bool token_endpoint::authenticate(const request& req, connection_context& ctx, response& res) const {
    // Checked before anything else, so an unknown caller learns nothing and costs nothing.
    auto& pending = ctx.pending;
    pending.key_name = anonymous;
    pending.key = nullptr;
    pending.keys = keys_.load(std::memory_order_acquire);
    if (!pending.keys || pending.keys->empty())
        return true;
    auto presented = bearer_token(req.authorization);
    auto& memo = ctx.caller;
    if (presented && memo.keys == pending.keys && memo.header == req.authorization) {
        pending.key = memo.key;
    } else {
        pending.key = presented ? pending.keys->identify(*presented) : nullptr;
        memo.header = req.authorization;
        memo.keys = pending.keys;
        memo.key = pending.key;
    }
    if (!pending.key) {
        set_error(res, errc::unauthorized,
                  presented ? "unknown caller key" : "send a caller key as Authorization: Bearer <key>");
        audit(req, res.status, anonymous, "-", "-", "-", code_name(errc::unauthorized));
        return false;
    }
    pending.key_name = pending.key->name;
    return true;
}

bool token_endpoint::may_ask_for(const connection_context& ctx, std::string_view user_id) const noexcept {
    return !ctx.pending.key || authenticator::may_access(*ctx.pending.key, user_id);
}

bool token_endpoint::answer(const request& req, connection_context& ctx, response& res) {
    if (req.method == http::verb::post)
        return answer_batch(req, ctx, res);
    res.counted_as = route::token;
    if (!authenticate(req, ctx, res))
        return true;
    auto& p = ctx.pending;
    const bool is_delete = req.method == http::verb::delete_;
    auto query = parse_token_target(req.target, is_delete);
    if (!query) {
        set_error(res, query.error());
        audit(req, res.status, p.key_name, "-", "-", "-", code_name(query.error().code));
        return true;
    }
    p.query = std::move(*query);
    const std::string_view type = is_delete ? "all" : to_string(p.query.type);
    if (!may_ask_for(ctx, p.query.user_id)) {
        set_error(res, errc::forbidden, "this caller key may not ask for this user");
        audit(req, res.status, p.key_name, p.query.user_id, type, "-", code_name(errc::forbidden));
        return true;
    }
    if (is_delete) {
        tokens_.forget(p.query.user_id);
        if (tokens_.shares())
            return false; // every replica must forget too: complete() waits for the shared tier
        res.status = 204;
        audit(req, res.status, p.key_name, p.query.user_id, type, "delete", {});
        return true;
    }
    return look_up(req, ctx, p.query, p.ticket, res.status, res.body);
}

bool token_endpoint::look_up(const request& req, const connection_context& ctx, const token_query& q,
                             token_service::ticket& t, unsigned& status, std::string& body) {
    switch (tokens_.look_up(q, body, t)) {
    case token_service::lookup::hit:
        status = 200;
        audit(req, status, ctx.pending.key_name, q.user_id, to_string(q.type), "cache", {});
        return true;
    case token_service::lookup::unknown_user:
        status = error_answer(token_service::unknown_user_error(), body);
        audit(req, status, ctx.pending.key_name, q.user_id, to_string(q.type), "cache",
              code_name(errc::user_not_found));
        return true;
    case token_service::lookup::miss:
        break;
    }
    return false;
}

unsigned token_endpoint::error_answer(const broker_error& e, std::string& body) {
    response r;
    set_error(r, e);
    body = std::move(r.body);
    return r.status;
}

net::awaitable<void> token_endpoint::complete(const request& req, connection_context& ctx, response& res) {
    if (ctx.batch) {
        co_await complete_batch(req, ctx, res);
        co_return;
    }
    auto& p = ctx.pending;
    if (req.method == http::verb::delete_) {
        auto forgotten = co_await tokens_.forget_everywhere(p.query.user_id);
        if (forgotten)
            res.status = 204;
        else
            set_error(res, forgotten.error());
        audit(req, res.status, p.key_name, p.query.user_id, "all", "delete",
              forgotten ? std::string_view() : code_name(forgotten.error().code));
        co_return;
    }
    const auto type = to_string(p.query.type);
    p.query.trace = req.trace; // the Zoom call carries the request's trace on
    auto answered = co_await tokens_.complete(p.query, std::move(p.ticket), res.body);
    if (!answered) {
        set_error(res, answered.error());
        audit(req, res.status, p.key_name, p.query.user_id, type, source_of(answered.error()),
              code_name(answered.error().code));
        co_return;
    }
    audit(req, res.status, p.key_name, p.query.user_id, type, source_of(*answered), {});
}

bool token_endpoint::answer_batch(const request& req, connection_context& ctx, response& res) {
    res.counted_as = route::tokens;
    if (!authenticate(req, ctx, res))
        return true;
    auto parsed = parse_token_batch(req.body);
    if (!parsed) {
        set_error(res, parsed.error());
        audit(req, res.status, ctx.pending.key_name, "-", "-", "-", code_name(parsed.error().code));
        return true;
    }
    auto batch = std::make_shared<pending_batch>();
    batch->items.resize(parsed->size());
    for (std::size_t i = 0; i < parsed->size(); ++i) {
        auto& item = batch->items[i];
        auto& in = (*parsed)[i];
        if (!in) {
            item.status = error_answer(in.error(), item.body);
            audit(req, item.status, ctx.pending.key_name, "-", "-", "-", code_name(in.error().code));
            continue;
        }
        item.query = std::move(*in);
        if (!may_ask_for(ctx, item.query.user_id)) {
            item.status = error_answer(
                make_error(errc::forbidden, "this caller key may not ask for this user"), item.body);
            audit(req, item.status, ctx.pending.key_name, item.query.user_id, to_string(item.query.type), "-",
                  code_name(errc::forbidden));
            continue;
        }
        if (!look_up(req, ctx, item.query, item.ticket, item.status, item.body))
            ++batch->waiting;
    }
    if (batch->waiting == 0) {
        render_batch(*batch, res.body);
        return true;
    }
    ctx.batch = std::move(batch);
    return false;
}

net::awaitable<void> token_endpoint::complete_batch(const request& req, connection_context& ctx,
                                                    response& res) {
    auto batch = std::move(ctx.batch);
    const auto ex = co_await net::this_coro::executor;
    batch->deadline.emplace(ex, batch_timeout_ + batch_grace);
    for (std::size_t i = 0; i < batch->items.size(); ++i)
        if (batch->items[i].status == 0)
            net::co_spawn(ex, complete_item(batch, i, &req, ctx.pending.key_name),
                          log_escaped_exception(log_, "a batch item failed unexpectedly"));
    if (batch->waiting > 0)
        co_await batch->deadline->async_wait(net::as_tuple(net::use_awaitable));
    batch->answered = true;
    for (auto& item : batch->items) {
        if (item.status != 0)
            continue;
        // Answered as its GET would have been at its deadline; its fetch goes on and fills the cache.
        item.status =
            error_answer(make_error(errc::upstream_timeout, "no answer from Zoom in time"), item.body);
        audit(req, item.status, ctx.pending.key_name, item.query.user_id, to_string(item.query.type), "zoom",
              code_name(errc::upstream_timeout));
    }
    render_batch(*batch, res.body);
}

net::awaitable<void> token_endpoint::complete_item(std::shared_ptr<pending_batch> batch, std::size_t index,
                                                   const request* req, std::string_view key_name) {
    auto& item = batch->items[index];
    if (!batch->answered) // else `req` is the next request's already
        item.query.trace = req->trace;
    std::string body;
    auto answered = co_await tokens_.complete(item.query, std::move(item.ticket), body);
    if (batch->answered)
        co_return; // past the deadline: already answered 504, and `req` is the next request's now
    const auto type = to_string(item.query.type);
    if (answered) {
        item.status = 200;
        item.body = std::move(body);
        audit(*req, item.status, key_name, item.query.user_id, type, source_of(*answered), {});
    } else {
        item.status = error_answer(answered.error(), item.body);
        audit(*req, item.status, key_name, item.query.user_id, type, source_of(answered.error()),
              code_name(answered.error().code));
    }
    if (--batch->waiting == 0)
        batch->deadline->cancel();
}

void token_endpoint::render_batch(const pending_batch& batch, std::string& out) {
    out.assign(R"({"results":[)");
    for (std::size_t i = 0; i < batch.items.size(); ++i) {
        const auto& item = batch.items[i];
        if (i)
            out.push_back(',');
        // The GET's body is an object: its members follow the status.
        out.append(R"({"status":)").append(std::to_string(item.status)).push_back(',');
        out.append(std::string_view(item.body).substr(1));
    }
    out.append("]}");
}

void token_endpoint::audit(const request& req, unsigned status, std::string_view key_name,
                           std::string_view user_id, std::string_view type, std::string_view source,
                           std::string_view error_code) const {
    if (!log_->should_log(spdlog::level::info))
        return;
    auto& m = audit_message(format_);
    m.field("request_id", req.request_id)
        .field("trace_id", req.trace.trace_id)
        .field("key", key_name)
        .field("user", user_id)
        .field("type", type)
        .field("source", source)
        .field("status", static_cast<long long>(status));
    if (!error_code.empty())
        m.field("error", error_code);
    m.field("duration_us", static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                      std::chrono::steady_clock::now() - req.received_at)
                                                      .count()));
    log_->log(spdlog::level::info, spdlog::string_view_t(m.text()));
}

} // namespace token_broker
