// The broker's own budget of token requests to Zoom, and the "blocked until" state a 429 leaves
// behind (CONTRACT.md section 5). Pure arithmetic on explicit times: no clock, no timers, not
// thread-safe (the Zoom client uses it from its strand).
#pragma once

#include <chrono>
#include <optional>

namespace token_broker {

class rate_limiter {
public:
    using clock = std::chrono::steady_clock;

    // At most `requests_per_second` requests a second on average, in bursts of at most
    // max(1, requests_per_second). A value <= 0 means no budget at all (every request may go at once).
    explicit rate_limiter(double requests_per_second);

    struct reservation {
        bool granted = false; // false: refused, nothing was consumed
        clock::time_point go; // when the caller may send (granted), or would have been allowed to
    };

    // Reserves one request for a caller arriving at `now` who must have sent it by `deadline`.
    // Reservations are first come, first served: each one's go time is no earlier than that of the
    // reservation before it. When the go time would be after `deadline`, the request is refused
    // without consuming budget.
    reservation reserve(clock::time_point now, clock::time_point deadline);

    // Zoom answered 429: no request may go before `until`. Only ever extends the block.
    void block_until(clock::time_point until);

    // When blocked at `now`: the time left, as a Retry-After in whole seconds (rounded up, >= 1).
    std::optional<std::chrono::seconds> blocked_for(clock::time_point now) const;

    // A wait as Retry-After seconds: rounded up, at least 1.
    static std::chrono::seconds retry_after(clock::duration wait);

private:
    clock::duration interval_{};                           // between requests at the steady rate
    clock::duration burst_window_{};                       // interval * burst
    std::optional<clock::time_point> theoretical_arrival_; // GCRA's TAT
    std::optional<clock::time_point> blocked_until_;
};

} // namespace token_broker
