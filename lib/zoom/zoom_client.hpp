// The asynchronous Zoom client that every upstream call goes through (CONTRACT.md section 5): user
// tokens from GET {api_base_url}/users/{userId}/token over kept-alive, verified TLS connections, with
// the S2S OAuth access token fetched and kept fresh in the background, retries, the broker's own
// request budget and Zoom's 429s honoured.
#pragma once

#include "config/config.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "core/secret.hpp"
#include "core/token_query.hpp"
#include "zoom/access_token.hpp"
#include "zoom/zoom_clock.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker {

class metrics;

namespace redis {
class client;
class sealer;
} // namespace redis

// What replicas share through Redis (CONTRACT.md section 7): the Zoom account's budget of
// zoom.requests_per_second, the block a Zoom 429 leaves and the S2S access token. Each falls back
// to this process's own while Redis fails, and returns to the shared one when Redis is back.
struct zoom_shared {
    std::shared_ptr<redis::client> connection;   // required; started (and stopped) by the caller
    std::shared_ptr<const redis::sealer> sealer; // required; seals the shared access token
    std::string key_prefix = "token-broker:";    // redis.key_prefix: every key and channel starts with it
    // How long a replica that starts waits for `connection` to come up before it fetches an access
    // token on its own (so that it finds the one the other replicas share).
    std::chrono::milliseconds wait_for_redis{1000};
    // redis.lock_lease_ms: the access-token fetch lock's lease (redis/lease.hpp).
    std::chrono::milliseconds lock_lease{2000};
};

// What the token service needs from Zoom. Implemented by zoom_client; tests may fake it.
class token_source {
public:
    virtual ~token_source() = default;

    // Fetches one token of q.type for q.user_id from Zoom. Completes on the caller's executor.
    // Errors (broker_error): user_not_found (with zoom_code 1001), token_unavailable ({"token": null}),
    // upstream_rejected (Zoom 400, zoom code+message passed on), rate_limited (with retry_after),
    // upstream_error (5xx after retries, unexpected body, TLS failure), not_ready (no access token:
    // OAuth failing, reason in the message), upstream_unavailable (cannot connect), upstream_timeout
    // (no answer within request_timeout). Thread-safe: may be called from any executor/thread.
    // An error's asked_zoom is true when a request was sent to Zoom for it, false when the broker
    // refused by itself (its budget, a 429 block, no access token, stopped).
    virtual net::awaitable<result<secret>> fetch_token(token_query q) = 0;

    virtual readiness ready() const = 0; // thread-safe
};

// The real token_source: the client that asks Zoom for user tokens, using an access-token keeper
// (access_token.hpp: S2S OAuth or a fixed token), a request budget (rate_limiter.hpp), the block a
// 429 leaves (rate_limit_block.hpp) and the pure reading of Zoom's answers (zoom_protocol.hpp). Its
// state lives on a strand of the executor given at construction; the public members may be called
// from any thread.
//
// fetch_token, in detail (every failure is logged at warn with Zoom's x-zm-trackingid, the endpoint,
// the status, Zoom's code and message; never a token, access token, secret or Authorization header):
//   - The whole call, including the waits for an access token, the budget and a connection, and
//     every retry, is bounded by zoom.request_timeout_ms.
//   - While a 429's Retry-After (or 1 s when it had none; at most max_rate_limit_block, 600 s, with
//     the value Zoom sent logged when it asked for longer) has not passed: rate_limited at once, with
//     retry_after the seconds left (rounded up), without calling Zoom.
//   - The broker's budget of zoom.requests_per_second: callers wait in arrival order; one whose turn
//     would come after its deadline, or within its last 100 ms (too late for Zoom to answer), gets
//     rate_limited at once (retry_after: when its turn would be), and Zoom is not called for it.
//   - S2S OAuth: with no access token yet, the call waits for the one fetch under way (never starts
//     its own); while OAuth is failing: not_ready with Zoom's reason. Zoom's 401 with code 124: the
//     keeper is told (it replaces the token once, shared by every caller) and the request retried
//     once with the new token; a second 401/124 is upstream_error.
//   - A fixed access token that Zoom rejects (401/124): not_ready, "Zoom rejected the configured
//     access token (zoom.access_token): ...", and ready() false with that reason until a request
//     made with it is accepted again (200, 400 or 404).
//   - Connection failures (refused, reset, closed mid-answer) and 5xx: retried up to zoom.max_retries
//     times with exponential backoff and full jitter, as long as the deadline allows.
//   - 200 {"token": "..."}: the token, unless it is a JWT whose exp has already passed by the wall
//     clock: upstream_error saying so (and that clocks may disagree), logged at warn and counted
//     (expired_token()). {"token": null}: token_unavailable. Any other 200 body: upstream_error.
//     404: user_not_found (Zoom's code, 1001). 400: upstream_rejected (Zoom's code and message).
//     429: rate_limited (see above). Other 4xx (401 without 124, 403, code 4711 "scope"):
//     upstream_error with Zoom's code and message. TLS failures (untrusted chain, wrong host name):
//     upstream_error, not retried. Cannot connect: upstream_unavailable. Deadline passed:
//     upstream_timeout. After stop(), or before start(): not_ready.
//   - A user id that is empty gets invalid_request; any other is sent as one percent-encoded path
//     segment ("/", "?", "#", "%", " " and the dot segments "." and ".." included), so it can never
//     change the path.
// Metrics: upstream_request(endpoint, status or word, seconds) for every exchange with Zoom,
// oauth_refresh(ok) for every OAuth fetch, rate_limit_wait()/rate_limit_rejected() for the budget,
// expired_token() for tokens that arrived expired, upstream_connection_opened() for every connection.
class zoom_client final : public token_source {
public:
    // Does no I/O until start(). `ex` is where its background work (OAuth refresh) and connections
    // live (the client makes a strand of it). `cfg` is copied. `log` and `m` are shared with the rest
    // of the broker; `m` must outlive every coroutine the client started (in practice: the
    // io_context's run). `clock` gives steady time (deadlines, backoff, budget, 429 windows) and wall
    // time (Retry-After dates, JWT expiry); tests move it. Throws std::invalid_argument when
    // api_base_url or oauth_token_url is not an https URL.
    zoom_client(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log,
                metrics& m, zoom_clock clock = {});

    // The same, sharing the budget, the 429 block and the access token with every replica that
    // names the same Redis and key prefix (CONTRACT.md section 7). `m` should have had
    // enable_redis() called, for the shared-budget metrics. Throws std::invalid_argument as above,
    // and when `shared` lacks its connection or sealer.
    zoom_client(net::any_io_executor ex, const zoom_config& cfg, std::shared_ptr<spdlog::logger> log,
                metrics& m, zoom_shared shared, zoom_clock clock = {});

    // Calls stop(). Operations still in progress end with not_ready; their state stays alive until
    // they do.
    ~zoom_client();

    zoom_client(const zoom_client&) = delete;
    zoom_client& operator=(const zoom_client&) = delete;

    // With S2S credentials: starts fetching an access token now (readiness turns true when it
    // arrives, without waiting for a caller) and keeps it fresh in the background: renewed at
    // expires_in - min(300 s, expires_in / 5), and after a failure retried after 1 s, 2 s, 4 s ...
    // up to 60 s. With a fixed access token: ready at once. Call once, from any thread.
    // Throws std::runtime_error when zoom.ca_file cannot be loaded.
    void start();

    // Cancels background work and every waiting caller (they get not_ready), closes pooled and
    // in-use connections. Idempotent; any thread; returns without waiting for them to finish.
    void stop();

    net::awaitable<result<secret>> fetch_token(token_query q) override;

    // Ready while an access token is held that has not expired (S2S), or a fixed one is configured
    // that Zoom has not rejected since it last accepted it, and the client is started and not
    // stopped. Otherwise the reason, e.g. "Zoom OAuth failed:
    // invalid_client: Invalid client_id or client_secret". Thread-safe, never blocks on I/O.
    readiness ready() const override;

    // The Redis channels the broker's redis::subscriber must listen to for this client (none
    // without Redis), and what it delivers there: pass every message and every (re)subscription on,
    // so that a 429 seen by another replica blocks this one at once, and a replica waiting for
    // another's OAuth fetch wakes as soon as it stored the access token or released its lock
    // (P zoom:access-token). Any thread.
    std::vector<std::string> redis_channels() const;
    void on_redis_message(std::string_view channel, std::string_view message);
    void on_redis_subscribed();

    // app_deauthorized (CONTRACT.md section 9): drops the access token here (ready() is false with
    // "app deauthorized" until a new OAuth fetch succeeds, made at the next token request) and,
    // with Redis, removes the shared token and tells every other replica on P zoom:deauthorized,
    // where each drops its own likewise. cache_unavailable when Redis could not be told (dropped
    // here all the same). Any thread; completes on the caller's executor.
    net::awaitable<result<void>> deauthorize();

private:
    class impl;
    std::shared_ptr<impl> impl_;
};

} // namespace token_broker
