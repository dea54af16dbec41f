// The Zoom account's budget shared by every replica through Redis (CONTRACT.md section 7):
// zoom.requests_per_second for all replicas together, enforced by GCRA in a Lua script on one key
// with Redis's own TIME (so replicas' clocks do not matter), and the block a Zoom 429 leaves, kept
// as a Redis key that expires at its Retry-After and published so that replicas learn it at once.
// When Redis fails, each replica falls back to its own budget and block (upstream_budget.hpp's local
// ones) and returns to the shared ones when Redis answers again.
#pragma once

#include "redis/client.hpp"
#include "redis/script.hpp"
#include "zoom/upstream_budget.hpp"
#include "zoom/zoom_clock.hpp"

#include <spdlog/logger.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

class metrics;

// GCRA on KEYS[1] (the theoretical arrival time, microseconds of Redis's TIME), one request per call.
// ARGV: the interval between requests, the burst window (interval * burst) and the longest wait the
// caller accepts, all in whole microseconds (non-negative integers). Replies {1, wait}: granted, the
// caller may send after `wait` microseconds (its turn is reserved); or {0, wait}: refused, nothing
// consumed, the turn would have come after `wait`. The key expires when it no longer limits anyone.
// A reply that contradicts itself (a grant beyond the caller's wait, a refusal within it, a verdict
// other than 0 or 1) is Redis failing: the replica goes by its own budget.
const redis::script& gcra_script();

// KEYS[1]: the block key. Replies {time left in milliseconds (PTTL: -2 when there is no block), the
// length the block was set with (0 when there is none)}. A reply that cannot be that (a time left
// longer than its block, a block longer than max_rate_limit_block, anything but two integers) is
// Redis failing: the replica goes by its own block.
const redis::script& block_read_script();

// KEYS[1]: the block key. ARGV: the block's length in milliseconds (a positive integer) and the
// channel to publish it on. Extends the block (never shortens it: a longer one in force stays) and
// publishes the length; replies 1 when it set the key, 0 when a longer block was in force.
const redis::script& block_script();

// Lives on the Zoom client's strand; owned by a std::shared_ptr (the subscriber's callbacks hold a
// weak one). Logs one warning when it falls back to the local budget and one info line when the
// shared one is back; never a secret.
class shared_upstream_budget final : public upstream_budget,
                                     public std::enable_shared_from_this<shared_upstream_budget> {
public:
    // Keys and channel start with `key_prefix`. `m` must outlive the budget's coroutines, and have had
    // enable_redis() called for the shared-budget metrics to show.
    shared_upstream_budget(net::any_io_executor strand, std::shared_ptr<redis::client> connection,
                           std::string key_prefix, double requests_per_second, zoom_clock clock,
                           std::shared_ptr<spdlog::logger> log, metrics& m);

    net::awaitable<reservation> reserve(clock::time_point now, clock::time_point deadline) override;
    net::awaitable<void> block_until(clock::time_point now, clock::time_point until) override;
    net::awaitable<std::optional<std::chrono::seconds>> blocked_for(clock::time_point now) override;

    // The channel a 429's block is published on, for the broker's subscriber: P zoom:block.
    const std::string& block_channel() const noexcept { return block_channel_; }

    // The keys: the budget (GCRA) and the block, named after `key_prefix` in the Zoom account's hash
    // slot (zoom_keys.hpp).
    struct key_names {
        std::string budget, block;
    };
    static key_names keys_of(std::string_view key_prefix);

    // What the subscriber delivers on block_channel(): the block's length in milliseconds. Any
    // thread; ignored (logged at debug) when it is not a positive number.
    void on_block_published(std::string_view message);
    // The subscriber (re)subscribed: publications may have been missed, so read the block key.
    // Any thread.
    void on_subscribed();

private:
    // A shared command worked (true) or failed (false): the gauge, and one log line per change.
    void shared_state(bool shared, std::string_view why = {});
    // Learns a block of `ms` milliseconds from `now`.
    void learn(clock::time_point now, long long ms);
    net::awaitable<void> read_block(std::shared_ptr<shared_upstream_budget> self);

    const net::any_io_executor strand_;
    const std::shared_ptr<redis::client> redis_;
    const key_names keys_;
    const std::string block_channel_;
    const zoom_clock clock_;
    const std::shared_ptr<spdlog::logger> log_;
    metrics& metrics_;

    // On the strand.
    rate_limiter local_;           // the budget when Redis fails
    local_rate_limit_block block_; // what this replica knows of the block: its own 429s and the learnt ones
    std::optional<bool> shared_;   // the last state logged
};

} // namespace token_broker
