// The S2S access token shared by every replica through Redis (CONTRACT.md section 7): one token for
// all, sealed (redis::sealer) under a key named by a keyed hash of the account id, with the wall-clock
// times at which it is to be renewed and at which it expires; Redis expires the key with the token.
// A replica that needs a token fetches one only under a lock (redis/lease.hpp, the same protocol as a
// token fetch's: a lease renewed while the OAuth call runs, released by compare-and-delete), so one
// OAuth call serves every replica. The replica that held the lock announces on channel() that it
// stored a token ("stored") or released the lock without one ("released"), so that the others wake
// at once instead of looking again on a timer; the messages name no token. The keeper that uses
// this store is oauth_access_token.
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "core/secret.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

class metrics;

namespace redis {
class client;
class sealer;
} // namespace redis

class shared_access_token_store {
public:
    using wall = std::chrono::system_clock;

    struct entry {
        secret token;
        wall::time_point renew_at;   // when a replica is to fetch the next one
        wall::time_point expires_at; // when Zoom stops taking it
    };

    // Keys and channel start with `key_prefix`; `account_id` names the token (hashed, never in clear).
    // `m` counts values that do not decrypt.
    shared_access_token_store(std::shared_ptr<redis::client> connection,
                              std::shared_ptr<const redis::sealer> sealer, const std::string& key_prefix,
                              const std::string& account_id, std::shared_ptr<spdlog::logger> log, metrics& m,
                              std::chrono::milliseconds lock_lease = std::chrono::milliseconds{2000});

    bool up() const noexcept;
    // Completes with up() once the connection is up (at once when it is), at `until` (a real
    // steady_clock time), or when the connection is stopped; on the awaiting coroutine's executor.
    net::awaitable<bool> wait_up(std::chrono::steady_clock::time_point until) const;

    // Where a replica announces what became of its fetch under the lock, for the subscriber:
    // `P zoom:access-token`, with the messages below.
    const std::string& channel() const noexcept { return channel_; }
    static constexpr std::string_view stored_message = "stored";
    static constexpr std::string_view released_message = "released";

    // The shared token: nullopt when there is none (absent, expired by `now`, unreadable: logged and
    // counted); errc::cache_unavailable when Redis fails.
    net::awaitable<result<std::optional<entry>>> read(wall::time_point now) const;

    // Stores `e`, to expire with the token, then announces it on channel() ("stored"); an
    // announcement that fails is not an error (waiters look again within one lock lease).
    net::awaitable<result<void>> write(const entry& e, wall::time_point now) const;

    // Takes the fetch lock (redis/lease.hpp: one lock lease, redis.lock_lease_ms): the lock's value
    // when taken (for keep() and unlock), nullopt when another replica holds it;
    // errc::cache_unavailable when Redis fails.
    net::awaitable<result<std::optional<std::string>>> lock() const;
    // Renews the lock taken with `value` on `ex` while the handle lives.
    std::shared_ptr<void> keep(net::any_io_executor ex, const std::string& value) const;
    std::chrono::milliseconds lock_lease() const noexcept { return lock_lease_; }

    // Releases the lock if it is still `value` (compare-and-delete); failures are ignored (it expires).
    // `stored` false (the fetch failed, or its token could not be stored): announces the release on
    // channel() ("released") so that a waiting replica takes the lock at once.
    net::awaitable<void> unlock(const std::string& value, bool stored) const;

    // app_deauthorized: removes the shared token (under both encryption keys' names) and publishes
    // `message` on `channel`, in one step; errc::cache_unavailable when Redis fails.
    net::awaitable<result<void>> drop(const std::string& channel, const std::string& message) const;

    // The keys: the token under the current encryption key, its lock, and during a rotation the token
    // under the previous key; all in the Zoom account's hash slot (zoom_keys.hpp), so that a read or
    // a drop of both names is one command. The account id appears only as a keyed hash.
    struct key_names {
        std::string token, lock;
        std::optional<std::string> previous;
    };
    static key_names keys_of(const redis::sealer& sealer, std::string_view key_prefix,
                             std::string_view account_id);

private:
    std::optional<entry> open(const std::string& name, const std::string& sealed, wall::time_point now) const;
    net::awaitable<void> announce(std::string_view message) const;

    const std::shared_ptr<redis::client> redis_;
    const std::shared_ptr<const redis::sealer> sealer_;
    const key_names keys_;
    const std::string channel_;
    const std::chrono::milliseconds lock_lease_;
    const std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_;
};

} // namespace token_broker
