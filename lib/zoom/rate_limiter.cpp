#include "zoom/rate_limiter.hpp"

#include <algorithm>

namespace token_broker {

rate_limiter::rate_limiter(double requests_per_second) {
    if (requests_per_second > 0) {
        const std::chrono::duration<double> interval{1.0 / requests_per_second};
        interval_ = std::chrono::duration_cast<clock::duration>(interval);
        burst_window_ =
            std::chrono::duration_cast<clock::duration>(interval * std::max(1.0, requests_per_second));
    }
}

// The generic cell rate algorithm: the bucket is a "theoretical arrival time" that each request
// pushes one interval further; a request may go once that time is within one burst window.
rate_limiter::reservation rate_limiter::reserve(clock::time_point now, clock::time_point deadline) {
    if (interval_ == clock::duration::zero())
        return {true, now};
    const auto tat = theoretical_arrival_ ? std::max(*theoretical_arrival_, now) : now;
    const auto next = tat + interval_;
    const auto go = std::max(now, next - burst_window_);
    if (go > deadline)
        return {false, go};
    theoretical_arrival_ = next;
    return {true, go};
}

std::chrono::seconds rate_limiter::retry_after(clock::duration wait) {
    return std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(wait));
}

} // namespace token_broker
