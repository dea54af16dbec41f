// What a Zoom 429 leaves behind (CONTRACT.md section 5): until its Retry-After has passed, no token
// request goes to Zoom. One small object, so that a block shared by replicas (section 7) can take
// the local one's place (upstream_budget.hpp). Pure code on explicit times; not thread-safe (the
// Zoom client uses it from its strand).
#pragma once

#include <chrono>
#include <optional>

namespace token_broker {

// The longest block a 429 may impose, whatever its Retry-After says: long enough to honour a
// per-second or short limit, short enough that a broken or daily Retry-After does not refuse every
// miss for a day. After it, one request goes to Zoom and learns whether the limit still holds.
inline constexpr std::chrono::seconds max_rate_limit_block{600};

// The block of this process alone.
class local_rate_limit_block {
public:
    using clock = std::chrono::steady_clock;

    // Zoom answered 429: no request may go before `until`. Only ever extends the block.
    void block_until(clock::time_point until);

    // When blocked at `now`: the time left, as a Retry-After in whole seconds (rounded up, >= 1).
    std::optional<std::chrono::seconds> blocked_for(clock::time_point now) const;

private:
    std::optional<clock::time_point> blocked_until_;
};

} // namespace token_broker
