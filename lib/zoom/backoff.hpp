// Retry delays (CONTRACT.md section 5): exponential backoff with jitter for token requests, and the
// fixed schedule for retrying a failed OAuth fetch. Pure code; the randomness is injectable.
#pragma once

#include <chrono>
#include <functional>

namespace token_broker {

using std::chrono::milliseconds;

enum class jitter_kind {
    full,  // uniform in [0, d]: spreads retries best ("full jitter")
    equal, // uniform in [d/2, d]: never retries almost at once
};

struct backoff_policy {
    milliseconds base{100}; // the ceiling of the first retry's delay
    milliseconds cap{2000}; // no delay is longer
    jitter_kind jitter = jitter_kind::full;
};

// A source of uniformly distributed numbers in [0, 1). Values outside are clamped.
using unit_random = std::function<double()>;

// A thread-safe source backed by a per-thread Mersenne twister seeded from std::random_device.
unit_random default_unit_random();

// The ceiling d = min(cap, base * 2^retry) of the delay before retry number `retry` (0 for the first).
// Never overflows, however large `retry` is.
milliseconds backoff_ceiling(const backoff_policy& p, unsigned retry) noexcept;

// Delays for retries of one operation. Copyable; holds no state between calls.
class backoff {
public:
    explicit backoff(backoff_policy p = {}, unit_random random = default_unit_random());

    // The delay before retry number `retry` (0 for the first): backoff_ceiling() with the policy's
    // jitter applied. Always within [0, cap].
    milliseconds delay(unsigned retry) const;

    const backoff_policy& policy() const noexcept { return policy_; }

private:
    backoff_policy policy_;
    unit_random random_;
};

// The wait before the next OAuth attempt after `failures` consecutive failed ones (1 for the first):
// 1 s, 2 s, 4 s ... doubling to at most 60 s. 0 failures: no wait.
std::chrono::seconds oauth_retry_delay(unsigned failures) noexcept;

} // namespace token_broker
