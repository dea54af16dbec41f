// The shared tier in Redis (CONTRACT.md section 7): shared_tokens over a pipelined connection that
// the replica's other Redis user (the Zoom client's shared budget) uses too, and the channels below
// on the replica's one subscription.
//
// Keys, all starting with redis.key_prefix P, for a user whose HMAC-SHA256 (sealer::key_name, keyed
// from the encryption key) is H; a cache key's type and ttl are not secret and follow in clear, so
// that the keys of one user can be found. {H} is a Redis Cluster hash tag: a user's keys under one
// encryption key share one hash slot.
//   P u:{H}:<type>:<ttl|->        a token entry, until its expires_at - m
//   P u:{H}:<type>:<ttl|->:lock   the fetch lock: SET NX PX redis.lock_lease_ms, random value, renewed
//                                 by its holder every third of the lease (owner-checked)
//   P u:{H}:<type>:<ttl|->:error  a failed fetch's error, for the replicas that waited on it (2 s)
//   P u:{H}:unknown               Zoom said the user does not exist (cache.negative_ttl_s)
//   P u:{H}:keys                  the set of the user's token entries, for DELETE
//   P u:{H}:gen                   the user's forget generation (INCR by every forget, one day): a
//                                 fetch's store is refused when it changed since its lock was taken
//   P u:{H}:revoked               the revoked mark (CONTRACT.md section 9), set by revoke() for
//                                 max(cache.negative_ttl_s, 1 h), deleted by reinstate(); while it is
//                                 there, acquire() answers `revoked` (no value read, no lock taken)
//   P replicas                    the replicas' registrations: a sorted set of random replica ids
//                                 scored with the Redis time (ms) at which each lapses (a slot of its
//                                 own)
// Every value is sealed (AES-256-GCM, the key name as associated data). Channels: P done (a fetch
// ended; the message is its entry's key name, waiters of that key re-read it), P forget (a DELETE;
// the message is a random nonce, then the user id sealed with the channel name and the nonce as
// associated data; a revocation carries "revoke=<ms>:" and a reinstatement "reinstate:" after the
// nonce, bound to the seal as well) and P forgotten (a replica dropped its copies, and removed the entries
// named under its own keys, for the DELETE whose nonce is the message, followed by ':' and its id).
//
// Forgetting is certain (CONTRACT.md section 7): the subscription PINGs every third of
// redis.invalidation_lease_ms; each answer renews this replica's registration, and only then lets it
// serve its in-memory copies for one lease from the moment that PING was sent. A DELETE waits for
// every replica registered when it ran: its confirmation, or its registration's end (and then 503
// if it renewed it meanwhile without confirming).
//
// Rotation: with a previous encryption key, reads look under the names of both keys (values under
// either open), writes go under the current key's names, and DELETE removes both; every replica that
// hears a DELETE removes the entries under its own keys' names too. The two keys' names are in two
// hash slots, so each is read or forgotten by a script call of its own (acquire and
// forget_broadcast say how the calls combine); outside a rotation a shared hit is one call.
//
// Each script touches the keys of one user under one encryption key (one slot), some of them not
// passed in KEYS (the entries listed in the user's set, named under the same hash tag), or the
// registrations alone: every script runs on one node of a Redis Cluster.
//
// The concerns, each in its own file: the key names (shared_keys.hpp), the scripts
// (shared_scripts.hpp), the waiters woken by the subscription (news_waiter.hpp), this replica's
// registration (replica_membership.hpp), the forget broadcast and its confirmations
// (forget_broadcast.hpp). What is here is the claim (acquire, store) and the wiring.
#pragma once

#include "cache/forget_broadcast.hpp"
#include "cache/news_waiter.hpp"
#include "cache/replica_membership.hpp"
#include "cache/shared_keys.hpp"
#include "cache/shared_tokens.hpp"
#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "redis/client.hpp"
#include "redis/sealed.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

namespace token_broker {

class shared_redis final : public shared_tokens {
public:
    using wall_clock = std::function<time_point()>;

    struct settings {
        std::string key_prefix = "token-broker:";
        secret encryption_key;          // 32 raw bytes
        secret previous_encryption_key; // 32 raw bytes, or empty
        // zoom.request_timeout_ms: how long a replica waits for another's fetch (plus lock_lease).
        std::chrono::milliseconds request_timeout{10000};
        // redis.lock_lease_ms: the life of a fetch lock, renewed by its holder every third of it.
        std::chrono::milliseconds lock_lease{2000};
        // redis.invalidation_lease_ms: how long in-memory copies are served after the subscription
        // last proved alive, and the life of this replica's registration.
        std::chrono::milliseconds invalidation_lease{1000};
        cache_config cache; // refresh_margin (when an entry is served), negative_ttl
        // How long a failed fetch's error stays for the replicas that waited on it.
        std::chrono::milliseconds error_ttl{2000};
        // redis.connect_timeout_ms: for this long after start(), a request that finds Redis not yet
        // connected waits for the first connection instead of fetching alone, so a replica that has
        // just started (a rolling restart) serves what the others cached instead of calling Zoom.
        std::chrono::milliseconds wait_for_redis{0};
        // How long a DELETE waits at most for the registered replicas to confirm that they forgot the
        // user, or for their registrations to lapse; then 503 cache_unavailable. Never less than
        // invalidation_lease plus 250 ms.
        std::chrono::milliseconds forget_confirm_timeout{1000};
    };

    // Does no I/O: `connection` is started and stopped by its owner, who also subscribes to
    // channels() and passes on what arrives there (on_message, on_subscribed). `m` must outlive this
    // object and have had enable_redis() called. Throws std::invalid_argument when the encryption
    // key is not 32 bytes.
    shared_redis(
        net::any_io_executor ex, std::shared_ptr<redis::client> connection, settings s, metrics& m,
        std::shared_ptr<spdlog::logger> log,
        wall_clock now = [] { return std::chrono::system_clock::now(); });
    ~shared_redis() override;
    shared_redis(const shared_redis&) = delete;
    shared_redis& operator=(const shared_redis&) = delete;

    // Opens the start-up window of settings::wait_for_redis; call once, when the connection is
    // started and before any acquire() or forget().
    void start();
    // Later acquire() and forget() no longer wait for the connection (one waiting already ends when
    // the connection is stopped); commands fail once the connection is stopped. Idempotent.
    void stop();

    // The channels this tier listens to, and what the subscription delivers: every message (those
    // of other channels are ignored) and every (re)subscription. Any thread.
    std::vector<std::string> channels() const;
    void on_message(std::string_view channel, std::string_view message);
    void on_subscribed();
    // The subscription's health check: how often to PING (a third of the invalidation lease), and
    // each answer, with the time its PING was sent (redis::subscriber's on_alive).
    std::chrono::milliseconds health_check_interval() const noexcept;
    void on_alive(std::chrono::steady_clock::time_point sent);

    net::awaitable<claim> acquire(const cache_key& key, bool for_refresh) override;
    net::awaitable<void> store(const cache_key& key, std::optional<lease> held,
                               const shared_entry* e) override;
    net::awaitable<result<void>> forget(std::string user_id) override;
    net::awaitable<result<void>> revoke(std::string user_id, std::chrono::milliseconds revoked_for) override;
    net::awaitable<result<void>> reinstate(std::string user_id) override;
    void listen(listener l) override;
    bool up() const noexcept override;
    // While Redis answers: only for one invalidation lease after a PING on the subscription was
    // sent that was answered and renewed the registration. While this replica cannot reach Redis:
    // true (a lone replica). False once at each change between the two, so that copies made before
    // it are dropped.
    bool local_copies_allowed() noexcept override;

    // The names of a key's Redis keys under the current encryption key (for tests and tools).
    using key_names = shared_key_names;
    key_names names_of(const cache_key& key) const { return keys_.names_of(key); }

private:
    struct look;

    // One look: the first usable of `values` (named under the current key) or, during a rotation,
    // of the values under the `previous` names (opened; an error only when written by the fetch whose
    // lock value is `accept_errors_of`), and whether the lock was taken for `lock_value` (only tried
    // when no usable value was found) or who holds it; revoked when either name's mark is there.
    // nullopt when Redis failed.
    net::awaitable<std::optional<look>> look_once(const std::vector<std::string>& values,
                                                  const key_names& names,
                                                  const std::optional<key_names>& previous,
                                                  const std::string& lock_value,
                                                  const std::string& accept_errors_of, bool for_refresh);
    // Takes the value `sealed` read under `name` into `l` when it is the first usable one.
    void consider(look& l, const std::string& name, const redis::reply& sealed, time_point now,
                  const std::string& accept_errors_of, bool for_refresh);
    std::optional<shared_entry> open_entry(const std::string& name, const std::string& sealed);
    // Whether the command connection is up, after waiting for it while the start-up window of
    // settings::wait_for_redis is open.
    net::awaitable<bool> connected();
    // What a message on P forget says, told to the listener; then confirmed.
    void on_forget(std::string_view message);

    net::any_io_executor executor_;
    settings settings_;
    metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
    wall_clock now_;
    redis::sealer sealer_;
    std::shared_ptr<redis::client> connection_;
    shared_key_space keys_;
    std::string done_channel_;
    replica_membership membership_;
    forget_broadcast broadcast_;
    news_board news_; // waiters on another replica's fetch, by entry key name
    std::chrono::steady_clock::time_point wait_until_; // start() + settings::wait_for_redis
    std::atomic<bool> stopped_{false};

    std::mutex listener_mutex_; // held while the listener is called or replaced
    listener listener_;
};

} // namespace token_broker
