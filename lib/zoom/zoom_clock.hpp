// The Zoom client's clocks, injectable so that tests can move time instead of waiting for it (as
// token_service's wall clock is): steady time for deadlines, backoff, the budget and 429 windows,
// wall time for reading Retry-After dates and JWT expiry.
#pragma once

#include <chrono>
#include <functional>

namespace token_broker {

struct zoom_clock {
    using steady = std::chrono::steady_clock;
    using wall = std::chrono::system_clock;

    // Both must be callable from any thread.
    std::function<steady::time_point()> steady_now = [] { return steady::now(); };
    std::function<wall::time_point()> wall_now = [] { return wall::now(); };

    // The real steady_clock time at which a timer must expire to wake up at `t`, a time of
    // steady_now(). Timers run on the real clock; a clock moved ahead by a test makes them wake
    // earlier rather than later. time_point::max() and min() are kept as they are.
    steady::time_point timer_expiry(steady::time_point t) const {
        if (t == steady::time_point::max() || t == steady::time_point::min())
            return t;
        const auto real = steady::now();
        const auto now = steady_now();
        if (t <= now)
            return real;
        const auto left = t - now;
        return left >= steady::time_point::max() - real ? steady::time_point::max() : real + left;
    }
};

} // namespace token_broker
