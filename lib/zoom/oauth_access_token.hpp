// The S2S OAuth keeper of the access token (CONTRACT.md section 5): one fetch at a time, the first
// as soon as it starts, renewed at expires_in - min(300 s, expires_in / 5), and after a failure
// tried again after 1 s, 2 s, 4 s ... up to 60 s. With a shared_access_token_store (section 7) the
// token is one for every replica: a valid shared token is used without an OAuth call, and a fetch
// (first, renewal, or after Zoom rejected the shared token) is made by one replica under the lock
// while the others wait for its result, woken by its announcement through Redis (or, when that is
// lost, looking again after one lock lease); when Redis fails, the keeper fetches its own.
#pragma once

#include "config/config.hpp"
#include "zoom/access_token.hpp"
#include "zoom/https_pool.hpp"
#include "zoom/shared_access_token.hpp"
#include "zoom/wait_queue.hpp"
#include "zoom/zoom_clock.hpp"
#include "zoom/zoom_protocol.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace token_broker {

class metrics;

// Lives on `strand` (see access_token_source); always owned by a std::shared_ptr (its loop keeps it
// alive). Every OAuth failure is logged at warn with Zoom's x-zm-trackingid, never with a secret.
// Metrics: upstream_request(oauth, ...) for every exchange, oauth_refresh(ok) for every fetch.
class oauth_access_token final : public access_token_source,
                                 public std::enable_shared_from_this<oauth_access_token> {
public:
    // Does no I/O until start(). `pool` reaches `endpoint`'s origin; `cfg` gives the credentials and
    // the request timeout; `m` must outlive the keeper's coroutines.
    // `shared`, when given, is the token shared by the replicas; at the first fetch the keeper waits
    // up to `wait_for_redis` for its connection to come up (woken when it does) before fetching alone.
    oauth_access_token(net::any_io_executor strand, std::shared_ptr<https_pool> pool, endpoint_url endpoint,
                       const zoom_config& cfg, std::shared_ptr<spdlog::logger> log, metrics& m,
                       zoom_clock clock, std::shared_ptr<shared_access_token_store> shared = nullptr,
                       std::chrono::milliseconds wait_for_redis = std::chrono::milliseconds{0});

    void start() override;
    void stop() override;
    net::awaitable<result<secret>> current(std::chrono::steady_clock::time_point deadline) override;
    void rejected(const secret& token, std::string_view why) override;
    void accepted(const secret&) override {}
    // Drops the token (a shared one that is still it is never taken from Redis again) and is not
    // ready, "app deauthorized", until a new OAuth fetch succeeds; that fetch starts at once and is
    // retried with the OAuth backoff while it fails.
    void deauthorized() override;

    // Ready while a token is held that has not expired. Not ready before start(): "waiting for the
    // first Zoom access token" once started, then the reason of the last failure, e.g. "Zoom OAuth
    // failed: invalid_client: Invalid client_id or client_secret".
    readiness ready() const override;

    // An announcement on the shared store's channel() (`stored` for "stored", false for "released"),
    // or a new subscription (what was published meanwhile is lost: false): a keeper waiting for
    // another replica's fetch looks at the shared token again at once; on "stored", one waiting out
    // its OAuth backoff after a failure too (it takes the token another replica got). On the strand.
    void shared_token_announced(bool stored);

private:
    using steady = std::chrono::steady_clock;

    // A token in hand, with when to renew it and when it expires (this process's steady time).
    struct held {
        secret token;
        steady::time_point renew;
        steady::time_point expires;
        const char* from; // for the log: "Zoom" or "Redis"
    };

    net::awaitable<void> refresh_loop(std::shared_ptr<oauth_access_token> self);
    // The next token: the shared one, or one fetched (and shared) under the lock, or this process's own.
    net::awaitable<result<held>> obtain();
    // One OAuth fetch for this process; `entry`, when given, receives it as the replicas share it.
    net::awaitable<result<held>> fetch_own(shared_access_token_store::entry* entry = nullptr);
    net::awaitable<result<held>> fetch_alone(const std::string& why);
    held adopt(const shared_access_token_store::entry& e) const;
    bool usable(const shared_access_token_store::entry& e) const;
    net::awaitable<result<oauth_grant>> request_access_token();

    void set_ready(steady::time_point until);
    void set_not_ready(std::string reason);
    void set_failure_reason(std::string reason);

    const net::any_io_executor strand_;
    const std::shared_ptr<https_pool> pool_;
    const endpoint_url endpoint_;
    const std::string client_id_;
    const std::string client_secret_;
    const std::string account_id_;
    const std::chrono::milliseconds request_timeout_;
    const std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_;
    const zoom_clock clock_;

    // Readiness, read from any thread.
    mutable std::mutex ready_mutex_;
    steady::time_point ready_until_ = steady::time_point::min();
    std::string reason_ = "waiting for the first Zoom access token";
    std::atomic<bool> stopped_flag_{false};

    // On the strand.
    bool stopped_ = false;
    std::optional<secret> token_;
    steady::time_point expires_{};
    bool pending_ = false; // a fetch is under way or about to start
    std::string failure_;  // why the last fetch failed
    wait_queue changed_;   // callers waiting for a token
    wait_queue wakeup_;    // the loop, sleeping until the next renewal

    // Sharing with the other replicas (on the strand).
    const std::shared_ptr<shared_access_token_store> shared_;
    const std::chrono::milliseconds wait_for_redis_;
    bool first_fetch_ = true;
    std::optional<secret> rejected_;  // the last token Zoom refused: never taken from Redis again
    bool deauthorized_ = false;       // app_deauthorized came: until the next fetch succeeds
    wait_queue peer_fetch_;           // the loop, waiting for another replica's fetch
    std::uint64_t announcements_ = 0; // shared_token_announced() calls so far
};

} // namespace token_broker
