// The token cache's bookkeeping (CONTRACT.md section 4): what is cached under which key, until when it
// is served, when a hit should start a background refresh, which entry goes first when the cache is
// full, and the short memory of users Zoom says do not exist.
//
// Pure logic: no clock, no locks, no I/O. Every time is passed in by the caller, so tests use explicit
// times. Nothing here is thread-safe; the caller serialises access (one mutex around each object).
// Single flight (one fetch per key at a time) is the caller's business too: a hit with `refresh_due`
// says a refresh is due, and the caller starts one unless one is already under way.
#pragma once

#include "core/secret.hpp"
#include "core/token_query.hpp"
#include "core/user_identity.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace token_broker {

using time_point = std::chrono::system_clock::time_point;

// Zoom's lifetimes when no ttl is asked for (docs/ZOOM-FACTS.md): zak and onbehalf 2 hours, token 14 days.
inline constexpr std::chrono::seconds default_zak_lifetime{2 * 3600};
inline constexpr std::chrono::seconds default_token_lifetime{14 * 24 * 3600};

// An entry older than its serving window is still handed out when a fetch fails, if its token has at
// least this much real validity left ("stale if error").
inline constexpr std::chrono::seconds stale_min_validity{30};

// A cache key: the user id exactly as the caller gave it (after percent-decoding), the token type and
// the ttl asked for. An absent ttl is its own key, distinct from any explicit ttl, even 7200.
struct cache_key {
    std::string user_id;
    token_type type = token_type::zak;
    std::optional<std::uint32_t> ttl;

    friend bool operator==(const cache_key&, const cache_key&) = default;
};

// A cache key that does not own its user id, for lookups that must not allocate. It refers to the
// strings it was made from, like std::string_view; do not keep one beyond them.
struct cache_key_view {
    std::string_view user_id;
    token_type type = token_type::zak;
    std::optional<std::uint32_t> ttl;

    cache_key_view() = default;
    cache_key_view(std::string_view user_id, token_type type, std::optional<std::uint32_t> ttl) noexcept
        : user_id(user_id), type(type), ttl(ttl) {}
    // Implicit, like std::string to std::string_view.
    cache_key_view(const cache_key& key) noexcept : user_id(key.user_id), type(key.type), ttl(key.ttl) {}

    friend bool operator==(const cache_key_view&, const cache_key_view&) = default;
};

// Transparent hash and equality over cache_key and cache_key_view: an
// std::unordered_map<cache_key, T, cache_key_hash, cache_key_equal> can be searched with a
// cache_key_view (C++20 heterogeneous lookup) without building a cache_key. Equal keys hash equally
// whichever of the two types they are held in.
struct cache_key_hash {
    using is_transparent = void;
    std::size_t operator()(cache_key_view key) const noexcept;
};

struct cache_key_equal {
    using is_transparent = void;
    bool operator()(cache_key_view a, cache_key_view b) const noexcept { return a == b; }
};

// Zoom's lifetime of a token of `type` fetched without a ttl.
std::chrono::seconds default_lifetime(token_type type) noexcept;

// When a token fetched at `fetched_at` expires: its JWT `exp` claim when it has one (see jwt.hpp),
// else `fetched_at` plus the ttl asked for, or plus default_lifetime(type) when none was (a ttl is
// applied whatever the type; the request parser only lets one through for zak and onbehalf).
// An `exp` that is already past is returned as it is: such a token is never served from the cache.
// An `exp` beyond what time_point can represent (after the year 2262) is not trusted: the ttl or
// default lifetime applies instead, which can only shorten the time the token is cached.
// `fetched_at` is a real clock reading (not near time_point's limits). Never throws.
time_point token_expiry(std::string_view token, token_type type, std::optional<std::uint32_t> ttl,
                        time_point fetched_at) noexcept;

// The refresh margin m = min(configured, L / 5), with the lifetime L = expires_at - fetched_at in
// whole seconds; 0 when L <= 0 or configured <= 0. So a 2-hour ZAK gets the configured margin (300 s
// by default) and a 10-minute token gets 120 s. Never throws.
std::chrono::seconds refresh_margin(time_point fetched_at, time_point expires_at,
                                    std::chrono::seconds configured) noexcept;

// A token in the cache and its schedule.
struct cached_token {
    secret token;
    time_point fetched_at;
    time_point expires_at;
    std::chrono::seconds margin{0}; // refresh_margin(fetched_at, expires_at, configured)

    // Served from the cache while now < serve_until() (CONTRACT: now < expires_at - m).
    time_point serve_until() const noexcept { return expires_at - margin; }
    // A hit at or after this point (and before serve_until) is still served, and starts one
    // background refresh: the last m before serve_until.
    time_point refresh_from() const noexcept { return serve_until() - margin; }
};

// Cached tokens by key, bounded, least recently used first out.
//
// Complexity (average, hash-based): find, find_stale and put are O(1), eviction included;
// erase_user is O(entries of that user), through a per-user index; clear is O(size()).
// find does not allocate. Memory: one heap node per entry holding the key once, the token and four
// list links (about 140 bytes, plus the user id and token strings when longer than 15 bytes), one
// pointer-sized hash set node and bucket, and one small index node per distinct user: about 230 bytes
// per entry beyond the token and user id bytes (measured by a test with 100,000 users).
//
// `onbehalf` tokens are single-use and never cached (CONTRACT section 4): put ignores them and find
// never returns one, as a safety net for callers.
class token_cache {
public:
    struct hit {
        const cached_token* token; // valid until the next non-const call on the cache
        bool refresh_due;          // now >= token->refresh_from(): start a background refresh
    };

    // `max_entries`: at most this many entries are kept (0: none at all). `refresh_margin`: the
    // configured margin, cache.refresh_margin_s.
    token_cache(std::size_t max_entries, std::chrono::seconds refresh_margin);
    ~token_cache();
    token_cache(const token_cache&) = delete;
    token_cache& operator=(const token_cache&) = delete;

    // The entry of `key` if it may be served at `now` (now < serve_until()); a hit makes it the most
    // recently used. std::nullopt when there is none or it is past serve_until; an entry found past
    // its expires_at is dropped. Does not allocate.
    std::optional<hit> find(cache_key_view key, time_point now);

    // For stale-if-error: the entry of `key` when its token still has at least stale_min_validity of
    // real validity at `now` (expires_at - now >= 30 s), whether or not it is past serve_until;
    // otherwise nullptr. Changes nothing, not even the LRU order. The pointer is valid until the next
    // non-const call.
    const cached_token* find_stale(cache_key_view key, time_point now) const;

    // Stores `token` under `key`, replacing any entry of that key (the size does not change then),
    // and makes it the most recently used; then drops least recently used entries beyond
    // max_entries. The margin is computed here from the configured one. Ignores onbehalf keys.
    void put(cache_key key, secret token, time_point fetched_at, time_point expires_at);

    // Drops every entry of `user_id` (all types and ttls; an email in any case, see same_user) and
    // returns how many.
    std::size_t erase_user(std::string_view user_id);

    std::size_t size() const noexcept { return entries_.size(); }
    void clear() noexcept;

private:
    struct entry {
        cache_key key;
        cached_token value;
        entry* newer = nullptr; // LRU list, towards the most recently used
        entry* older = nullptr;
        entry* user_next = nullptr; // the other entries of the same user
        entry* user_prev = nullptr;
    };
    struct entry_hash {
        using is_transparent = void;
        std::size_t operator()(cache_key_view key) const noexcept { return cache_key_hash{}(key); }
        std::size_t operator()(const std::unique_ptr<entry>& e) const noexcept { return (*this)(e->key); }
    };
    struct entry_equal {
        using is_transparent = void;
        static cache_key_view view(cache_key_view key) noexcept { return key; }
        static cache_key_view view(const std::unique_ptr<entry>& e) noexcept { return e->key; }
        template <class A, class B>
        bool operator()(const A& a, const B& b) const noexcept {
            return view(a) == view(b);
        }
    };

    entry* lookup(cache_key_view key) const noexcept;
    void touch(entry* e) noexcept;
    void link_newest(entry* e) noexcept;
    void unlink_lru(entry* e) noexcept;
    void link_user(entry* e);
    void unlink_user(entry* e) noexcept;
    void remove(entry* e) noexcept;

    std::size_t max_entries_;
    std::chrono::seconds configured_margin_;
    std::unordered_set<std::unique_ptr<entry>, entry_hash, entry_equal> entries_; // owns the entries
    entry* newest_ = nullptr;
    entry* oldest_ = nullptr;
    // Each user's first entry; the key views that entry's user id.
    // Emails without regard to case (core/user_identity.hpp), so that a forget drops every spelling.
    std::unordered_map<std::string_view, entry*, user_identity_hash, user_identity_equal> users_;
};

// Users Zoom said do not exist (404 / code 1001), remembered for cache.negative_ttl_s so that repeated
// requests are answered 404 without calling Zoom. Bounded: beyond max_entries the oldest remembered
// goes first (with one ttl for all, that is also the first to expire).
// Complexity: contains, remember and forget O(1) average (remember also drops the expired oldest,
// amortised O(1)). Not thread-safe.
class negative_cache {
public:
    // `ttl` 0 (or less) or `max_entries` 0: nothing is ever remembered.
    negative_cache(std::size_t max_entries, std::chrono::seconds ttl);

    // True while a remembering of `user_id` (exact bytes) is in force: now < remembered at + ttl.
    // An expired one is dropped.
    bool contains(std::string_view user_id, time_point now);

    // Remembers that `user_id` does not exist, as of `now` (again: the ttl starts over).
    void remember(std::string user_id, time_point now);

    // Forgets `user_id`, e.g. when it has been created since or on DELETE /token/{userId}.
    void forget(std::string_view user_id);

    std::size_t size() const noexcept { return index_.size(); }
    void clear() noexcept;

private:
    struct record {
        std::string user_id;
        time_point until;
    };
    std::size_t max_entries_;
    std::chrono::seconds ttl_;
    std::list<record> records_;                                               // oldest remembered first
    std::unordered_map<std::string_view, std::list<record>::iterator> index_; // keys view records_
};

} // namespace token_broker
