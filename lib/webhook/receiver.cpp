#include "webhook/receiver.hpp"

#include "core/spawn.hpp"
#include "core/target_path.hpp"
#include "log/logging.hpp"
#include "webhook/event.hpp"
#include "webhook/signature.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>

namespace token_broker {

// An event whose evictions answer() started and complete() confirms.
struct pending_webhook {
    webhook::event ev;
    long long timestamp = 0;
    std::string signature;
    std::string users; // for the audit line: the ids and emails, comma-separated
};

namespace webhook {
namespace {

constexpr std::string_view ignored_body = R"({"outcome":"ignored"})";
constexpr std::string_view evicted_body = R"({"outcome":"evicted"})";

std::chrono::seconds unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch());
}

// The event's name as a metric label: Zoom's names are short, lower-case and dotted; anything else
// (only a holder of the secret can send it) is counted as "other", so labels stay few.
std::string_view event_label(std::string_view name) {
    if (name.empty() || name.size() > 64)
        return "other";
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
            return "other";
    return name;
}

std::string join_users(const std::vector<std::string>& users) {
    std::string out;
    for (const auto& u : users) {
        if (!out.empty())
            out.push_back(',');
        out += u;
    }
    return out.empty() ? "-" : out;
}

// Every replica forgets `user`; `state` learns when the last one is in.
struct eviction {
    explicit eviction(net::any_io_executor ex) : done(ex) {}
    std::size_t waiting = 0;
    bool failed = false;
    net::steady_timer done;
};

// One user of an event, on every replica: forgotten (evict), forgotten and marked revoked for
// `revoked_for` (revoke), or the mark cleared (reinstate).
net::awaitable<void> act_on_one(token_service& tokens, std::shared_ptr<eviction> state, action what,
                                std::string user, std::chrono::seconds revoked_for) {
    result<void> r;
    switch (what) {
    case action::revoke:
        r = co_await tokens.revoke_everywhere(std::move(user), revoked_for);
        break;
    case action::reinstate:
        r = co_await tokens.reinstate_everywhere(std::move(user));
        break;
    default:
        r = co_await tokens.forget_everywhere(std::move(user));
        break;
    }
    if (!r)
        state->failed = true;
    if (--state->waiting == 0)
        state->done.cancel();
}

} // namespace

receiver::receiver(settings s, token_service& tokens, metrics& m, std::shared_ptr<spdlog::logger> log,
                   deauthorizer deauthorize, wall_clock now)
    : settings_(std::move(s)), tokens_(tokens), metrics_(m), log_(std::move(log)),
      deauthorize_(std::move(deauthorize)), now_(std::move(now)),
      replays_(settings_.tolerance, settings_.replay_entries) {}

bool receiver::answer(const request& req, connection_context& ctx, response& res) {
    res.counted_as = route::other;
    if (target_path(req.target) != settings_.path) {
        set_error(res, errc::not_found, "no such route");
        return true;
    }
    if (req.method != http::verb::post) {
        set_error(res, errc::method_not_allowed, "only POST is allowed here");
        res.allow = "POST";
        return true;
    }
    const auto now = unix_seconds(now_());
    if (auto why = verify(settings_.secret_token.reveal(), req.zm_signature, req.zm_request_timestamp,
                          req.body, now, settings_.tolerance)) {
        log_->warn("webhook request {} refused: {}", req.request_id, describe(*why));
        set_error(res, errc::unauthorized, describe(*why));
        res.www_authenticate = false;
        finish(req, res, "unknown", "rejected", "-", "-", nullptr);
        return true;
    }
    long long timestamp = 0;
    const auto& ts = req.zm_request_timestamp;
    std::from_chars(ts.data(), ts.data() + ts.size(), timestamp); // verify() checked its digits
    if (auto seen = replays_.find(timestamp, req.zm_signature, now)) {
        log_->info("webhook request {} is a replay: answered as before, nothing done again", req.request_id);
        res.status = seen->status;
        res.body = std::move(seen->body);
        return true;
    }
    auto parsed = parse_event(req.body);
    auto p = std::make_shared<pending_webhook>();
    p->timestamp = timestamp;
    p->signature = req.zm_signature;
    if (!parsed) {
        set_error(res, errc::invalid_request, parsed.error());
        finish(req, res, "unknown", "rejected", "-", "-", p.get());
        return true;
    }
    p->ev = std::move(*parsed);
    const event& ev = p->ev;
    p->users = join_users(ev.users);
    const std::string_view account = ev.account_id.empty() ? std::string_view("-") : ev.account_id;
    if (ev.what == action::url_validation) {
        res.body = boost::json::serialize(boost::json::object{
            {"plainToken", ev.plain_token},
            {"encryptedToken", encrypted_token(settings_.secret_token.reveal(), ev.plain_token)}});
        finish(req, res, ev.name, "ignored", account, "-", p.get());
        return true;
    }
    const bool other_account =
        !settings_.account_id.empty() && !ev.account_id.empty() && ev.account_id != settings_.account_id;
    if (ev.what == action::ignore || other_account) {
        res.body = ignored_body;
        finish(req, res, ev.name, "ignored", account, p->users, p.get());
        return true;
    }
    switch (ev.what) {
    case action::deauthorize:
        if (!deauthorize_) {
            log_->warn("webhook request {}: app_deauthorized is not acted on by this build", req.request_id);
            break; // ignored, below
        }
        ctx.webhook = std::move(p);
        return false;
    case action::reinstate:
    case action::revoke:
    case action::evict:
        // complete() acts through the token service, which does this replica's part first, at
        // once, whatever the others say.
        ctx.webhook = std::move(p);
        return false;
    default:
        break;
    }
    res.body = ignored_body;
    finish(req, res, ev.name, "ignored", account, p->users, p.get());
    return true;
}

net::awaitable<void> receiver::complete(const request& req, connection_context& ctx, response& res) {
    auto p = std::move(ctx.webhook);
    const std::string_view account = p->ev.account_id.empty() ? std::string_view("-") : p->ev.account_id;
    if (p->ev.what == action::deauthorize) {
        // Dropped here at once; the others are told through Redis.
        auto dropped = co_await deauthorize_();
        if (!dropped) {
            set_error(
                res, errc::cache_unavailable,
                "this replica dropped the Zoom access token, but the others could not be told; try again");
            finish(req, res, p->ev.name, "unavailable", account, p->users, p.get());
            co_return;
        }
        res.body = evicted_body;
        finish(req, res, p->ev.name, "evicted", account, p->users, p.get());
        co_return;
    }
    auto ex = co_await net::this_coro::executor;
    auto state = std::make_shared<eviction>(ex);
    state->waiting = p->ev.users.size();
    // On the connection's executor, as this coroutine: the counter needs no lock.
    for (const auto& user : p->ev.users)
        net::co_spawn(ex, act_on_one(tokens_, state, p->ev.what, user, settings_.revoked_for),
                      log_escaped_exception(log_, "a webhook eviction failed unexpectedly"));
    if (state->waiting > 0) {
        state->done.expires_after(settings_.confirm_within);
        co_await state->done.async_wait(net::as_tuple(net::use_awaitable));
    }
    if (state->waiting > 0 || state->failed) {
        set_error(
            res, errc::cache_unavailable,
            p->ev.what == action::reinstate
                ? "the revoked mark could not be cleared for every replica: this one cleared it; try again"
                : "not every replica confirmed the eviction in time: this one forgot the user; try again");
        finish(req, res, p->ev.name, "unavailable", account, p->users, p.get());
        co_return;
    }
    res.body = evicted_body;
    finish(req, res, p->ev.name, "evicted", account, p->users, p.get());
}

void receiver::finish(const request& req, response& res, std::string_view event, std::string_view outcome,
                      std::string_view account, std::string_view users, const pending_webhook* p) {
    if (p && res.status < 500)
        replays_.remember(p->timestamp, p->signature, remembered_answer{res.status, res.body},
                          unix_seconds(now_()));
    metrics_.webhook_event(event_label(event), outcome);
    if (!log_->should_log(spdlog::level::info))
        return;
    structured_message m(settings_.format, "webhook");
    m.field("request_id", req.request_id)
        .field("event", event)
        .field("account", account)
        .field("users", users)
        .field("outcome", outcome)
        .field("status", static_cast<long long>(res.status))
        .field("duration_us", static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                         std::chrono::steady_clock::now() - req.received_at)
                                                         .count()));
    log_->log(spdlog::level::info, spdlog::string_view_t(m.text()));
}

} // namespace webhook
} // namespace token_broker
