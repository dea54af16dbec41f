// The shared tier in Redis (CONTRACT.md section 7): shared_tokens over one pipelined connection and
// one subscription.
//
// Keys, all starting with redis.key_prefix P, for a user whose HMAC-SHA256 (sealer::key_name, keyed
// from the encryption key) is H; a cache key's type and ttl are not secret and follow in clear, so
// that the keys of one user can be found:
//   P u:H:<type>:<ttl|->          a token entry, until its expires_at - m
//   P u:H:<type>:<ttl|->:lock     the fetch lock: SET NX PX zoom.request_timeout_ms + 1000, random value
//   P u:H:<type>:<ttl|->:error    a failed fetch's error, for the replicas that waited on it (2 s)
//   P u:H:unknown                 Zoom said the user does not exist (cache.negative_ttl_s)
//   P u:H:keys                    the set of the user's token entries, for DELETE
// Every value is sealed (AES-256-GCM, the key name as associated data). Channels: P done (a fetch
// ended; the message is its entry's key name, waiters of that key re-read it) and P forget (a DELETE;
// the message is the user id sealed with the channel name as associated data).
//
// Rotation: with a previous encryption key, reads look under the names of both keys (values under
// either open), writes go under the current key's names, and DELETE removes both.
//
// The scripts touch keys of one user only, some of them not passed in KEYS (the entries listed in
// the user's set): fine on one Redis, not meant for Redis Cluster.
#pragma once

#include "cache/shared_tokens.hpp"
#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "redis/connection.hpp"
#include "redis/script.hpp"
#include "redis/sealed.hpp"
#include "redis/subscriber.hpp"

#include <spdlog/logger.h>

#include <memory>
#include <mutex>
#include <unordered_map>

namespace token_broker {

class shared_redis final : public shared_tokens {
public:
    using wall_clock = std::function<time_point()>;

    struct settings {
        std::string key_prefix = "token-broker:";
        secret encryption_key;          // 32 raw bytes
        secret previous_encryption_key; // 32 raw bytes, or empty
        // zoom.request_timeout_ms: how long a replica waits for another's fetch (plus one second),
        // and the lock's life (plus one second), so a dead fetcher holds nobody up for longer.
        std::chrono::milliseconds request_timeout{10000};
        cache_config cache; // refresh_margin (when an entry is served), negative_ttl
        // How often a waiter re-reads the entry when no publication came (publications can be lost).
        std::chrono::milliseconds poll_interval{150};
        // How long a failed fetch's error stays for the replicas that waited on it.
        std::chrono::milliseconds error_ttl{2000};
    };

    // Does no I/O until start(). `m` must outlive this object and have had enable_redis() called.
    // Throws std::invalid_argument when the encryption key is not 32 bytes, and what
    // redis::connection::create throws (an unreadable ca_file).
    shared_redis(
        net::any_io_executor ex, redis::options o, settings s, metrics& m,
        std::shared_ptr<spdlog::logger> log,
        wall_clock now = [] { return std::chrono::system_clock::now(); });
    ~shared_redis() override;
    shared_redis(const shared_redis&) = delete;
    shared_redis& operator=(const shared_redis&) = delete;

    // Connects the command connection and the subscription in the background (and reconnects them).
    void start();
    // Closes both; commands under way fail, claims answer fetch_alone. Idempotent.
    void stop();

    net::awaitable<claim> acquire(const cache_key& key, bool for_refresh) override;
    net::awaitable<void> store(const cache_key& key, std::optional<lease> held,
                               const shared_entry* e) override;
    net::awaitable<result<void>> forget(std::string user_id) override;
    void listen(listener l) override;
    bool up() const noexcept override;

    // The names of a key's Redis keys under the current encryption key (for tests and tools).
    struct key_names {
        std::string entry, lock, error, unknown, index;
    };
    key_names names_of(const cache_key& key) const;

private:
    struct waiter;
    class waiter_registration;
    struct look;

    // The names of `key`'s Redis keys under the previous encryption key, during a rotation.
    std::optional<key_names> previous_names_of(const cache_key& key) const;
    // One look: the first usable of `values` (opened; an error only when written by the fetch whose
    // lock value is `accept_errors_of`), and whether the lock was taken for `lock_value` (only tried
    // when no usable value was found) or who holds it. nullopt when Redis failed.
    net::awaitable<std::optional<look>> look_once(const std::vector<std::string>& values,
                                                  const std::string& lock_key, const std::string& lock_value,
                                                  const std::string& accept_errors_of, bool for_refresh);
    std::optional<shared_entry> open_entry(const std::string& name, const std::string& sealed);
    void on_message(std::string_view channel, std::string_view message);
    void on_subscribed();

    settings settings_;
    metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
    wall_clock now_;
    redis::sealer sealer_;
    std::shared_ptr<redis::connection> connection_;
    std::shared_ptr<redis::subscriber> subscriber_;
    std::string done_channel_, forget_channel_;
    redis::script look_script_, store_script_, forget_script_;

    std::mutex waiters_mutex_;                                              // guards waiters_
    std::unordered_multimap<std::string, std::shared_ptr<waiter>> waiters_; // by entry key name

    std::mutex listener_mutex_; // held while the listener is called or replaced
    listener listener_;
};

} // namespace token_broker
