// The broker's Prometheus metrics (CONTRACT.md section 3, /metrics). Every method is thread-safe and
// cheap enough for the cache-hit path: counters are atomics and the labelled series a hot path uses
// are looked up once and then reused.
#pragma once

#include "core/route.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace token_broker {

// The Zoom endpoints upstream requests are counted under.
enum class upstream_endpoint { token, oauth };

// How a Redis command ended (token_broker_redis_commands_total's `result`): a reply (ok; NOSCRIPT,
// which EVAL follows, included), a Redis error reply or no usable connection (error), or no reply
// within command_timeout_ms (timeout).
enum class redis_command_result { ok, error, timeout };

class metrics {
public:
    metrics();
    metrics(const metrics&) = delete;
    metrics& operator=(const metrics&) = delete;

    // The metrics in Prometheus text exposition format.
    std::string serialize() const;

    // A request answered on `r` with HTTP status `status`.
    void request_answered(route r, unsigned status);

    void cache_hit() { cache_hits_->Increment(); }
    void cache_miss() { cache_misses_->Increment(); }
    void cache_entries(std::size_t n) { cache_entries_->Set(static_cast<double>(n)); }
    void coalesced_request() { coalesced_->Increment(); }
    void background_refresh() { refreshes_->Increment(); }
    void stale_served() { stale_served_->Increment(); }

    // One upstream HTTP exchange. `code` is the HTTP status, or a word when there was none:
    // "timeout", "unreachable", "tls_error", "protocol_error".
    void upstream_request(upstream_endpoint e, const std::string& code, double seconds);

    void oauth_refresh(bool ok) { (ok ? oauth_ok_ : oauth_failed_)->Increment(); }
    void rate_limit_wait() { rate_limit_waits_->Increment(); }
    void rate_limit_rejected() { rate_limit_rejections_->Increment(); }
    // A token from Zoom whose JWT exp had already passed when it arrived (answered 502).
    void expired_token() { expired_tokens_->Increment(); }

    void connection_opened() {
        connections_open_->Increment();
        connections_total_->Increment();
    }
    void connection_closed() { connections_open_->Decrement(); }
    void connection_rejected() { connections_rejected_->Increment(); }
    void upstream_connection_opened() { upstream_connections_->Increment(); }

    // Whether /readyz would answer 200 now (token_broker_ready): set by each scrape of /metrics, so
    // that an alert needs no probe of its own.
    void ready(bool r) { ready_->Set(r ? 1 : 0); }

    // The Redis metrics of CONTRACT.md section 3, absent from /metrics until enable_redis() is called
    // (once, before the metrics are used from several threads). Before that the redis_* and
    // shared/replica calls below do nothing.
    void enable_redis();
    void redis_up(bool up);
    // Whether Redis refuses what sharing needs (token_broker_redis_degraded).
    void redis_degraded(bool degraded);
    void redis_command(redis_command_result r, double seconds);
    // A value read from Redis that did not decrypt under either key: treated as absent.
    void redis_undecryptable();
    // A local miss answered from Redis (a token another replica fetched).
    void shared_cache_hit();
    // A request that waited on another replica's Zoom fetch.
    void replica_wait();
    // Whether the Zoom budget in force is the one shared through Redis (1) or this replica's own (0,
    // the fallback while Redis fails).
    void shared_budget(bool shared);
    // A request the shared Zoom budget refused (also counted by rate_limit_rejected()).
    void shared_budget_rejected();
    // In-memory copies dropped because a forget named their user (`lease_lapsed` false) or because
    // this replica could no longer be sure to hear of a forget (`lease_lapsed` true).
    void local_copies_dropped(std::size_t n, bool lease_lapsed);

    // A Zoom event notification answered (CONTRACT.md section 9): `event` its name (or "unknown"
    // when it could not be trusted or read), `outcome` evicted, ignored, rejected or unavailable.
    void webhook_event(std::string_view event, std::string_view outcome);

private:
    prometheus::Counter& requests_series(route r, unsigned status);

    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* requests_;
    prometheus::Family<prometheus::Counter>* upstream_requests_;
    prometheus::Family<prometheus::Counter>* webhook_events_;
    prometheus::Family<prometheus::Histogram>* upstream_duration_;
    prometheus::Counter* cache_hits_;
    prometheus::Counter* cache_misses_;
    prometheus::Gauge* cache_entries_;
    prometheus::Counter* coalesced_;
    prometheus::Counter* refreshes_;
    prometheus::Counter* stale_served_;
    prometheus::Counter* oauth_ok_;
    prometheus::Counter* oauth_failed_;
    prometheus::Counter* rate_limit_waits_;
    prometheus::Counter* rate_limit_rejections_;
    prometheus::Counter* expired_tokens_;
    prometheus::Gauge* connections_open_;
    prometheus::Counter* connections_total_;
    prometheus::Counter* connections_rejected_;
    prometheus::Counter* upstream_connections_;
    prometheus::Gauge* ready_;

    struct redis_series {
        prometheus::Gauge* up;
        prometheus::Gauge* degraded;
        std::array<prometheus::Counter*, 3> commands; // by redis_command_result
        prometheus::Histogram* duration;
        prometheus::Counter* undecryptable;
        prometheus::Counter* shared_hits;
        prometheus::Counter* replica_waits;
        prometheus::Gauge* budget_shared;
        prometheus::Counter* shared_budget_rejections;
        prometheus::Counter* dropped_forget;
        prometheus::Counter* dropped_lease_lapsed;
    };
    std::unique_ptr<redis_series> redis_;

    // Request counters by route and status (100..599), created on first use.
    static constexpr std::size_t status_slots = 500;
    std::array<std::array<std::atomic<prometheus::Counter*>, status_slots>, route_count> request_series_{};
    std::mutex series_mutex_;
};

} // namespace token_broker
