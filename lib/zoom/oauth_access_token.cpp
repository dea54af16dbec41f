#include "zoom/oauth_access_token.hpp"

#include "core/spawn.hpp"
#include "core/target_path.hpp"
#include "metrics/metrics.hpp"
#include "zoom/backoff.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <utility>

namespace token_broker {

oauth_access_token::oauth_access_token(net::any_io_executor strand, std::shared_ptr<https_pool> pool,
                                       endpoint_url endpoint, const zoom_config& cfg,
                                       std::shared_ptr<spdlog::logger> log, metrics& m, zoom_clock clock,
                                       std::shared_ptr<shared_access_token_store> shared,
                                       std::chrono::milliseconds wait_for_redis)
    : strand_(std::move(strand)), pool_(std::move(pool)), endpoint_(std::move(endpoint)),
      client_id_(cfg.client_id), client_secret_(cfg.client_secret), account_id_(cfg.account_id),
      request_timeout_(cfg.request_timeout), log_(std::move(log)), metrics_(m), clock_(std::move(clock)),
      shared_(std::move(shared)), wait_for_redis_(wait_for_redis) {}

void oauth_access_token::start() {
    set_not_ready("waiting for the first Zoom access token");
    pending_ = true;
    net::co_spawn(strand_, refresh_loop(shared_from_this()),
                  log_escaped_exception(log_, "Zoom OAuth refresh stopped by an unexpected error"));
}

void oauth_access_token::stop() {
    stopped_flag_ = true;
    stopped_ = true;
    changed_.cancel_all();
    wakeup_.cancel_all();
    peer_fetch_.cancel_all();
}

readiness oauth_access_token::ready() const {
    std::lock_guard lock(ready_mutex_);
    if (stopped_flag_)
        return {false, "the Zoom client is stopped"};
    if (clock_.steady_now() < ready_until_)
        return {true, {}};
    if (!reason_.empty())
        return {false, reason_};
    return {false, "the Zoom access token has expired"};
}

net::awaitable<result<secret>> oauth_access_token::current(steady::time_point deadline) {
    for (;;) {
        if (stopped_)
            co_return zoom_client_stopped();
        if (token_ && clock_.steady_now() < expires_)
            co_return *token_;
        if (!pending_ && failure_.empty()) {
            // The token has just expired and the loop has not woken up to renew it yet (a lifetime
            // under 5 s leaves no margin): renew it now.
            pending_ = true;
            wakeup_.notify_all();
        }
        if (!pending_)
            co_return make_error(errc::not_ready, failure_.empty() ? "no Zoom access token" : failure_);
        const bool changed = co_await changed_.wait_until(clock_.timer_expiry(deadline));
        if (!changed && !stopped_ && clock_.steady_now() >= deadline)
            co_return make_error(errc::upstream_timeout, "no Zoom access token within " +
                                                             std::to_string(request_timeout_.count()) +
                                                             " ms: Zoom's OAuth endpoint is slow to answer");
    }
}

void oauth_access_token::rejected(const secret& token, std::string_view why) {
    if (!token_ || *token_ != token)
        return; // replaced already
    token_.reset();
    rejected_ = token;
    pending_ = true;
    set_not_ready("Zoom refused the access token (" + std::string(why) + "); fetching a new one");
    wakeup_.notify_all();
}

void oauth_access_token::deauthorized() {
    if (token_)
        rejected_ = *token_;
    token_.reset();
    deauthorized_ = true;
    set_not_ready("app deauthorized");
    log_->warn("the app was deauthorized (app_deauthorized): the Zoom access token is dropped; a new one "
               "is fetched at once, and again with the OAuth backoff while Zoom refuses it");
    // At once, not at the next token request: a replica that is not ready gets no requests from a
    // load balancer, and would wait for the renewal time already set (up to most of an hour). With
    // Redis, the replicas' fetches go through the one lock: one OAuth call for all of them.
    if (!pending_) {
        failure_.clear();
        pending_ = true;
        wakeup_.notify_all();
    }
}

// The single flight of OAuth fetches: only this loop fetches access tokens.
net::awaitable<void> oauth_access_token::refresh_loop(std::shared_ptr<oauth_access_token> self) {
    (void)self;
    unsigned failures = 0;
    while (!stopped_) {
        pending_ = true;
        auto grant = co_await obtain();
        pending_ = false;
        if (stopped_)
            break;
        steady::time_point next;
        if (grant) {
            failures = 0;
            failure_.clear();
            deauthorized_ = false;
            const auto now = clock_.steady_now();
            if (rejected_ && *rejected_ != grant->token)
                rejected_.reset();
            token_ = std::move(grant->token);
            expires_ = grant->expires;
            next = grant->renew;
            set_ready(expires_);
            log_->info("Zoom access token obtained from {}, valid for {} s, renewed in {} s", grant->from,
                       std::chrono::duration_cast<std::chrono::seconds>(expires_ - now).count(),
                       std::chrono::duration_cast<std::chrono::seconds>(next - now).count());
        } else {
            ++failures;
            failure_ = grant.error().message;
            const auto delay = oauth_retry_delay(failures);
            if (token_ && clock_.steady_now() < expires_)
                set_failure_reason(failure_);
            else
                set_not_ready(deauthorized_ ? "app deauthorized; " + failure_ : failure_);
            log_->warn("{}; trying again in {} s", failure_, delay.count());
            next = clock_.steady_now() + delay;
        }
        changed_.notify_all();
        co_await wakeup_.wait_until(clock_.timer_expiry(next));
    }
    changed_.cancel_all();
}

net::awaitable<result<oauth_access_token::held>>
oauth_access_token::fetch_own(shared_access_token_store::entry* entry) {
    const auto requested_at = clock_.steady_now();
    const auto requested_wall = clock_.wall_now();
    auto grant = co_await request_access_token();
    if (!grant)
        co_return grant.error();
    const auto lifetime = grant->expires_in;
    const auto margin = std::min<std::chrono::seconds>(std::chrono::seconds{300}, lifetime / 5);
    if (entry != nullptr)
        *entry = {grant->token, requested_wall + lifetime - margin, requested_wall + lifetime};
    co_return held{std::move(grant->token), requested_at + lifetime - margin, requested_at + lifetime,
                   "Zoom"};
}

net::awaitable<result<oauth_access_token::held>> oauth_access_token::fetch_alone(const std::string& why) {
    log_->info("the shared Zoom access token is out of reach ({}): this replica fetches its own", why);
    co_return co_await fetch_own();
}

bool oauth_access_token::usable(const shared_access_token_store::entry& e) const {
    return (!rejected_ || *rejected_ != e.token) && clock_.wall_now() < e.renew_at;
}

oauth_access_token::held oauth_access_token::adopt(const shared_access_token_store::entry& e) const {
    const auto now = clock_.steady_now();
    const auto wall_now = clock_.wall_now();
    const auto left = [&](std::chrono::system_clock::time_point t) {
        return now + std::chrono::duration_cast<steady::duration>(t - wall_now);
    };
    return held{e.token, left(e.renew_at), left(e.expires_at), "Redis (shared by the replicas)"};
}

void oauth_access_token::shared_token_announced(bool stored) {
    ++announcements_;
    peer_fetch_.notify_all();
    // Only on "stored": waking the replicas' backoff at each "released" (a failed fetch) would make
    // them take turns at OAuth without any backoff while Zoom refuses.
    if (stored && !pending_ && !failure_.empty()) {
        pending_ = true;
        wakeup_.notify_all();
    }
}

// With the shared store: take the shared token when it is good; else fetch under the lock (reading
// again once it is held, for another replica may just have stored one); else wait for the replica
// that holds the lock, up to zoom.request_timeout_ms plus one lock lease. The holder announces what
// became of its fetch (shared_access_token_store::channel()) and the announcement wakes the wait at
// once; as publications can be lost, the wait also looks again after one lease without one.
net::awaitable<result<oauth_access_token::held>> oauth_access_token::obtain() {
    if (!shared_)
        co_return co_await fetch_own();
    if (std::exchange(first_fetch_, false) && !shared_->up())
        co_await shared_->wait_up(clock_.timer_expiry(clock_.steady_now() + wait_for_redis_));
    // The holder renews its lock while its OAuth call runs (redis/lease.hpp): wait for it at most as
    // long as a fetch may take plus one lease, as waiters on a token fetch do.
    const auto give_up = clock_.steady_now() +
                         std::chrono::duration_cast<std::chrono::milliseconds>(request_timeout_) +
                         shared_->lock_lease();
    for (;;) {
        if (stopped_)
            co_return zoom_client_stopped();
        // An announcement that comes while this look runs (the subscription is another connection:
        // it may arrive before the replies) is not lost: the wait below is skipped.
        const auto seen = announcements_;
        auto found = co_await shared_->read(clock_.wall_now());
        if (!found)
            co_return co_await fetch_alone(found.error().message);
        if (*found && usable(**found))
            co_return adopt(**found);
        auto lock = co_await shared_->lock();
        if (!lock)
            co_return co_await fetch_alone(lock.error().message);
        if (*lock) {
            const auto renewing = shared_->keep(strand_, **lock);
            auto again = co_await shared_->read(clock_.wall_now());
            if (again && *again && usable(**again)) {
                co_await shared_->unlock(**lock, true);
                co_return adopt(**again);
            }
            shared_access_token_store::entry entry;
            auto own = co_await fetch_own(&entry);
            bool stored = false;
            if (own && !stopped_) {
                auto written = co_await shared_->write(entry, clock_.wall_now());
                stored = written.has_value();
                if (!written)
                    log_->warn("the new Zoom access token could not be shared through Redis ({}): the other "
                               "replicas fetch their own",
                               written.error().message);
            }
            co_await shared_->unlock(**lock, stored);
            co_return own;
        }
        const auto now = clock_.steady_now();
        if (now >= give_up)
            co_return make_error(
                errc::not_ready,
                "Zoom OAuth: another replica holds the access-token lock and stored no token");
        if (announcements_ != seen)
            continue;
        log_->debug("another replica holds the Zoom access-token lock: waiting for its announcement");
        const auto look_again = std::min<steady::time_point>(give_up, now + shared_->lock_lease());
        co_await peer_fetch_.wait_until(clock_.timer_expiry(look_again));
    }
}

net::awaitable<result<oauth_grant>> oauth_access_token::request_access_token() {
    namespace urls = boost::urls;
    std::string target = endpoint_.path.empty() ? "/" : endpoint_.path;
    if (!endpoint_.query.empty())
        target += "?" + endpoint_.query;
    https_request req{http::verb::post, target, 11};
    req.set(http::field::authorization, basic_authorization(client_id_, client_secret_));
    req.set(http::field::content_type, "application/x-www-form-urlencoded");
    req.set(http::field::accept, "application/json");
    req.set(http::field::user_agent, zoom_user_agent);
    req.body() =
        "grant_type=account_credentials&account_id=" + urls::encode(account_id_, urls::unreserved_chars);
    req.prepare_payload();

    const auto sent = clock_.steady_now();
    auto res = co_await pool_->exchange(std::move(req), clock_.timer_expiry(sent + request_timeout_));
    const double seconds = std::chrono::duration<double>(clock_.steady_now() - sent).count();
    if (stopped_)
        co_return zoom_client_stopped();
    metrics_.upstream_request(upstream_endpoint::oauth, metric_code(res), seconds);
    if (!res) {
        metrics_.oauth_refresh(false);
        co_return make_error(errc::not_ready, "Zoom OAuth failed: " + res.error().message);
    }

    const unsigned status = res->result_int();
    log_->debug("Zoom POST {} -> {}", target_path(target), status);
    auto grant = read_oauth_answer(status, res->body());
    if (!grant) {
        const auto body = parse_error_body(res->body());
        log_->warn("Zoom OAuth request failed: endpoint=oauth status={} zoom_code={} error={} reason=\"{}\" "
                   "message=\"{}\" x-zm-trackingid={}",
                   status, body.code ? std::to_string(*body.code) : "-",
                   body.error.empty() ? "-" : body.error, body.reason,
                   status == 200 ? "unexpected answer" : body.message, printable((*res)["x-zm-trackingid"]));
    }
    metrics_.oauth_refresh(grant.has_value());
    co_return grant;
}

void oauth_access_token::set_ready(steady::time_point until) {
    std::lock_guard lock(ready_mutex_);
    ready_until_ = until;
    reason_.clear();
}

void oauth_access_token::set_not_ready(std::string reason) {
    std::lock_guard lock(ready_mutex_);
    ready_until_ = steady::time_point::min();
    reason_ = std::move(reason);
}

// An OAuth failure while a token that has not expired is still held: ready until it expires, with
// the reason ready for when it does.
void oauth_access_token::set_failure_reason(std::string reason) {
    std::lock_guard lock(ready_mutex_);
    reason_ = std::move(reason);
}

} // namespace token_broker
