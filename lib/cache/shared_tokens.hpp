// The shared tier of the token cache (CONTRACT.md section 7): what replicas that name the same Redis
// share, seen from the token service. The token service asks it only on a local miss, and only its
// local leader does (local followers wait on the local flight), so a local hit never reaches it.
// Without a shared tier (no redis.url) the token service is a lone replica, exactly as section 4.
//
// The interface says nothing of Redis; shared_redis.hpp is its Redis implementation. The next
// shared things (the Zoom budget, the access token, the 429 block) get interfaces of their own
// beside this one, not members of it.
//
// Also here: the pure parts the implementation decides with (an entry's encoding, its validity,
// the key names), testable without a server.
#pragma once

#include "cache/token_cache.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "core/secret.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// What one replica's fetch produced, as every replica reads it back.
struct shared_entry {
    enum class kind {
        token,        // `token`, fetched at `fetched_at` (so every replica computes the same margin)
        unknown_user, // Zoom said the user does not exist
        error,        // the fetch failed with `error`: for the replicas that waited on it
    };
    kind what = kind::token;
    secret token; // Zoom's token, as it answered
    time_point fetched_at;
    time_point expires_at;
    broker_error error;
    std::string fetch_id; // error: the lock value of the fetch that failed, so waiters know it is theirs
};

// The plain text of an entry (Boost.JSON), before sealing; and back. decode_shared_entry returns
// nullopt for anything that is not such a text (a value of another version, a bug): a miss.
std::string encode_shared_entry(const shared_entry& e);
std::optional<shared_entry> decode_shared_entry(std::string_view text);

// Whether a token entry may be served at `now`: now < expires_at - m, with m the margin of section 4
// (refresh_margin(fetched_at, expires_at, configured)). With `for_refresh`, only when it is not in
// its own final window either (now < refresh_from): a refresh wants a newer token than the one it
// refreshes, not the same one read back. Entries of other kinds are always usable (Redis expires
// them).
bool usable_shared_entry(const shared_entry& e, time_point now, std::chrono::seconds configured_margin,
                         bool for_refresh) noexcept;

// How long Redis should keep a token entry written at `now`: until it is no longer served,
// expires_at - m, which is never later than the token itself. Zero or less: not worth writing.
std::chrono::milliseconds shared_token_lifetime(const shared_entry& e, time_point now,
                                                std::chrono::seconds configured_margin) noexcept;

// The shared tier. Implementations are thread-safe; their coroutines complete on the caller's
// executor. They never make an answer the broker could give alone into an error: when the shared
// store fails, claim() says "fetch alone" and store() does nothing.
class shared_tokens {
public:
    virtual ~shared_tokens() = default;

    // The right to fetch a key for every replica: this replica holds the key's lock.
    struct lease {
        std::string lock_key;
        std::string value; // random, this attempt's own: the lock is released only by its owner
        // The user's forget generation when the lock was taken: store() writes nothing when a forget
        // came since (the fence of CONTRACT.md section 7).
        std::string generation;
        // Kept while the lock is renewed: the holder renews the lock while any copy of this lives.
        std::shared_ptr<void> renewal;
    };

    // What a local leader does next.
    struct claim {
        enum class kind {
            found,       // `entry` is what another replica fetched: use it, do not call Zoom
            fetch,       // call Zoom, then store(): with `held` this replica fetches for all
            fetch_alone, // call Zoom as a lone replica: the store is failing, or waiting took too long
            revoked,     // the user is marked revoked (revoke()): call Zoom, keep and share nothing
        };
        kind what = kind::fetch_alone;
        shared_entry entry;
        std::optional<lease> held;
    };

    // For the local leader of `key` (never onbehalf). Looks for a usable entry (see
    // usable_shared_entry; `for_refresh` for a background refresh); when there is none, takes the
    // key's lock; when another replica holds it, waits for that replica's result, woken by its
    // publication and re-reading on a timer as well, and takes the lock itself when it is freed
    // without a result. Waits at most zoom.request_timeout_ms plus one second in all, then answers
    // fetch_alone. A user marked revoked (by any replica, see revoke()) is answered `revoked` at
    // once, without taking the lock. Each shared-store command is bounded by its own timeout.
    virtual net::awaitable<claim> acquire(const cache_key& key, bool for_refresh) = 0;

    // After a fetch: writes `e` for every replica, only when `held` and no forget of the user came
    // since the lock was taken (null: nothing), wakes their waiters and releases `held`. Best
    // effort: a failure is logged at debug level, never an error. Never throws but std::bad_alloc.
    virtual net::awaitable<void> store(const cache_key& key, std::optional<lease> held,
                                       const shared_entry* e) = 0;

    // DELETE: removes every entry of `user_id` (all types and ttls, and its unknown-user entry) and
    // tells every replica to forget it locally. cache_unavailable when the store cannot confirm that.
    virtual net::awaitable<result<void>> forget(std::string user_id) = 0;

    // The revoked mark of CONTRACT.md section 9: forget() with every guarantee, and in the same step
    // marks `user_id` revoked for every replica for `revoked_for` (acquire() answers `revoked` for
    // it meanwhile, on every replica, even one that missed the broadcast), and has every replica that
    // hears it mark the user locally (listener::revoked). cache_unavailable as forget().
    virtual net::awaitable<result<void>> revoke(std::string user_id,
                                                std::chrono::milliseconds revoked_for) = 0;

    // Clears the revoked mark of `user_id` for every replica (user.activated) and tells those that
    // hear it (listener::reinstated). cache_unavailable when the store cannot clear it.
    virtual net::awaitable<result<void>> reinstate(std::string user_id) = 0;

    // Whoever keeps local copies, told when they must go: `user` when a replica (this one included)
    // forgot that user; `everyone` when this replica may have missed such news (after its
    // subscription was lost and made again). Called from the implementation's threads; listen()
    // with an empty listener waits for a call under way to finish.
    // `revoked`: a replica revoked that user for that long (forget it too); `reinstated`: its mark
    // was cleared.
    struct listener {
        std::function<void(std::string_view user_id)> user;
        std::function<void()> everyone;
        std::function<void(std::string_view user_id, std::chrono::milliseconds revoked_for)> revoked;
        std::function<void(std::string_view user_id)> reinstated;
    };
    virtual void listen(listener l) = 0;

    // True while the shared store is reachable (for /readyz).
    virtual bool up() const noexcept = 0;

    // Whether this replica may serve and keep in-memory copies now: only while it is sure to hear
    // of a forget (CONTRACT.md section 7, "Forgetting is certain"). When it answers false, the caller
    // drops every in-memory copy before it answers anything. Any thread; cheap (the hit path).
    virtual bool local_copies_allowed() noexcept { return true; }
};

} // namespace token_broker
