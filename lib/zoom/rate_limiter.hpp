// The broker's own budget of token requests to Zoom (CONTRACT.md section 5), for this process alone.
// Pure arithmetic on explicit times: no clock, no timers, not thread-safe (the Zoom client uses it
// from its strand). The "blocked until" state a 429 leaves behind is rate_limit_block's; the
// interface the Zoom client asks, with a local and a shared implementation, is upstream_budget.hpp.
#pragma once

#include <chrono>
#include <optional>

namespace token_broker {

// The budget of this process alone: GCRA on explicit times.
class rate_limiter {
public:
    using clock = std::chrono::steady_clock;

    struct reservation {
        bool granted = false; // false: refused, nothing was consumed
        clock::time_point go; // when the caller may send (granted), or would have been allowed to
    };

    // At most `requests_per_second` requests a second on average, in bursts of at most
    // max(1, requests_per_second). A value <= 0 means no budget at all (every request may go at once).
    explicit rate_limiter(double requests_per_second);

    // Reserves one request for a caller arriving at `now` who must have sent it by `deadline`.
    // Reservations are first come, first served: each one's go time is no earlier than that of the
    // reservation before it. When the go time would be after `deadline`, the request is refused
    // without consuming budget.
    reservation reserve(clock::time_point now, clock::time_point deadline);

    // Between requests at the steady rate (zero: no budget), and the burst window (interval * burst):
    // the parameters a budget shared by replicas applies the same way.
    clock::duration interval() const noexcept { return interval_; }
    clock::duration burst_window() const noexcept { return burst_window_; }

    // A wait as Retry-After seconds: rounded up, at least 1.
    static std::chrono::seconds retry_after(clock::duration wait);

private:
    clock::duration interval_{};                           // between requests at the steady rate
    clock::duration burst_window_{};                       // interval * burst
    std::optional<clock::time_point> theoretical_arrival_; // GCRA's TAT
};

} // namespace token_broker
