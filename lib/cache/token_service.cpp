#include "cache/token_service.hpp"

#include "core/json_text.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <fmt/chrono.h>
#include <vector>

namespace token_broker {

struct token_service::outcome {
    std::optional<broker_error> error;
    secret prefix; // the answer up to "expires_in":
    time_point expires_at;
    bool stale = false;
};

struct token_service::flight {
    struct waiter {
        net::any_io_executor executor; // where the waiter resumes
        net::any_completion_handler<void(std::shared_ptr<const outcome>)> handler;
    };
    std::vector<waiter> waiters;
    std::shared_ptr<const outcome> done; // set once the fetch has finished
    bool forgotten = false;              // a DELETE came meanwhile: answer, but do not cache
};

namespace {

// Errors after which a still-valid older token is better than no token.
bool serve_stale_on(errc code) {
    return code == errc::upstream_error || code == errc::upstream_timeout ||
           code == errc::upstream_unavailable || code == errc::rate_limited || code == errc::not_ready;
}

// Resumes a waiter on its own executor with the outcome it waited for.
void complete(token_service::flight::waiter w, std::shared_ptr<const token_service::outcome> o) {
    net::post(w.executor,
              [h = std::move(w.handler), o = std::move(o)]() mutable { std::move(h)(std::move(o)); });
}

} // namespace

std::string format_rfc3339(time_point t) {
    const auto secs = std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(static_cast<std::time_t>(secs)));
}

std::string render_answer_prefix(std::string_view token, token_type type, std::string_view user_id,
                                 time_point expires_at) {
    std::string out;
    out.reserve(token.size() + user_id.size() + 96);
    out.append(R"({"token":)");
    append_json_string(out, token);
    out.append(R"(,"type":")").append(to_string(type)).append(R"(","user_id":)");
    append_json_string(out, user_id);
    out.append(R"(,"expires_at":")").append(format_rfc3339(expires_at)).append(R"(","expires_in":)");
    return out;
}

token_service::token_service(net::any_io_executor ex, token_source& zoom, const cache_config& cfg, metrics& m,
                             std::shared_ptr<spdlog::logger> log, clock now)
    : executor_(std::move(ex)), zoom_(zoom), metrics_(m), log_(std::move(log)), now_(std::move(now)),
      cache_(cfg.max_entries, cfg.refresh_margin), unknown_users_(cfg.max_entries, cfg.negative_ttl) {}

token_service::~token_service() = default;

void token_service::render(const secret& prefix, time_point expires_at, time_point now, bool cached,
                           bool stale, std::string& body) const {
    body.assign(prefix.reveal());
    const auto left =
        std::max<std::int64_t>(0, std::chrono::floor<std::chrono::seconds>(expires_at - now).count());
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, left);
    body.append(digits, end);
    body.append(!cached ? R"(,"cached":false})"
                : stale ? R"(,"cached":true,"stale":true})"
                        : R"(,"cached":true})");
}

bool token_service::answer_from_cache(const token_query& q, std::string& body) {
    if (q.type == token_type::onbehalf)
        return false;
    const auto now = now_();
    const cache_key_view key(q.user_id, q.type, q.ttl);
    bool refresh = false;
    {
        std::lock_guard lock(mutex_);
        auto hit = cache_.find(key, now);
        if (!hit)
            return false;
        render(hit->token->token, hit->token->expires_at, now, true, false, body);
        refresh = hit->refresh_due && !flights_.contains(key);
    }
    metrics_.cache_hit();
    if (refresh)
        start_refresh(key);
    return true;
}

void token_service::start_refresh(cache_key_view key) {
    std::shared_ptr<flight> f;
    cache_key owned{std::string(key.user_id), key.type, key.ttl};
    {
        std::lock_guard lock(mutex_);
        if (flights_.contains(key))
            return; // another hit got there first
        f = std::make_shared<flight>();
        flights_.emplace(owned, f);
    }
    metrics_.background_refresh();
    token_query q{owned.user_id, owned.type, owned.ttl, std::nullopt};
    net::co_spawn(executor_, fetch(std::move(owned), std::move(q), std::move(f)),
                  [log = log_](std::exception_ptr e, std::shared_ptr<const outcome>) {
                      if (e)
                          log->error("background refresh failed unexpectedly");
                  });
}

net::awaitable<result<answer_source>> token_service::answer(const token_query& q, std::string& body) {
    const auto now = now_();
    const cache_key_view key(q.user_id, q.type, q.ttl);
    std::shared_ptr<flight> f;
    bool leader = false;
    {
        std::lock_guard lock(mutex_);
        if (unknown_users_.contains(q.user_id, now)) {
            metrics_.cache_hit();
            broker_error e =
                make_error(errc::user_not_found, "Zoom says this user does not exist (remembered)");
            e.zoom_code = 1001;
            co_return e;
        }
        if (q.type != token_type::onbehalf) {
            // A concurrent fetch may have filled the entry since answer_from_cache looked.
            if (auto hit = cache_.find(key, now)) {
                render(hit->token->token, hit->token->expires_at, now, true, false, body);
                metrics_.cache_hit();
                co_return answer_source{true, false};
            }
            if (auto it = flights_.find(key); it != flights_.end()) {
                f = it->second;
            } else {
                f = std::make_shared<flight>();
                flights_.emplace(cache_key{q.user_id, q.type, q.ttl}, f);
                leader = true;
            }
        }
    }

    std::shared_ptr<const outcome> o;
    if (q.type == token_type::onbehalf || leader) {
        // onbehalf is single-use: fetched for this caller alone, never cached, never shared.
        metrics_.cache_miss();
        // A named key, not a temporary: gcc 12 destroys brace-initialised coroutine arguments twice.
        cache_key owned{q.user_id, q.type, q.ttl};
        o = co_await fetch(std::move(owned), q, std::move(f));
    } else {
        metrics_.coalesced_request();
        o = co_await wait(f);
    }
    if (o->error)
        co_return *o->error;
    if (o->stale)
        metrics_.stale_served();
    render(o->prefix, o->expires_at, now_(), o->stale, o->stale, body);
    co_return answer_source{o->stale, o->stale};
}

net::awaitable<std::shared_ptr<const token_service::outcome>>
token_service::fetch(cache_key key, token_query q, std::shared_ptr<flight> f) {
    result<secret> r = make_error(errc::internal_error, "internal error");
    try {
        r = co_await zoom_.fetch_token(q);
    } catch (const std::exception& e) {
        // A bug below: still answer every waiter rather than leave them hanging.
        log_->error("fetching a token failed unexpectedly: {}", e.what());
    }
    const auto now = now_();
    auto o = std::make_shared<outcome>();
    std::vector<flight::waiter> waiters;
    std::size_t entries = 0;
    {
        std::lock_guard lock(mutex_);
        const bool cacheable = f && !f->forgotten;
        if (r) {
            o->expires_at = token_expiry(r->reveal(), key.type, key.ttl, now);
            o->prefix = secret(render_answer_prefix(r->reveal(), key.type, key.user_id, o->expires_at));
            if (cacheable)
                cache_.put(key, o->prefix, now, o->expires_at);
        } else {
            if (r.error().code == errc::user_not_found && (cacheable || !f))
                unknown_users_.remember(key.user_id, now);
            if (serve_stale_on(r.error().code) && q.type != token_type::onbehalf && !(f && f->forgotten)) {
                if (const auto* old = cache_.find_stale(key, now)) {
                    o->prefix = old->token;
                    o->expires_at = old->expires_at;
                    o->stale = true;
                }
            }
            if (!o->stale)
                o->error = r.error();
        }
        if (f) {
            if (auto it = flights_.find(key); it != flights_.end() && it->second == f)
                flights_.erase(it);
            f->done = o;
            waiters = std::move(f->waiters);
        }
        entries = cache_.size();
    }
    metrics_.cache_entries(entries);
    for (auto& w : waiters)
        complete(std::move(w), o);
    co_return o;
}

// Not a coroutine itself: gcc 12 destroys the initiation's captures twice when it is a temporary
// inside a co_await expression of a coroutine body.
net::awaitable<std::shared_ptr<const token_service::outcome>> token_service::wait(std::shared_ptr<flight> f) {
    return net::async_initiate<decltype(net::use_awaitable), void(std::shared_ptr<const outcome>)>(
        [this](auto handler, std::shared_ptr<flight> f) {
            flight::waiter w{net::get_associated_executor(handler, executor_), std::move(handler)};
            std::unique_lock lock(mutex_);
            if (auto o = f->done) {
                lock.unlock();
                complete(std::move(w), std::move(o));
                return;
            }
            f->waiters.push_back(std::move(w));
        },
        net::use_awaitable, std::move(f));
}

std::size_t token_service::forget(std::string_view user_id) {
    std::size_t dropped = 0, entries = 0;
    {
        std::lock_guard lock(mutex_);
        dropped = cache_.erase_user(user_id);
        unknown_users_.forget(user_id);
        for (auto& [key, f] : flights_)
            if (key.user_id == user_id)
                f->forgotten = true;
        entries = cache_.size();
    }
    metrics_.cache_entries(entries);
    return dropped;
}

std::size_t token_service::size() const {
    std::lock_guard lock(mutex_);
    return cache_.size();
}

} // namespace token_broker
