#include "zoom/zoom_client.hpp"

#include "core/target_path.hpp"
#include "core/tls_client.hpp"
#include "metrics/metrics.hpp"
#include "redis/client.hpp"
#include "redis/lease.hpp"
#include "zoom/backoff.hpp"
#include "zoom/https_pool.hpp"
#include "zoom/oauth_access_token.hpp"
#include "zoom/rate_limiter.hpp"
#include "zoom/shared_access_token.hpp"
#include "zoom/shared_budget.hpp"
#include "zoom/upstream_budget.hpp"
#include "zoom/wait_queue.hpp"
#include "zoom/zoom_protocol.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>

namespace token_broker {
namespace {

using steady = std::chrono::steady_clock;

// The least time a turn in the budget must leave before the request's deadline: a call made later
// could not be answered in time and would still spend one of the account's calls.
constexpr std::chrono::milliseconds least_call_time{100};

broker_error rate_limited_error(std::string message, std::chrono::seconds retry_after) {
    broker_error e = make_error(errc::rate_limited, std::move(message));
    e.retry_after = retry_after;
    return e;
}

broker_error blocked_error(std::chrono::seconds left) {
    return rate_limited_error("Zoom's rate limit was reached; not calling Zoom until it passes", left);
}

} // namespace

class zoom_client::impl : public std::enable_shared_from_this<impl> {
public:
    impl(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log, metrics& m,
         std::optional<zoom_shared> shared, zoom_clock clock)
        : strand_(net::make_strand(std::move(ex))), cfg_(cfg), log_(std::move(log)), metrics_(m),
          clock_(std::move(clock)), api_(parse_endpoint_url(cfg.api_base_url, "zoom.api_base_url")),
          oauth_(parse_endpoint_url(cfg.oauth_token_url, "zoom.oauth_token_url")),
          retry_backoff_({milliseconds{100}, milliseconds{2000}, jitter_kind::full}) {
        if (!log_)
            throw std::invalid_argument("zoom_client: a logger is required");
        if (shared && (!shared->connection || !shared->sealer))
            throw std::invalid_argument("zoom_client: sharing through Redis needs a connection and a sealer");
        if (shared) {
            redis_ = shared->connection;
            deauthorized_channel_ = shared->key_prefix + "zoom:deauthorized";
            shared_budget_ =
                std::make_shared<shared_upstream_budget>(strand_, shared->connection, shared->key_prefix,
                                                         cfg_.requests_per_second, clock_, log_, metrics_);
            budget_ = shared_budget_;
        } else {
            budget_ = std::make_shared<local_upstream_budget>(cfg_.requests_per_second);
        }
        // A CA file that cannot be loaded is reported by start(), as before any I/O.
        std::shared_ptr<ssl::context> tls;
        try {
            tls = make_tls_client_context(cfg_.ca_file, "zoom.ca_file");
        } catch (const std::runtime_error&) {
            tls_error_ = std::current_exception();
        }
        if (tls) {
            const https_pool_options opts{cfg_.max_connections, cfg_.connect_timeout};
            api_pool_ = std::make_shared<https_pool>(strand_, tls, api_.where, opts, metrics_);
            // One pool per origin: when the OAuth endpoint shares Zoom's API origin, it shares its pool.
            oauth_pool_ = oauth_.where == api_.where
                              ? api_pool_
                              : std::make_shared<https_pool>(strand_, tls, oauth_.where, opts, metrics_);
        }
        if (cfg_.uses_oauth()) {
            std::shared_ptr<shared_access_token_store> store;
            if (shared)
                store = std::make_shared<shared_access_token_store>(shared->connection, shared->sealer,
                                                                    shared->key_prefix, cfg_.account_id, log_,
                                                                    metrics_, shared->lock_lease);
            shared_token_ = store;
            oauth_keeper_ = std::make_shared<oauth_access_token>(
                strand_, oauth_pool_, oauth_, cfg_, log_, metrics_, clock_, std::move(store),
                shared ? shared->wait_for_redis : milliseconds{0});
            keeper_ = oauth_keeper_;
        } else
            keeper_ = std::make_shared<fixed_access_token>(secret(cfg_.access_token));
    }

    void start() {
        if (tls_error_)
            std::rethrow_exception(tls_error_); // the client is not started
        if (started_flag_.exchange(true))
            return;
        net::dispatch(strand_, [self = shared_from_this()] {
            if (self->stopped_ || self->started_)
                return;
            self->started_ = true;
            self->keeper_->start();
        });
    }

    void stop() {
        if (stopped_flag_.exchange(true))
            return;
        net::dispatch(strand_, [self = shared_from_this()] {
            self->stopped_ = true;
            if (self->api_pool_)
                self->api_pool_->shutdown();
            if (self->oauth_pool_)
                self->oauth_pool_->shutdown();
            self->keeper_->stop();
            self->sleepers_.cancel_all();
        });
    }

    readiness ready() const {
        if (stopped_flag_)
            return {false, "the Zoom client is stopped"};
        if (!started_flag_)
            return {false, "the Zoom client is not started"};
        return keeper_->ready();
    }

    // Runs on the strand; keeps `self` alive until it completes. An error after a request was sent
    // to Zoom says so (asked_zoom), for the audit line.
    net::awaitable<result<secret>> fetch(std::shared_ptr<impl> self, token_query q) {
        (void)self;
        bool asked = false;
        auto r = co_await do_fetch(std::move(q), asked);
        if (r || !asked)
            co_return r;
        broker_error e = r.error();
        e.asked_zoom = true;
        co_return e;
    }

    std::vector<std::string> redis_channels() const {
        if (!shared_budget_)
            return {};
        std::vector<std::string> channels{shared_budget_->block_channel(), deauthorized_channel_};
        if (shared_token_)
            channels.push_back(shared_token_->channel());
        return channels;
    }

    void on_redis_message(std::string_view channel, std::string_view message) {
        if (shared_budget_ && channel == shared_budget_->block_channel())
            shared_budget_->on_block_published(message);
        // Another replica's app_deauthorized (this one's own has been acted on already).
        if (redis_ && channel == deauthorized_channel_ && message != replica_id_)
            net::dispatch(strand_, [self = shared_from_this()] {
                if (!self->stopped_)
                    self->keeper_->deauthorized();
            });
        // Another replica stored the shared access token or released its lock without one.
        if (shared_token_ && channel == shared_token_->channel())
            announce_shared_token(message == shared_access_token_store::stored_message);
    }

    // On the strand; keeps `self` alive until it completes.
    net::awaitable<result<void>> deauthorize(std::shared_ptr<impl> self) {
        (void)self;
        keeper_->deauthorized();
        if (!redis_)
            co_return result<void>{};
        if (shared_token_)
            co_return co_await shared_token_->drop(deauthorized_channel_, replica_id_);
        std::vector<std::string> publish{"PUBLISH", deauthorized_channel_, replica_id_};
        auto r = co_await redis_->exec(std::move(publish));
        if (!r)
            co_return r.error();
        co_return result<void>{};
    }

    void on_redis_subscribed() {
        if (shared_budget_)
            shared_budget_->on_subscribed();
        // What was announced while there was no subscription is lost: a waiting keeper looks again.
        if (shared_token_)
            announce_shared_token(false);
    }

    void announce_shared_token(bool stored) {
        net::dispatch(strand_, [self = shared_from_this(), stored] {
            if (!self->stopped_)
                self->oauth_keeper_->shared_token_announced(stored);
        });
    }

    net::strand<net::any_io_executor> strand_;

private:
    // ---- everything below runs on the strand ----

    // `asked` turns true when a request goes to Zoom.
    net::awaitable<result<secret>> do_fetch(token_query q, bool& asked) {
        const auto deadline = clock_.steady_now() + cfg_.request_timeout;
        if (stopped_)
            co_return zoom_client_stopped();
        if (!started_)
            co_return make_error(errc::not_ready, "the Zoom client is not started");
        if (q.user_id.empty())
            co_return make_error(errc::invalid_request, "the user id is empty");
        if (!q.trace || q.trace->trace_id.empty()) // a background refresh: no request, a trace of its own
            q.trace.emplace().start_new();
        const std::string target = token_request_target(api_.path, q);
        const std::string_view path = target_path(target);

        const auto blocked = co_await budget_->blocked_for(clock_.steady_now());
        if (stopped_)
            co_return zoom_client_stopped();
        if (blocked)
            co_return blocked_error(*blocked);

        std::optional<secret> refused; // the access token Zoom rejected (401/124), once
        std::string refusal;           // what Zoom said then
        unsigned retries = 0;
        for (;;) {
            auto token = co_await keeper_->current(deadline);
            if (stopped_)
                co_return zoom_client_stopped();
            if (!token)
                co_return token.error();
            if (refused && *token == *refused) {
                // The keeper has no other token to offer (a fixed one): Zoom will not take it.
                const readiness r = keeper_->ready();
                auto e = make_error(errc::not_ready,
                                    r.ready ? "Zoom rejected the access token: " + refusal : r.reason);
                e.zoom_code = 124;
                co_return e;
            }
            if (auto refused_turn = co_await wait_for_turn(deadline))
                co_return *refused_turn;

            asked = true;
            auto res = co_await exchange(target, *token, *q.trace, deadline);
            if (stopped_)
                co_return zoom_client_stopped();
            if (!res) {
                const auto& e = res.error();
                log_->warn("Zoom token request failed: endpoint=token path={} error=\"{}\"", path, e.message);
                const bool retryable =
                    e.kind == transport_failure::unreachable || e.kind == transport_failure::closed;
                if (retryable && co_await backoff_before_retry(retries, deadline))
                    continue;
                if (stopped_)
                    co_return zoom_client_stopped();
                co_return transport_failure_error(e, cfg_.request_timeout);
            }

            const unsigned status = res->result_int();
            log_->debug("Zoom GET {} -> {}", path, status);
            token_answer answer = read_token_answer(status, (*res)[http::field::retry_after], res->body(),
                                                    clock_.wall_now(), retries + 1);
            if (answer.access_token_accepted)
                keeper_->accepted(*token);
            using verdict = token_answer::verdict;
            if (answer.what == verdict::token)
                co_return std::move(answer.value);
            log_warning(*res, path, answer);
            switch (answer.what) {
            case verdict::token:
            case verdict::failed:
                break;
            case verdict::expired_token:
                metrics_.expired_token();
                break;
            case verdict::server_error:
                if (co_await backoff_before_retry(retries, deadline))
                    continue;
                if (stopped_)
                    co_return zoom_client_stopped();
                break;
            case verdict::rate_limited:
                co_return co_await rate_limited(*res, std::move(answer));
            case verdict::access_token_rejected:
                if (refused)
                    break; // a renewed token was rejected too
                refusal = zoom_said(status, answer.body);
                refused = *token;
                keeper_->rejected(*token, refusal);
                continue;
            }
            co_return std::move(answer.value);
        }
    }

    // Waits for this request's turn in the budget. The error to answer with when it gets none.
    net::awaitable<std::optional<broker_error>> wait_for_turn(steady::time_point deadline) {
        auto now = clock_.steady_now();
        if (const auto blocked = co_await budget_->blocked_for(now))
            co_return blocked_error(*blocked);
        now = clock_.steady_now();
        // A turn that leaves too little time for the call is refused like one past the deadline.
        const auto last_turn = std::max(now, deadline - least_call_time);
        const auto turn = co_await budget_->reserve(now, last_turn);
        if (stopped_)
            co_return zoom_client_stopped();
        if (!turn.granted) {
            metrics_.rate_limit_rejected();
            co_return rate_limited_error("the broker's budget of requests to Zoom is spent",
                                         rate_limiter::retry_after(turn.go - now));
        }
        if (turn.go > now) {
            metrics_.rate_limit_wait();
            if (!co_await sleep_until(turn.go))
                co_return zoom_client_stopped();
            // A 429 may have arrived meanwhile.
            if (const auto blocked = co_await budget_->blocked_for(clock_.steady_now()))
                co_return blocked_error(*blocked);
        }
        co_return std::nullopt;
    }

    // Each attempt is a span of the request's trace: a child traceparent of its own.
    net::awaitable<exchange_result> exchange(const std::string& target, const secret& access_token,
                                             const trace_context& trace, steady::time_point deadline) {
        https_request req{http::verb::get, target, 11};
        req.set(http::field::authorization, "Bearer " + access_token.reveal());
        req.set(http::field::accept, "application/json");
        req.set(http::field::user_agent, zoom_user_agent);
        req.set("traceparent", trace.child_traceparent());
        if (!trace.tracestate.empty())
            req.set("tracestate", trace.tracestate);
        const auto sent = clock_.steady_now();
        auto res = co_await api_pool_->exchange(std::move(req), clock_.timer_expiry(deadline));
        const double seconds = std::chrono::duration<double>(clock_.steady_now() - sent).count();
        if (!stopped_)
            metrics_.upstream_request(upstream_endpoint::token, metric_code(res), seconds);
        co_return res;
    }

    // A 429: blocks every call (of every replica, when they share the budget) until its Retry-After
    // (capped) has passed.
    net::awaitable<broker_error> rate_limited(const https_response& res, token_answer answer) {
        const auto now = clock_.steady_now();
        if (answer.block_capped)
            log_->warn("Zoom's Retry-After \"{}\" asks for more than {} s: not calling Zoom for {} s, then "
                       "trying again; x-zm-trackingid={}",
                       printable(res[http::field::retry_after]), max_rate_limit_block.count(),
                       max_rate_limit_block.count(), printable(res["x-zm-trackingid"]));
        co_await budget_->block_until(now, now + std::chrono::ceil<steady::duration>(answer.block));
        broker_error e = std::move(answer.value).error();
        e.retry_after = (co_await budget_->blocked_for(now)).value_or(std::chrono::seconds{1});
        co_return e;
    }

    void log_warning(const https_response& res, std::string_view path, const token_answer& a) const {
        const auto& zoom_code = a.body.code;
        // (result::error() returns a copy: keep it.)
        const std::string message = res.result_int() == 200 ? a.value.error().message : a.body.message;
        log_->warn("Zoom token request failed: endpoint=token path={} status={} zoom_code={} message=\"{}\" "
                   "x-zm-trackingid={}",
                   path, res.result_int(), zoom_code ? std::to_string(*zoom_code) : "-", message,
                   printable(res["x-zm-trackingid"]));
    }

    // Sleeps until `t`; false when stop() cut the sleep short.
    net::awaitable<bool> sleep_until(steady::time_point t) {
        co_await sleepers_.wait_until(clock_.timer_expiry(t));
        co_return !stopped_;
    }

    // Waits before retry number `retries` (then counts it) when zoom.max_retries allows one more and
    // the wait ends before `deadline`. False when no retry is to be made.
    net::awaitable<bool> backoff_before_retry(unsigned& retries, steady::time_point deadline) {
        if (retries >= cfg_.max_retries || stopped_)
            co_return false;
        const auto wake = clock_.steady_now() + retry_backoff_.delay(retries);
        if (wake >= deadline)
            co_return false;
        ++retries;
        co_return co_await sleep_until(wake);
    }

    const zoom_config cfg_;
    const std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_;
    const zoom_clock clock_;
    const endpoint_url api_;
    const endpoint_url oauth_;
    std::exception_ptr tls_error_;
    std::atomic<bool> started_flag_{false};
    std::atomic<bool> stopped_flag_{false};

    // Used on the strand.
    bool started_ = false;
    bool stopped_ = false;
    std::shared_ptr<https_pool> api_pool_;
    std::shared_ptr<https_pool> oauth_pool_;
    std::shared_ptr<access_token_source> keeper_;
    std::shared_ptr<upstream_budget> budget_;
    std::shared_ptr<shared_upstream_budget> shared_budget_; // the same as budget_, when shared through Redis
    // With Redis: the connection, the shared access token (S2S only), the channel of
    // app_deauthorized and this process's own id on it (its own message is not acted on twice).
    std::shared_ptr<redis::client> redis_;
    std::shared_ptr<shared_access_token_store> shared_token_;
    std::shared_ptr<oauth_access_token> oauth_keeper_; // keeper_ when it fetches by OAuth
    std::string deauthorized_channel_;
    const std::string replica_id_ = redis::random_value();
    backoff retry_backoff_;
    wait_queue sleepers_; // budget waits and retry backoffs
};

zoom_client::zoom_client(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log,
                         metrics& m, zoom_clock clock)
    : impl_(std::make_shared<impl>(std::move(ex), cfg, std::move(log), m, std::nullopt, std::move(clock))) {}

zoom_client::zoom_client(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log,
                         metrics& m, zoom_shared shared, zoom_clock clock)
    : impl_(std::make_shared<impl>(std::move(ex), cfg, std::move(log), m, std::move(shared),
                                   std::move(clock))) {}

std::vector<std::string> zoom_client::redis_channels() const {
    return impl_->redis_channels();
}

void zoom_client::on_redis_message(std::string_view channel, std::string_view message) {
    impl_->on_redis_message(channel, message);
}

void zoom_client::on_redis_subscribed() {
    impl_->on_redis_subscribed();
}

zoom_client::~zoom_client() {
    stop();
}

void zoom_client::start() {
    impl_->start();
}

void zoom_client::stop() {
    impl_->stop();
}

readiness zoom_client::ready() const {
    return impl_->ready();
}

net::awaitable<result<void>> zoom_client::deauthorize() {
    auto self = impl_;
    co_return co_await net::co_spawn(self->strand_, self->deauthorize(self), net::use_awaitable);
}

net::awaitable<result<secret>> zoom_client::fetch_token(token_query q) {
    auto self = impl_;
    co_return co_await net::co_spawn(self->strand_, self->fetch(self, std::move(q)), net::use_awaitable);
}

} // namespace token_broker
