#include "metrics/metrics.hpp"

#include <prometheus/text_serializer.h>

namespace token_broker {
namespace {

const char* route_label(route r) {
    switch (r) {
    case route::token:
        return "token";
    case route::tokens:
        return "tokens";
    case route::healthz:
        return "healthz";
    case route::readyz:
        return "readyz";
    case route::metrics:
        return "metrics";
    case route::other:
        return "other";
    }
    return "other";
}

const char* endpoint_label(upstream_endpoint e) {
    return e == upstream_endpoint::token ? "token" : "oauth";
}

prometheus::Counter* counter(prometheus::Registry& r, const std::string& name, const std::string& help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Gauge* gauge(prometheus::Registry& r, const std::string& name, const std::string& help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

} // namespace

metrics::metrics() : registry_(std::make_shared<prometheus::Registry>()) {
    auto& r = *registry_;
    requests_ = &prometheus::BuildCounter()
                     .Name("token_broker_requests_total")
                     .Help("HTTP requests answered, by route and status code")
                     .Register(r);
    webhook_events_ = &prometheus::BuildCounter()
                           .Name("token_broker_webhook_events_total")
                           .Help("Zoom event notifications answered, by event and outcome")
                           .Register(r);
    upstream_requests_ = &prometheus::BuildCounter()
                              .Name("token_broker_upstream_requests_total")
                              .Help("Requests made to Zoom, by endpoint and outcome")
                              .Register(r);
    upstream_duration_ = &prometheus::BuildHistogram()
                              .Name("token_broker_upstream_request_duration_seconds")
                              .Help("Duration of requests made to Zoom")
                              .Register(r);
    cache_hits_ = counter(r, "token_broker_cache_hits_total", "Token requests answered from the cache");
    cache_misses_ = counter(r, "token_broker_cache_misses_total", "Token requests that needed Zoom");
    cache_entries_ = gauge(r, "token_broker_cache_entries", "Tokens held in the cache");
    coalesced_ = counter(r, "token_broker_coalesced_requests_total",
                         "Requests that waited on a Zoom fetch already under way");
    refreshes_ = counter(r, "token_broker_background_refreshes_total",
                         "Refreshes started ahead of expiry for tokens still being served");
    stale_served_ = counter(r, "token_broker_stale_served_total",
                            "Tokens served from an older entry because Zoom was failing");
    auto& oauth = prometheus::BuildCounter()
                      .Name("token_broker_oauth_refreshes_total")
                      .Help("Zoom access token fetches, by outcome")
                      .Register(r);
    oauth_ok_ = &oauth.Add({{"result", "ok"}});
    oauth_failed_ = &oauth.Add({{"result", "failed"}});
    rate_limit_waits_ = counter(r, "token_broker_rate_limit_waits_total",
                                "Upstream requests that waited for the broker's own request budget");
    rate_limit_rejections_ =
        counter(r, "token_broker_rate_limit_rejections_total", "Requests answered 429 without calling Zoom");
    expired_tokens_ = counter(r, "token_broker_expired_tokens_total",
                              "Tokens from Zoom that had already expired when they arrived (answered 502)");
    connections_open_ = gauge(r, "token_broker_connections_open", "Client connections open now");
    connections_total_ = counter(r, "token_broker_connections_total", "Client connections accepted");
    connections_rejected_ = counter(r, "token_broker_connections_rejected_total",
                                    "Client connections closed at once because max_connections was reached");
    upstream_connections_ =
        counter(r, "token_broker_upstream_connections_total", "TLS connections opened to Zoom");
    ready_ = gauge(r, "token_broker_ready", "1 while /readyz answers 200 (a Zoom access token is held)");
}

std::string metrics::serialize() const {
    return prometheus::TextSerializer().Serialize(registry_->Collect());
}

prometheus::Counter& metrics::requests_series(route r, unsigned status) {
    if (status < 100 || status >= 100 + status_slots)
        status = 500;
    auto& slot = request_series_[static_cast<std::size_t>(r)][status - 100];
    if (auto* c = slot.load(std::memory_order_acquire))
        return *c;
    std::lock_guard lock(series_mutex_);
    if (auto* c = slot.load(std::memory_order_relaxed))
        return *c;
    auto* c = &requests_->Add({{"route", route_label(r)}, {"code", std::to_string(status)}});
    slot.store(c, std::memory_order_release);
    return *c;
}

void metrics::request_answered(route r, unsigned status) {
    requests_series(r, status).Increment();
}

void metrics::upstream_request(upstream_endpoint e, const std::string& code, double seconds) {
    static const prometheus::Histogram::BucketBoundaries buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                 0.5,   1,    2.5,   5,    10};
    upstream_requests_->Add({{"endpoint", endpoint_label(e)}, {"code", code}}).Increment();
    upstream_duration_->Add({{"endpoint", endpoint_label(e)}}, buckets).Observe(seconds);
}

void metrics::webhook_event(std::string_view event, std::string_view outcome) {
    webhook_events_->Add({{"event", std::string(event)}, {"outcome", std::string(outcome)}}).Increment();
}

} // namespace token_broker

namespace token_broker {

void metrics::enable_redis() {
    if (redis_)
        return;
    auto& r = *registry_;
    auto series = std::make_unique<redis_series>();
    series->up = gauge(r, "token_broker_redis_up", "1 while the Redis connection works");
    series->degraded =
        gauge(r, "token_broker_redis_degraded",
              "1 while Redis refuses what sharing needs (a permission, a read-only replica, out "
              "of memory, a refused subscription)");
    auto& commands = prometheus::BuildCounter()
                         .Name("token_broker_redis_commands_total")
                         .Help("Redis commands, by outcome")
                         .Register(r);
    series->commands = {&commands.Add({{"result", "ok"}}), &commands.Add({{"result", "error"}}),
                        &commands.Add({{"result", "timeout"}})};
    series->duration = &prometheus::BuildHistogram()
                            .Name("token_broker_redis_command_duration_seconds")
                            .Help("Duration of Redis commands, from sending to the reply")
                            .Register(r)
                            .Add({}, prometheus::Histogram::BucketBoundaries{
                                         0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1});
    series->undecryptable = counter(r, "token_broker_redis_undecryptable_values_total",
                                    "Values read from Redis that did not decrypt (treated as absent)");
    series->shared_hits =
        counter(r, "token_broker_shared_cache_hits_total", "Local cache misses answered from Redis");
    series->replica_waits = counter(r, "token_broker_replica_waits_total",
                                    "Requests that waited on another replica's Zoom fetch");
    series->budget_shared = gauge(r, "token_broker_zoom_budget_shared",
                                  "1 while the Zoom budget in force is the one shared through Redis, 0 while "
                                  "this replica falls back to its own");
    series->shared_budget_rejections = counter(r, "token_broker_shared_budget_rejections_total",
                                               "Requests the Zoom budget shared by the replicas refused");
    auto& dropped = prometheus::BuildCounter()
                        .Name("token_broker_local_copies_dropped_total")
                        .Help("In-memory copies of tokens dropped: a forget named their user (forget), or "
                              "this replica could no longer be sure to hear of a forget (lease_lapsed)")
                        .Register(r);
    series->dropped_forget = &dropped.Add({{"reason", "forget"}});
    series->dropped_lease_lapsed = &dropped.Add({{"reason", "lease_lapsed"}});
    redis_ = std::move(series);
}

void metrics::local_copies_dropped(std::size_t n, bool lease_lapsed) {
    if (redis_ && n > 0)
        (lease_lapsed ? redis_->dropped_lease_lapsed : redis_->dropped_forget)
            ->Increment(static_cast<double>(n));
}

void metrics::redis_degraded(bool degraded) {
    if (redis_)
        redis_->degraded->Set(degraded ? 1 : 0);
}

void metrics::redis_up(bool up) {
    if (redis_)
        redis_->up->Set(up ? 1 : 0);
}

void metrics::redis_command(redis_command_result r, double seconds) {
    if (!redis_)
        return;
    redis_->commands[static_cast<std::size_t>(r)]->Increment();
    if (seconds > 0) // a command refused at once (no connection) took no time worth a sample
        redis_->duration->Observe(seconds);
}

void metrics::redis_undecryptable() {
    if (redis_)
        redis_->undecryptable->Increment();
}

void metrics::shared_cache_hit() {
    if (redis_)
        redis_->shared_hits->Increment();
}

void metrics::replica_wait() {
    if (redis_)
        redis_->replica_waits->Increment();
}

void metrics::shared_budget(bool shared) {
    if (redis_)
        redis_->budget_shared->Set(shared ? 1 : 0);
}

void metrics::shared_budget_rejected() {
    if (redis_)
        redis_->shared_budget_rejections->Increment();
}

} // namespace token_broker
