// The token cache in service (CONTRACT.md section 4): answers token queries from the cache or from
// Zoom, with one fetch per key at a time (single flight), a background refresh for hits in the final
// window before expiry, negative caching of unknown users, stale-if-error, and DELETE.
//
// Answers are rendered here, as the JSON body of CONTRACT.md section 3: each cache entry holds its
// answer up to "expires_in", so a hit only appends two numbers to a reused buffer.
#pragma once

#include "cache/token_cache.hpp"
#include "config/config.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "metrics/metrics.hpp"
#include "zoom/zoom_client.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <spdlog/logger.h>

namespace token_broker {

// How an answer was made, for the audit line.
struct answer_source {
    bool cached = false; // from the cache (a hit, or stale)
    bool stale = false;  // from an older entry because Zoom was failing
};

class token_service {
public:
    using clock = std::function<time_point()>;

    // `zoom`, `m` and `log` must outlive the service. `ex` runs the background refreshes. `now` is
    // the wall clock (replaced in tests).
    token_service(
        net::any_io_executor ex, token_source& zoom, const cache_config& cfg, metrics& m,
        std::shared_ptr<spdlog::logger> log, clock now = [] { return std::chrono::system_clock::now(); });
    ~token_service();
    token_service(const token_service&) = delete;
    token_service& operator=(const token_service&) = delete;

    // The cache-hit path: when the cache holds a servable token for `q`, writes the answer into `body`
    // (replacing its contents) and returns true, starting a background refresh when the entry is in
    // its final window. Never suspends, never calls Zoom, allocates nothing once `body` has grown.
    // Thread-safe.
    bool answer_from_cache(const token_query& q, std::string& body);

    // The rest: a remembered unknown user (404 without calling Zoom), an onbehalf token (always
    // fetched, never shared), or a fetch from Zoom that concurrent callers of the same key share.
    // On success writes the answer into `body`. Errors are those of token_source::fetch_token, except
    // that a failing fetch is answered from a still-valid older entry (stale) when there is one.
    // Completes on the caller's executor. Thread-safe.
    net::awaitable<result<answer_source>> answer(const token_query& q, std::string& body);

    // Forgets every cached token of `user_id` (all types and ttls) and its negative entry. Fetches
    // under way still answer their waiters, but their result is not cached. Returns how many entries
    // were dropped. Thread-safe.
    std::size_t forget(std::string_view user_id);

    std::size_t size() const;

    // What a fetch produced: an answer prefix and its expiry, or an error; shared by all its waiters.
    struct outcome;
    struct flight;

private:
    net::awaitable<std::shared_ptr<const outcome>> fetch(cache_key key, token_query q,
                                                         std::shared_ptr<flight> f);
    net::awaitable<std::shared_ptr<const outcome>> wait(std::shared_ptr<flight> f);
    void start_refresh(cache_key_view key);
    void render(const secret& prefix, time_point expires_at, time_point now, bool cached, bool stale,
                std::string& body) const;

    net::any_io_executor executor_;
    token_source& zoom_;
    metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
    clock now_;

    mutable std::mutex mutex_; // guards the members below
    token_cache cache_;
    negative_cache unknown_users_;
    std::unordered_map<cache_key, std::shared_ptr<flight>, cache_key_hash, cache_key_equal> flights_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Renders the part of an answer that does not change while it is cached:
// {"token":"...","type":"zak","user_id":"...","expires_at":"2026-11-29T23:00:00Z","expires_in":
std::string render_answer_prefix(std::string_view token, token_type type, std::string_view user_id,
                                 time_point expires_at);

// RFC 3339 UTC with whole seconds, e.g. "2026-11-29T23:00:00Z".
std::string format_rfc3339(time_point t);

} // namespace token_broker
