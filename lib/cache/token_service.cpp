#include "cache/token_service.hpp"

#include "core/spawn.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <vector>

namespace token_broker {

struct token_service::fetch_outcome {
    std::optional<broker_error> error;
    secret prefix; // the answer up to "expires_in":
    time_point expires_at;
    bool stale = false;
};

struct token_service::flight_waiter {
    net::any_io_executor executor; // where the waiter resumes
    net::any_completion_handler<void(std::shared_ptr<const fetch_outcome>)> handler;
};

struct token_service::flight {
    explicit flight(cache_key k) : key(std::move(k)) {}

    const cache_key key;
    std::vector<flight_waiter> waiters;
    std::shared_ptr<const fetch_outcome> done; // set once the fetch has finished
    bool forgotten = false;                    // a DELETE came meanwhile: answer, but do not cache
};

namespace {

// Errors after which a still-valid older token is better than no token.
bool serve_stale_on(errc code) {
    return code == errc::upstream_error || code == errc::upstream_timeout ||
           code == errc::upstream_unavailable || code == errc::rate_limited || code == errc::not_ready;
}

// Resumes a waiter on its own executor with the outcome it waited for.
void resume(token_service::flight_waiter w, std::shared_ptr<const token_service::fetch_outcome> o) {
    net::post(w.executor,
              [h = std::move(w.handler), o = std::move(o)]() mutable { std::move(h)(std::move(o)); });
}

} // namespace

token_service::ticket::ticket(ticket&& other) noexcept
    : service_(std::exchange(other.service_, nullptr)), flight_(std::move(other.flight_)),
      leads_(std::exchange(other.leads_, false)) {}

token_service::ticket& token_service::ticket::operator=(ticket&& other) noexcept {
    if (this != &other) {
        abandon();
        service_ = std::exchange(other.service_, nullptr);
        flight_ = std::move(other.flight_);
        leads_ = std::exchange(other.leads_, false);
    }
    return *this;
}

token_service::ticket::~ticket() {
    abandon();
}

void token_service::ticket::abandon() noexcept {
    if (service_ && leads_ && flight_) {
        auto o = std::make_shared<fetch_outcome>();
        o->error = make_error(errc::internal_error, "the request that was fetching this token went away");
        service_->land(*flight_, std::move(o));
    }
    service_ = nullptr;
    flight_.reset();
    leads_ = false;
}

token_service::token_service(net::any_io_executor ex, token_source& zoom, const cache_config& cfg, metrics& m,
                             std::shared_ptr<spdlog::logger> log, wall_clock now)
    : executor_(std::move(ex)), zoom_(zoom), metrics_(m), log_(std::move(log)), now_(std::move(now)),
      cache_(cfg.max_entries, cfg.refresh_margin), unknown_users_(cfg.max_entries, cfg.negative_ttl) {}

token_service::~token_service() = default;

broker_error token_service::unknown_user_error() {
    broker_error e = make_error(errc::user_not_found, "Zoom says this user does not exist (remembered)");
    e.zoom_code = 1001;
    return e;
}

token_service::lookup token_service::look_up(const token_query& q, std::string& body, ticket& t) {
    const auto now = now_();
    const cache_key_view key(q.user_id, q.type, q.ttl);
    t.abandon(); // an unspent ticket from before; no temporary on the hit path
    lookup found = lookup::miss;
    std::shared_ptr<flight> refresh;
    {
        std::lock_guard lock(mutex_);
        if (q.type != token_type::onbehalf) {
            if (auto hit = cache_.find(key, now)) {
                render_answer(hit->token->token, hit->token->expires_at, now, answer_source::cached, body);
                found = lookup::hit;
                if (hit->refresh_due && !flights_.contains(key)) {
                    refresh = std::make_shared<flight>(cache_key{q.user_id, q.type, q.ttl});
                    flights_.emplace(refresh->key, refresh);
                }
            }
        }
        if (found == lookup::miss) {
            if (unknown_users_.contains(q.user_id, now)) {
                found = lookup::unknown_user;
            } else {
                t.service_ = this;
                if (q.type == token_type::onbehalf) {
                    // Single-use: fetched for this caller alone, never cached, never shared.
                    t.leads_ = true;
                } else if (auto it = flights_.find(key); it != flights_.end()) {
                    t.flight_ = it->second;
                } else {
                    t.flight_ = std::make_shared<flight>(cache_key{q.user_id, q.type, q.ttl});
                    flights_.emplace(t.flight_->key, t.flight_);
                    t.leads_ = true;
                }
            }
        }
    }
    if (found != lookup::miss)
        metrics_.cache_hit();
    else if (t.leads_)
        metrics_.cache_miss();
    else
        metrics_.coalesced_request();
    if (refresh) {
        metrics_.background_refresh();
        token_query refresh_query{q.user_id, q.type, q.ttl, std::nullopt};
        cache_key owned = refresh->key;
        net::co_spawn(executor_, fetch(std::move(owned), std::move(refresh_query), std::move(refresh)),
                      log_escaped_exception(log_, "a background refresh failed unexpectedly"));
    }
    return found;
}

net::awaitable<result<answer_source>> token_service::complete(const token_query& q, ticket t,
                                                              std::string& body) {
    std::shared_ptr<const fetch_outcome> o;
    auto f = std::move(t.flight_);
    const bool leads = std::exchange(t.leads_, false);
    t.service_ = nullptr; // spent: nothing left for its destructor to abandon
    if (leads) {
        // A named key, not a temporary: gcc 12 destroys brace-initialised coroutine arguments twice.
        cache_key owned{q.user_id, q.type, q.ttl};
        o = co_await fetch(std::move(owned), q, std::move(f));
    } else {
        o = co_await wait(std::move(f));
    }
    if (o->error)
        co_return *o->error;
    if (o->stale)
        metrics_.stale_served();
    const auto source = o->stale ? answer_source::stale : answer_source::fresh;
    render_answer(o->prefix, o->expires_at, now_(), source, body);
    co_return source;
}

net::awaitable<result<answer_source>> token_service::answer(const token_query& q, std::string& body) {
    ticket t;
    switch (look_up(q, body, t)) {
    case lookup::hit:
        co_return answer_source::cached;
    case lookup::unknown_user:
        co_return unknown_user_error();
    case lookup::miss:
        break;
    }
    co_return co_await complete(q, std::move(t), body);
}

net::awaitable<std::shared_ptr<const token_service::fetch_outcome>>
token_service::fetch(cache_key key, token_query q, std::shared_ptr<flight> f) {
    result<secret> r = make_error(errc::internal_error, "internal error");
    try {
        r = co_await zoom_.fetch_token(q);
    } catch (const std::exception& e) {
        // A bug below: still answer every waiter rather than leave them hanging.
        log_->error("fetching a token failed unexpectedly: {}", e.what());
    }
    const auto now = now_();
    auto o = std::make_shared<fetch_outcome>();
    std::vector<flight_waiter> waiters;
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
        if (f)
            waiters = land_locked(*f, o);
        entries = cache_.size();
    }
    metrics_.cache_entries(entries);
    for (auto& w : waiters)
        resume(std::move(w), o);
    co_return o;
}

std::vector<token_service::flight_waiter> token_service::land_locked(flight& f,
                                                                     std::shared_ptr<const fetch_outcome> o) {
    if (auto it = flights_.find(f.key); it != flights_.end() && it->second.get() == &f)
        flights_.erase(it);
    f.done = std::move(o);
    return std::move(f.waiters);
}

void token_service::land(flight& f, std::shared_ptr<const fetch_outcome> o) {
    std::vector<flight_waiter> waiters;
    {
        std::lock_guard lock(mutex_);
        waiters = land_locked(f, o);
    }
    for (auto& w : waiters)
        resume(std::move(w), o);
}

// Not a coroutine itself: gcc 12 destroys the initiation's captures twice when it is a temporary
// inside a co_await expression of a coroutine body.
net::awaitable<std::shared_ptr<const token_service::fetch_outcome>>
token_service::wait(std::shared_ptr<flight> f) {
    return net::async_initiate<decltype(net::use_awaitable), void(std::shared_ptr<const fetch_outcome>)>(
        [this](auto handler, std::shared_ptr<flight> f) {
            flight_waiter w{net::get_associated_executor(handler, executor_), std::move(handler)};
            std::unique_lock lock(mutex_);
            if (auto o = f->done) {
                lock.unlock();
                resume(std::move(w), std::move(o));
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
