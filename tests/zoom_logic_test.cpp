// The Zoom client's pure logic, with explicit times: Retry-After parsing, backoff, the request budget
// and the 429 block.
#include "zoom/backoff.hpp"
#include "zoom/rate_limiter.hpp"
#include "zoom/retry_after.hpp"

#include <gtest/gtest.h>
#include <string>
#include <vector>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

// 2020-05-30T23:59:00Z
const sys_clock::time_point t0 =
    sys_clock::time_point{std::chrono::sys_days{std::chrono::year{2020} / std::chrono::May / 30}} + 23h +
    59min;

std::optional<sys_clock::duration> wait_for(std::string_view value, sys_clock::time_point now = t0) {
    auto at = parse_retry_after(value, now);
    if (!at)
        return std::nullopt;
    return *at - now;
}

TEST(RetryAfter, DeltaSeconds) {
    EXPECT_EQ(wait_for("0"), sys_clock::duration{0s});
    EXPECT_EQ(wait_for("1"), sys_clock::duration{1s});
    EXPECT_EQ(wait_for("120"), sys_clock::duration{120s});
    EXPECT_EQ(wait_for("  7\t"), sys_clock::duration{7s});
}

TEST(RetryAfter, HugeDeltaIsCappedWithoutOverflow) {
    EXPECT_EQ(wait_for("86401"), sys_clock::duration{max_retry_after});
    EXPECT_EQ(wait_for("99999999999999999999999999999999999999"), sys_clock::duration{max_retry_after});
}

TEST(RetryAfter, HttpDate) {
    EXPECT_EQ(wait_for("Sun, 31 May 2020 00:00:00 GMT"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("Sunday, 31-May-20 00:00:30 GMT"), sys_clock::duration{90s});
    EXPECT_EQ(wait_for("Sun May 31 00:01:00 2020"), sys_clock::duration{120s});
    EXPECT_EQ(wait_for("Mon Jun  1 00:00:00 2020"), sys_clock::duration{24h});
    EXPECT_EQ(wait_for("sun, 31 may 2020 00:00:00 gmt"), sys_clock::duration{60s}); // case-insensitive
}

TEST(RetryAfter, Iso8601) {
    EXPECT_EQ(wait_for("2020-05-31T00:00:00Z"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("2020-05-31t00:00:00z"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("2020-05-31 00:00:00Z"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("2020-05-31T00:00:00"), sys_clock::duration{60s}); // no zone: UTC
    EXPECT_EQ(wait_for("2020-05-31T02:00:00+02:00"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("2020-05-31T02:00:00+0200"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("2020-05-31T02:00:00+02"), sys_clock::duration{60s});
    EXPECT_EQ(wait_for("2020-05-30T20:30:00-03:30"), sys_clock::duration{60s});
    // A fraction is rounded up to the next whole second, so a caller never returns early.
    EXPECT_EQ(wait_for("2020-05-31T00:00:00.250Z"), sys_clock::duration{61s});
    EXPECT_EQ(wait_for("2020-05-31T00:00:00.000Z"), sys_clock::duration{60s});
}

TEST(RetryAfter, ResultIsRelativeToNowIncludingSubseconds) {
    const auto now = t0 + 400ms;
    EXPECT_EQ(parse_retry_after("2020-05-31T00:00:00Z", now), t0 + 60s);
}

TEST(RetryAfter, PastDateIsNow) {
    EXPECT_EQ(wait_for("2020-05-30T00:00:00Z"), sys_clock::duration{0s});
    EXPECT_EQ(wait_for("Sun, 06 Nov 1994 08:49:37 GMT"), sys_clock::duration{0s});
}

TEST(RetryAfter, FarFutureIsCapped) {
    EXPECT_EQ(wait_for("9999-12-31T23:59:59Z"), sys_clock::duration{max_retry_after});
    EXPECT_EQ(wait_for("Fri, 31 Dec 9999 23:59:59 GMT"), sys_clock::duration{max_retry_after});
}

TEST(RetryAfter, GarbageIsNullopt) {
    for (std::string_view bad : {"",
                                 " ",
                                 "\t",
                                 "-5",
                                 "+5",
                                 "1.5",
                                 "5s",
                                 "soon",
                                 "2020-05-31",
                                 "2020-13-01T00:00:00Z",
                                 "2020-02-30T00:00:00Z",
                                 "2020-05-31T24:00:00Z",
                                 "2020-05-31T00:60:00Z",
                                 "2020-05-31T00:00:00+25:00",
                                 "2020-05-31T00:00:00Zjunk",
                                 "2020-05-31T00:00:00.Z",
                                 "Sun, 31 May 2020 00:00:00 UTC",
                                 "Sun, 31 Foo 2020 00:00:00 GMT",
                                 "Sun, 32 May 2020 00:00:00 GMT",
                                 "Sun 31 May 2020",
                                 "GMT",
                                 "Sunday, 31-May-2020 00:00:00 GMT",
                                 "Sun May 31 00:01:00",
                                 "\x01\xff",
                                 "2020-05-31T00:00"}) {
        EXPECT_EQ(parse_retry_after(bad, t0), std::nullopt) << "value: " << bad;
    }
}

TEST(RetryAfter, ArbitraryBytesNeverCrash) {
    // Every prefix of valid values, and bytes of every kind, must be handled without UB.
    const std::vector<std::string> seeds = {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                                            "Sun Nov  6 08:49:37 1994", "2020-05-31T00:00:00.123+02:00"};
    for (const auto& s : seeds) {
        for (std::size_t n = 0; n < s.size(); ++n) {
            const auto prefix = std::string_view{s}.substr(0, n);
            // Prefixes that are complete values themselves: "2", "20", "2020" (seconds), and ISO
            // times that stop at the seconds, inside the fraction or after a whole offset.
            const bool complete =
                prefix.find_first_not_of("0123456789") == std::string_view::npos ||
                (n >= 19 && s[0] == '2' && n != 20 && n != 24 && n != 25 && n != 27 && n != 28);
            EXPECT_EQ(parse_retry_after(prefix, t0).has_value(), complete && !prefix.empty()) << prefix;
        }
        EXPECT_TRUE(parse_retry_after(s, t0).has_value()) << s;
    }
    std::string bytes;
    for (int i = 0; i < 256; ++i)
        bytes.push_back(static_cast<char>(i));
    EXPECT_EQ(parse_retry_after(bytes, t0), std::nullopt);
    EXPECT_EQ(parse_retry_after(std::string_view{"\0", 1}, t0), std::nullopt);
}

TEST(Backoff, CeilingDoublesUpToTheCap) {
    const backoff_policy p{100ms, 1000ms, jitter_kind::full};
    EXPECT_EQ(backoff_ceiling(p, 0), 100ms);
    EXPECT_EQ(backoff_ceiling(p, 1), 200ms);
    EXPECT_EQ(backoff_ceiling(p, 2), 400ms);
    EXPECT_EQ(backoff_ceiling(p, 3), 800ms);
    EXPECT_EQ(backoff_ceiling(p, 4), 1000ms);
    EXPECT_EQ(backoff_ceiling(p, 4000000000u), 1000ms);
    EXPECT_EQ(backoff_ceiling({0ms, 1000ms}, 4000000000u), 0ms);
}

TEST(Backoff, FullJitterSpansZeroToCeiling) {
    double r = 0.0;
    const backoff b({100ms, 1000ms, jitter_kind::full}, [&] { return r; });
    EXPECT_EQ(b.delay(2), 0ms);
    r = 0.5;
    EXPECT_EQ(b.delay(2), 200ms);
    r = 0.999999;
    EXPECT_LE(b.delay(2), 400ms);
    EXPECT_GE(b.delay(2), 399ms);
    r = 7.0; // out of range: clamped
    EXPECT_EQ(b.delay(2), 400ms);
    EXPECT_EQ(b.delay(10), 1000ms);
}

TEST(Backoff, EqualJitterNeverBelowHalf) {
    double r = 0.0;
    const backoff b({100ms, 1000ms, jitter_kind::equal}, [&] { return r; });
    EXPECT_EQ(b.delay(0), 50ms);
    EXPECT_EQ(b.delay(3), 400ms);
    r = 0.5;
    EXPECT_EQ(b.delay(3), 600ms);
    r = -1.0;
    EXPECT_EQ(b.delay(3), 400ms);
}

TEST(Backoff, DefaultRandomStaysWithinBounds) {
    const backoff b({100ms, 1000ms, jitter_kind::full});
    for (unsigned i = 0; i < 200; ++i) {
        const auto d = b.delay(i % 6);
        EXPECT_GE(d, 0ms);
        EXPECT_LE(d, backoff_ceiling(b.policy(), i % 6));
    }
}

TEST(Backoff, OAuthScheduleDoublesFromOneSecondToAMinute) {
    EXPECT_EQ(oauth_retry_delay(0), 0s);
    EXPECT_EQ(oauth_retry_delay(1), 1s);
    EXPECT_EQ(oauth_retry_delay(2), 2s);
    EXPECT_EQ(oauth_retry_delay(3), 4s);
    EXPECT_EQ(oauth_retry_delay(6), 32s);
    EXPECT_EQ(oauth_retry_delay(7), 60s);
    EXPECT_EQ(oauth_retry_delay(1000000), 60s);
}

using steady = rate_limiter::clock;
const steady::time_point s0{std::chrono::hours{1000}};

TEST(RateLimiter, BurstThenSteadyRateInOrder) {
    rate_limiter rl(5); // burst 5, one every 200 ms after that
    std::vector<steady::time_point> go;
    for (int i = 0; i < 8; ++i) {
        auto r = rl.reserve(s0, s0 + 10s);
        EXPECT_TRUE(r.granted);
        go.push_back(r.go);
    }
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(go[i], s0) << i;
    EXPECT_EQ(go[5], s0 + 200ms);
    EXPECT_EQ(go[6], s0 + 400ms);
    EXPECT_EQ(go[7], s0 + 600ms);
}

TEST(RateLimiter, RefillsOverTime) {
    rate_limiter rl(2);
    EXPECT_EQ(rl.reserve(s0, s0).go, s0);
    EXPECT_EQ(rl.reserve(s0, s0).go, s0);
    EXPECT_FALSE(rl.reserve(s0, s0).granted);
    EXPECT_TRUE(rl.reserve(s0 + 500ms, s0 + 500ms).granted);
    EXPECT_FALSE(rl.reserve(s0 + 500ms, s0 + 500ms).granted);
    // After a long idle time the burst is back, but no more than the burst.
    const auto later = s0 + 1h;
    EXPECT_TRUE(rl.reserve(later, later).granted);
    EXPECT_TRUE(rl.reserve(later, later).granted);
    EXPECT_FALSE(rl.reserve(later, later).granted);
}

TEST(RateLimiter, RefusalBeyondDeadlineConsumesNothing) {
    rate_limiter rl(1);
    EXPECT_EQ(rl.reserve(s0, s0 + 300ms).go, s0);
    const auto refused = rl.reserve(s0, s0 + 300ms);
    EXPECT_FALSE(refused.granted);
    EXPECT_EQ(refused.go, s0 + 1s);
    EXPECT_FALSE(rl.reserve(s0, s0 + 300ms).granted);
    // A caller with a longer deadline still gets the next slot, as if the refused ones never came.
    const auto patient = rl.reserve(s0, s0 + 5s);
    EXPECT_TRUE(patient.granted);
    EXPECT_EQ(patient.go, s0 + 1s);
    EXPECT_EQ(rl.reserve(s0, s0 + 5s).go, s0 + 2s);
}

TEST(RateLimiter, FractionalRateHasBurstOfOne) {
    rate_limiter rl(0.5);
    EXPECT_EQ(rl.reserve(s0, s0 + 10s).go, s0);
    EXPECT_EQ(rl.reserve(s0, s0 + 10s).go, s0 + 2s);
}

TEST(RateLimiter, NonPositiveRateIsUnlimited) {
    rate_limiter rl(0);
    for (int i = 0; i < 1000; ++i)
        EXPECT_EQ(rl.reserve(s0, s0).go, s0);
}

TEST(RateLimiter, BlockedUntilAfter429) {
    rate_limiter rl(10);
    EXPECT_EQ(rl.blocked_for(s0), std::nullopt);
    rl.block_until(s0 + 2500ms);
    EXPECT_EQ(rl.blocked_for(s0), 3s);
    EXPECT_EQ(rl.blocked_for(s0 + 2s), 1s);
    EXPECT_EQ(rl.blocked_for(s0 + 2499ms), 1s);
    EXPECT_EQ(rl.blocked_for(s0 + 2500ms), std::nullopt);
    // A shorter block never shortens a longer one.
    rl.block_until(s0 + 10s);
    rl.block_until(s0 + 1s);
    EXPECT_EQ(rl.blocked_for(s0 + 3s), 7s);
}

TEST(RateLimiter, RetryAfterRoundsUpToAtLeastOneSecond) {
    EXPECT_EQ(rate_limiter::retry_after(0ms), 1s);
    EXPECT_EQ(rate_limiter::retry_after(1ms), 1s);
    EXPECT_EQ(rate_limiter::retry_after(1000ms), 1s);
    EXPECT_EQ(rate_limiter::retry_after(1001ms), 2s);
}

} // namespace
} // namespace token_broker
