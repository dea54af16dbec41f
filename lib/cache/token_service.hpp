// The token cache in service (CONTRACT.md section 4): answers token queries from the cache or from
// Zoom, with one fetch per key at a time (single flight), a background refresh for hits in the final
// window before expiry, negative caching of unknown users, stale-if-error, and DELETE.
//
// A request looks at the cache once (look_up): a hit is answered there and then, without suspending;
// a miss leaves with a ticket, its place in the single flight of its key taken under the same lock,
// and complete() turns the ticket into the answer.
//
// With a shared tier (section 7, shared_tokens.hpp) a local miss's leader asks it before Zoom: a
// token another replica fetched is answered "cached"; a fetch under way on another replica is waited
// for. Local hits and local followers never reach it; onbehalf queries never do.
#pragma once

#include "cache/shared_tokens.hpp"
#include "cache/token_answer.hpp"
#include "cache/token_cache.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "metrics/metrics.hpp"
#include "zoom/zoom_client.hpp"

#include <spdlog/logger.h>

#include <functional>
#include <memory>
#include <mutex>

namespace token_broker {

class token_service {
public:
    using wall_clock = std::function<time_point()>;

    struct flight;
    struct flight_waiter;

    // A miss's place in line: the leader of a new fetch of its key, a follower of the fetch under
    // way, or (onbehalf) a fetch of its own. Made by look_up, spent by complete(). A leader's ticket
    // dropped unspent ends its fetch at once with internal_error, so that no follower waits for it.
    class ticket {
    public:
        ticket() = default;
        ticket(ticket&& other) noexcept;
        ticket& operator=(ticket&& other) noexcept;
        ~ticket();

        bool leads() const noexcept { return leads_; }

    private:
        friend class token_service;
        void abandon() noexcept;

        token_service* service_ = nullptr;
        std::shared_ptr<flight> flight_; // null for onbehalf
        bool leads_ = false;
    };

    // What look_up found.
    enum class lookup {
        hit,          // the answer is in `body`
        unknown_user, // Zoom said lately that this user does not exist: answer unknown_user_error()
        miss,         // `ticket` holds the request's place: co_await complete()
    };

    // `zoom`, `m` and `log` must outlive the service. `ex` runs the background refreshes. `now` is
    // the wall clock (replaced in tests). `shared`: the shared tier, or null for none (a lone
    // replica); when set it must outlive the service, which listens to it for forgotten users.
    token_service(
        net::any_io_executor ex, token_source& zoom, const cache_config& cfg, metrics& m,
        std::shared_ptr<spdlog::logger> log, wall_clock now = [] { return std::chrono::system_clock::now(); },
        shared_tokens* shared = nullptr);
    ~token_service();
    token_service(const token_service&) = delete;
    token_service& operator=(const token_service&) = delete;

    // The one look at the cache for `q`, under one lock. A hit writes the answer into `body`
    // (replacing its contents; no allocation once `body` has grown) and starts a background refresh
    // when the entry is in its final window. A miss registers the request in its key's single flight
    // and fills `t` (onbehalf: always a miss, never shared). Never suspends, never calls Zoom.
    // Thread-safe.
    lookup look_up(const token_query& q, std::string& body, ticket& t);

    // Completes a miss: the leader fetches from Zoom (and caches the result), a follower waits for
    // the leader's outcome. On success writes the answer into `body`. Errors are those of
    // token_source::fetch_token, except that a failing fetch is answered from a still-valid older
    // entry (stale) when there is one. `q` must be the query `t` was made for and outlive the call.
    // Completes on the caller's executor. Thread-safe.
    net::awaitable<result<answer_source>> complete(const token_query& q, ticket t, std::string& body);

    // look_up, then complete() on a miss; a remembered unknown user is unknown_user_error().
    net::awaitable<result<answer_source>> answer(const token_query& q, std::string& body);

    // The error of a remembered unknown user: user_not_found with Zoom's code 1001.
    static broker_error unknown_user_error();

    // Forgets every cached token of `user_id` (all types and ttls) and its negative entry, in this
    // process. Fetches under way still answer their waiters, but their result is not cached (nor
    // shared). Returns how many entries were dropped. Thread-safe.
    std::size_t forget(std::string_view user_id);

    // True with a shared tier: a DELETE then goes through forget_everywhere().
    bool shares() const noexcept { return shared_ != nullptr; }

    // DELETE with a shared tier: forget() here, then removes the user's shared entries and has every
    // replica forget the user. cache_unavailable when the shared tier cannot confirm that (the local
    // copies are gone all the same). Without a shared tier: forget() and success. Thread-safe.
    net::awaitable<result<void>> forget_everywhere(std::string user_id);

    // The revoked mark of CONTRACT.md section 9 (a deactivated, deleted or disassociated user), in
    // this process, until `until` (wall clock) or reinstate(): meanwhile the user's fetches go to Zoom
    // (never answered from the shared tier), nothing fetched is cached or shared, and no stale answer
    // is given. An email in any case (same_user). Thread-safe.
    void revoke(std::string_view user_id, time_point until);
    void reinstate(std::string_view user_id);
    bool revoked(std::string_view user_id) const;

    // An eviction that revokes: revoke() and forget() here at once, then, with a shared tier, the
    // mark for every replica (stored in the shared tier for `revoked_for`, so that a replica that
    // missed the news still honours it) with the forget's guarantees. cache_unavailable when the
    // shared tier cannot confirm that (this process has the mark and has forgotten all the same).
    net::awaitable<result<void>> revoke_everywhere(std::string user_id, std::chrono::seconds revoked_for);
    // user.activated: reinstate() here, then clears the mark in the shared tier. cache_unavailable
    // when the shared tier cannot.
    net::awaitable<result<void>> reinstate_everywhere(std::string user_id);

    std::size_t size() const;

    // What a fetch produced: an answer prefix and its expiry, or an error; shared by all its waiters.
    struct fetch_outcome;

private:
    // A flight's fetch (a miss's, or a background refresh with `refresh`): from the shared tier when
    // there is one and it has the answer, else from Zoom; lands `f` (null for onbehalf).
    net::awaitable<std::shared_ptr<const fetch_outcome>> fetch(cache_key key, token_query q,
                                                               std::shared_ptr<flight> f, bool refresh);
    // Forgets every local entry (the shared tier may have missed invalidations).
    void forget_all();
    // Drops every local entry, with mutex_ held: how many token entries went.
    std::size_t drop_all_locked();
    // Counts `n` copies dropped (token_broker_local_copies_dropped_total) and updates the gauge.
    void local_copies_dropped(std::size_t n, bool lease_lapsed);
    net::awaitable<std::shared_ptr<const fetch_outcome>> wait(std::shared_ptr<flight> f);
    // Ends flight `f` with `o`: no longer joinable, its waiters handed back to be resumed. With
    // mutex_ held.
    std::vector<flight_waiter> land_locked(flight& f, std::shared_ptr<const fetch_outcome> o);
    // The same, taking the lock, and resumes the waiters.
    void land(flight& f, std::shared_ptr<const fetch_outcome> o);

    net::any_io_executor executor_;
    token_source& zoom_;
    metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
    wall_clock now_;
    std::chrono::seconds refresh_margin_;
    shared_tokens* shared_;

    mutable std::mutex mutex_; // guards the members below
    token_cache cache_;
    negative_cache unknown_users_;
    std::unordered_map<cache_key, std::shared_ptr<flight>, cache_key_hash, cache_key_equal> flights_;
    // Revoked users (user_identity) and until when.
    std::unordered_map<std::string, time_point> revoked_;
    bool revoked_locked(std::string_view user_id, time_point now) const;
};

} // namespace token_broker
