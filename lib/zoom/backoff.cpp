#include "zoom/backoff.hpp"

#include <algorithm>
#include <random>

namespace token_broker {

unit_random default_unit_random() {
    return [] {
        thread_local std::mt19937_64 engine{std::random_device{}()};
        return std::uniform_real_distribution<double>{0.0, 1.0}(engine);
    };
}

milliseconds backoff_ceiling(const backoff_policy& p, unsigned retry) noexcept {
    const auto base = std::max<milliseconds::rep>(0, p.base.count());
    const auto cap = std::max<milliseconds::rep>(0, p.cap.count());
    // Doubling stops as soon as the cap is reached, so the shift never overflows.
    milliseconds::rep d = base;
    for (unsigned i = 0; i < retry && d > 0 && d < cap; ++i)
        d = d > cap / 2 ? cap : d * 2;
    return milliseconds{std::min(d, cap)};
}

backoff::backoff(backoff_policy p, unit_random random) : policy_(p), random_(std::move(random)) {}

milliseconds backoff::delay(unsigned retry) const {
    const double d = static_cast<double>(backoff_ceiling(policy_, retry).count());
    const double r = std::clamp(random_ ? random_() : 0.0, 0.0, 1.0);
    const double jittered = policy_.jitter == jitter_kind::full ? d * r : d / 2 + d / 2 * r;
    return milliseconds{static_cast<milliseconds::rep>(std::min(jittered, d))};
}

std::chrono::seconds oauth_retry_delay(unsigned failures) noexcept {
    if (failures == 0)
        return std::chrono::seconds{0};
    constexpr std::chrono::seconds first{1}, cap{60};
    auto d = first;
    for (unsigned i = 1; i < failures && d < cap; ++i)
        d *= 2;
    return std::min(d, cap);
}

} // namespace token_broker
