// What the Zoom client asks before every token request (CONTRACT.md sections 5 and 7): whether a
// Zoom 429 still blocks calls, and a turn in the budget of zoom.requests_per_second. One interface,
// two implementations chosen by configuration: this process alone (local_upstream_budget, below), or
// the Zoom account's budget shared by every replica through Redis (shared_budget.hpp). Awaitable
// because the shared one asks Redis; the local one completes at once.
#pragma once

#include "core/net.hpp"
#include "zoom/rate_limit_block.hpp"
#include "zoom/rate_limiter.hpp"

#include <chrono>
#include <optional>

namespace token_broker {

// Every member is called on the Zoom client's strand and completes there.
class upstream_budget {
public:
    using clock = std::chrono::steady_clock;
    using reservation = rate_limiter::reservation;

    virtual ~upstream_budget() = default;

    // Reserves one request for a caller arriving at `now` (steady time of the client's clock) who
    // must have sent it by `deadline`, as rate_limiter::reserve does: first come, first served; a
    // request whose turn would come after `deadline` is refused without consuming budget.
    virtual net::awaitable<reservation> reserve(clock::time_point now, clock::time_point deadline) = 0;

    // Zoom answered 429: no request may go before `until`. Only ever extends the block. Completes
    // when the block is in force for everyone who shares it.
    virtual net::awaitable<void> block_until(clock::time_point now, clock::time_point until) = 0;

    // When blocked at `now`: the time left, as a Retry-After in whole seconds (rounded up, >= 1).
    virtual net::awaitable<std::optional<std::chrono::seconds>> blocked_for(clock::time_point now) = 0;
};

// The budget and block of this process alone (CONTRACT.md section 5).
class local_upstream_budget final : public upstream_budget {
public:
    explicit local_upstream_budget(double requests_per_second) : limiter_(requests_per_second) {}

    net::awaitable<reservation> reserve(clock::time_point now, clock::time_point deadline) override {
        co_return limiter_.reserve(now, deadline);
    }
    net::awaitable<void> block_until(clock::time_point, clock::time_point until) override {
        block_.block_until(until);
        co_return;
    }
    net::awaitable<std::optional<std::chrono::seconds>> blocked_for(clock::time_point now) override {
        co_return block_.blocked_for(now);
    }

private:
    rate_limiter limiter_;
    local_rate_limit_block block_;
};

} // namespace token_broker
