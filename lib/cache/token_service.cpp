#include "cache/token_service.hpp"

#include "core/spawn.hpp"
#include "core/user_identity.hpp"

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
    answer_source source = answer_source::fresh; // fresh from Zoom, cached from the shared tier, or stale
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
                             std::shared_ptr<spdlog::logger> log, wall_clock now, shared_tokens* shared)
    : executor_(std::move(ex)), zoom_(zoom), metrics_(m), log_(std::move(log)), now_(std::move(now)),
      refresh_margin_(cfg.refresh_margin), shared_(shared), cache_(cfg.max_entries, cfg.refresh_margin),
      unknown_users_(cfg.max_entries, cfg.negative_ttl) {
    if (shared_)
        shared_->listen({[this](std::string_view user_id) { forget(user_id); }, [this] { forget_all(); },
                         [this](std::string_view user_id, std::chrono::milliseconds revoked_for) {
                             revoke(user_id, now_() + revoked_for);
                             forget(user_id);
                         },
                         [this](std::string_view user_id) { reinstate(user_id); }});
}

token_service::~token_service() {
    if (shared_)
        shared_->listen({});
}

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
    // Asked before the lock: with a shared tier, in-memory copies are served only while this replica
    // is sure to hear of a forget (CONTRACT.md section 7); otherwise they all go.
    const bool local = !shared_ || shared_->local_copies_allowed();
    std::size_t dropped = 0;
    {
        std::lock_guard lock(mutex_);
        if (!local)
            dropped = drop_all_locked();
        if (q.type != token_type::onbehalf && local) {
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
            if (local && unknown_users_.contains(q.user_id, now)) {
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
    if (dropped > 0)
        local_copies_dropped(dropped, true);
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
        net::co_spawn(executor_, fetch(std::move(owned), std::move(refresh_query), std::move(refresh), true),
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
        o = co_await fetch(std::move(owned), q, std::move(f), false);
    } else {
        o = co_await wait(std::move(f));
    }
    if (o->error)
        co_return *o->error;
    if (o->source == answer_source::stale)
        metrics_.stale_served();
    render_answer(o->prefix, o->expires_at, now_(), o->source, body);
    co_return o->source;
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
token_service::fetch(cache_key key, token_query q, std::shared_ptr<flight> f, bool refresh) {
    // What was fetched: a token and when, or an error; from the shared tier or from Zoom.
    shared_entry got;
    bool from_shared = false;
    bool revoked_elsewhere = false; // the shared tier holds the user's revoked mark
    std::optional<shared_tokens::lease> held;
    result<secret> r = make_error(errc::internal_error, "internal error");
    try {
        const bool shared = shared_ && q.type != token_type::onbehalf && !revoked(key.user_id);
        if (shared) {
            auto c = co_await shared_->acquire(key, refresh);
            if (c.what == shared_tokens::claim::kind::found) {
                from_shared = true;
                got = std::move(c.entry);
            }
            revoked_elsewhere = c.what == shared_tokens::claim::kind::revoked;
            held = std::move(c.held);
        }
        if (!from_shared) {
            r = co_await zoom_.fetch_token(q);
            const auto fetched_at = now_();
            if (r) {
                got.what = shared_entry::kind::token;
                got.token = std::move(*r);
                got.fetched_at = fetched_at;
                got.expires_at = token_expiry(got.token.reveal(), key.type, key.ttl, fetched_at);
            } else {
                got.what = r.error().code == errc::user_not_found ? shared_entry::kind::unknown_user
                                                                  : shared_entry::kind::error;
                got.error = r.error();
            }
        } else if (got.what == shared_entry::kind::unknown_user) {
            got.error = unknown_user_error();
        }
    } catch (const std::exception& e) {
        // A bug below: still answer every waiter rather than leave them hanging.
        log_->error("fetching a token failed unexpectedly: {}", e.what());
        got.what = shared_entry::kind::error;
        got.error = make_error(errc::internal_error, "internal error");
    }
    const auto now = now_();
    auto o = std::make_shared<fetch_outcome>();
    std::vector<flight_waiter> waiters;
    std::size_t entries = 0, dropped = 0;
    bool forgotten = false;
    const bool local = !shared_ || shared_->local_copies_allowed();
    {
        std::lock_guard lock(mutex_);
        if (!local)
            dropped = drop_all_locked();
        // A revoked user's token is passed on, never kept (CONTRACT.md section 9).
        forgotten = (f && f->forgotten) || revoked_elsewhere || revoked_locked(key.user_id, now);
        const bool cacheable = f && !forgotten && local;
        if (got.what == shared_entry::kind::token) {
            o->expires_at = got.expires_at;
            o->prefix =
                secret(render_answer_prefix(got.token.reveal(), key.type, key.user_id, o->expires_at));
            o->source = from_shared ? answer_source::cached : answer_source::fresh;
            if (cacheable)
                cache_.put(key, o->prefix, got.fetched_at, o->expires_at);
        } else {
            if (got.what == shared_entry::kind::unknown_user && (cacheable || !f))
                unknown_users_.remember(key.user_id, now);
            if (serve_stale_on(got.error.code) && q.type != token_type::onbehalf && !forgotten) {
                if (const auto* old = cache_.find_stale(key, now)) {
                    o->prefix = old->token;
                    o->expires_at = old->expires_at;
                    o->source = answer_source::stale;
                }
            }
            if (o->source != answer_source::stale)
                o->error = got.error;
        }
        if (f)
            waiters = land_locked(*f, o);
        entries = cache_.size();
    }
    metrics_.cache_entries(entries);
    if (dropped > 0)
        local_copies_dropped(dropped, true);
    for (auto& w : waiters)
        resume(std::move(w), o);
    // The other replicas learn the result after this one's waiters have it. A result fetched after
    // a DELETE is not shared, as it is not cached, nor is a bug's; the lock is released all the same.
    if (shared_ && q.type != token_type::onbehalf && !from_shared) {
        const bool share =
            !forgotten && !(got.what == shared_entry::kind::error && got.error.code == errc::internal_error);
        co_await shared_->store(key, std::move(held), share ? &got : nullptr);
    }
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
            if (same_user(key.user_id, user_id))
                f->forgotten = true;
        entries = cache_.size();
    }
    metrics_.cache_entries(entries);
    local_copies_dropped(dropped, false);
    return dropped;
}

std::size_t token_service::drop_all_locked() {
    const auto dropped = cache_.size();
    cache_.clear();
    unknown_users_.clear();
    return dropped;
}

void token_service::local_copies_dropped(std::size_t n, bool lease_lapsed) {
    metrics_.local_copies_dropped(n, lease_lapsed);
    metrics_.cache_entries(size());
}

void token_service::forget_all() {
    std::size_t dropped = 0;
    {
        std::lock_guard lock(mutex_);
        dropped = drop_all_locked();
        for (auto& [key, f] : flights_)
            f->forgotten = true;
    }
    local_copies_dropped(dropped, true);
}

net::awaitable<result<void>> token_service::forget_everywhere(std::string user_id) {
    forget(user_id);
    if (!shared_)
        co_return result<void>();
    co_return co_await shared_->forget(std::move(user_id));
}

void token_service::revoke(std::string_view user_id, time_point until) {
    const auto now = now_();
    std::lock_guard lock(mutex_);
    std::erase_if(revoked_, [now](const auto& mark) { return mark.second <= now; });
    auto& mark = revoked_[user_identity(user_id)];
    mark = std::max(mark, until);
}

void token_service::reinstate(std::string_view user_id) {
    std::lock_guard lock(mutex_);
    revoked_.erase(user_identity(user_id));
}

bool token_service::revoked(std::string_view user_id) const {
    std::lock_guard lock(mutex_);
    return revoked_locked(user_id, now_());
}

bool token_service::revoked_locked(std::string_view user_id, time_point now) const {
    if (revoked_.empty())
        return false;
    const auto it = revoked_.find(user_identity(user_id));
    return it != revoked_.end() && now < it->second;
}

net::awaitable<result<void>> token_service::revoke_everywhere(std::string user_id,
                                                              std::chrono::seconds revoked_for) {
    revoke(user_id, now_() + revoked_for);
    forget(user_id);
    if (!shared_)
        co_return result<void>();
    co_return co_await shared_->revoke(std::move(user_id), revoked_for);
}

net::awaitable<result<void>> token_service::reinstate_everywhere(std::string user_id) {
    reinstate(user_id);
    if (!shared_)
        co_return result<void>();
    co_return co_await shared_->reinstate(std::move(user_id));
}

std::size_t token_service::size() const {
    std::lock_guard lock(mutex_);
    return cache_.size();
}

} // namespace token_broker
