// The Zoom client's pure logic, with explicit times: Retry-After parsing, backoff, the request budget,
// the 429 block, the reading of Zoom's answers (every row of the mapping in zoom_client.hpp) and the
// fixed access token's bookkeeping.
#include "core/base64.hpp"
#include "core/target_path.hpp"
#include "test_support.hpp"
#include "zoom/access_token.hpp"
#include "zoom/backoff.hpp"
#include "zoom/rate_limit_block.hpp"
#include "zoom/rate_limiter.hpp"
#include "zoom/retry_after.hpp"
#include "zoom/zoom_protocol.hpp"

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

TEST(RateLimitBlock, BlockedUntilAfter429) {
    local_rate_limit_block rl;
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

// ---- Zoom's answers ----

// A JWT whose payload is {"exp": exp} (the signature is not checked by anyone).
std::string jwt_expiring_at(sys_clock::time_point exp) {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(exp.time_since_epoch()).count();
    return base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
           base64url_encode(R"({"uid":"u","exp":)" + std::to_string(secs) + "}") + ".c2lnbmF0dXJl";
}

token_answer read(unsigned status, std::string_view body, std::string_view retry_after = "") {
    return read_token_answer(status, retry_after, body, t0);
}

errc code_of(const token_answer& a) {
    return a.value ? errc::internal_error : a.value.error().code;
}

std::string message_of(const token_answer& a) {
    return a.value ? std::string() : a.value.error().message;
}

std::optional<int> zoom_code_of(const token_answer& a) {
    return a.value ? std::nullopt : a.value.error().zoom_code;
}

using verdict = token_answer::verdict;

TEST(TokenAnswer, OkWithAToken) {
    const auto a = read(200, R"({"token":"opaque-token"})");
    EXPECT_EQ(a.what, verdict::token);
    ASSERT_TRUE(a.value);
    EXPECT_EQ(a.value->reveal(), "opaque-token");
    EXPECT_TRUE(a.access_token_accepted);
}

TEST(TokenAnswer, OkWithAJwtThatHasNotExpired) {
    const auto zak = jwt_expiring_at(t0 + 1s);
    const auto a = read(200, R"({"token":")" + zak + R"("})");
    EXPECT_EQ(a.what, verdict::token);
    ASSERT_TRUE(a.value);
    EXPECT_EQ(a.value->reveal(), zak);
}

TEST(TokenAnswer, OkWithAJwtAlreadyExpiredIsUpstreamErrorNamingTheClocks) {
    for (const auto exp : {t0, t0 - 1s, t0 - 24h}) {
        const auto a = read(200, R"({"token":")" + jwt_expiring_at(exp) + R"("})");
        EXPECT_EQ(a.what, verdict::expired_token);
        EXPECT_EQ(code_of(a), errc::upstream_error);
        EXPECT_NE(message_of(a).find("had already expired"), std::string::npos) << message_of(a);
        EXPECT_NE(message_of(a).find("clocks"), std::string::npos) << message_of(a);
        EXPECT_NE(message_of(a).find("the broker's clock 2020-05-30T23:59:00Z"), std::string::npos)
            << message_of(a);
        EXPECT_EQ(message_of(a).find(".c2lnbmF0dXJl"), std::string::npos); // no piece of the token
    }
    const auto a = read(200, R"({"token":")" + jwt_expiring_at(t0 - 1h) + R"("})");
    EXPECT_NE(message_of(a).find("exp 2020-05-30T22:59:00Z"), std::string::npos) << message_of(a);
}

TEST(TokenAnswer, OkWithANullTokenIsTokenUnavailable) {
    const auto a = read(200, R"({"token":null})");
    EXPECT_EQ(a.what, verdict::failed);
    EXPECT_EQ(code_of(a), errc::token_unavailable);
}

TEST(TokenAnswer, OkWithAnyOtherBodyIsUpstreamErrorThatQuotesNothing) {
    for (std::string_view body : {"", "<html>502</html>", "[]", R"({"token":""})", R"({"token":5})",
                                  R"({"tok":"x"})", R"({"token":"secret-looking" )"}) {
        const auto a = read(200, body);
        EXPECT_EQ(a.what, verdict::failed) << body;
        EXPECT_EQ(code_of(a), errc::upstream_error) << body;
        EXPECT_EQ(message_of(a).find("secret-looking"), std::string::npos);
    }
}

TEST(TokenAnswer, NotFoundIsUserNotFoundWithZoomsCode) {
    const auto a = read(404, R"({"code":1001,"message":"User does not exist: x."})");
    EXPECT_EQ(a.what, verdict::failed);
    EXPECT_EQ(code_of(a), errc::user_not_found);
    EXPECT_EQ(zoom_code_of(a), 1001);
    EXPECT_NE(message_of(a).find("User does not exist: x."), std::string::npos);
    EXPECT_TRUE(a.access_token_accepted);
    EXPECT_EQ(zoom_code_of(read(404, "")), 1001); // no body: Zoom's code for it all the same
}

TEST(TokenAnswer, BadRequestIsUpstreamRejectedWithZoomsCodeAndMessage) {
    const auto a = read(400, R"({"code":300,"message":"Invalid type"})");
    EXPECT_EQ(a.what, verdict::failed);
    EXPECT_EQ(code_of(a), errc::upstream_rejected);
    EXPECT_EQ(zoom_code_of(a), 300);
    EXPECT_NE(message_of(a).find("Invalid type (code 300)"), std::string::npos) << message_of(a);
    EXPECT_TRUE(a.access_token_accepted);
}

TEST(TokenAnswer, TooManyRequestsBlocksForRetryAfter) {
    const auto a =
        read(429, R"({"code":429,"message":"You have reached the maximum per-second rate limit"})", "2");
    EXPECT_EQ(a.what, verdict::rate_limited);
    EXPECT_EQ(code_of(a), errc::rate_limited);
    EXPECT_EQ(zoom_code_of(a), 429);
    EXPECT_EQ(a.block, sys_clock::duration{2s});
    EXPECT_FALSE(a.block_capped);
    EXPECT_EQ(a.value.error().retry_after, 2s);
    EXPECT_FALSE(a.access_token_accepted);
    // An ISO 8601 time, as Zoom sends it; an HTTP date.
    EXPECT_EQ(read(429, "", "2020-05-31T00:00:00Z").block, sys_clock::duration{60s});
    EXPECT_EQ(read(429, "", "Sun, 31 May 2020 00:00:00 GMT").value.error().retry_after, 60s);
}

TEST(TokenAnswer, TooManyRequestsWithoutAReadableRetryAfterBlocksOneSecond) {
    for (std::string_view header : {"", "soon", "-3"}) {
        const auto a = read(429, "", header);
        EXPECT_EQ(a.block, sys_clock::duration{1s}) << header;
        EXPECT_EQ(a.value.error().retry_after, 1s) << header;
    }
    // A time already past: no block, but a caller is still told to wait a second.
    const auto past = read(429, "", "2020-05-30T00:00:00Z");
    EXPECT_EQ(past.block, sys_clock::duration{0s});
    EXPECT_EQ(past.value.error().retry_after, 1s);
}

TEST(TokenAnswer, TooManyRequestsFarInTheFutureIsCappedAtTenMinutes) {
    EXPECT_EQ(max_rate_limit_block, 600s);
    for (std::string_view header : {"601", "86400", "2020-05-31T23:59:00Z", "9999-12-31T23:59:59Z"}) {
        const auto a = read(429, "", header);
        EXPECT_EQ(a.block, sys_clock::duration{600s}) << header;
        EXPECT_TRUE(a.block_capped) << header;
        EXPECT_EQ(a.value.error().retry_after, 600s) << header;
    }
    const auto at_cap = read(429, "", "600");
    EXPECT_EQ(at_cap.block, sys_clock::duration{600s});
    EXPECT_FALSE(at_cap.block_capped);
}

TEST(TokenAnswer, ServerErrorsAreRetryableUpstreamErrors) {
    for (unsigned status : {500u, 502u, 503u, 504u, 599u}) {
        const auto a = read_token_answer(status, "", R"({"code":503,"message":"busy"})", t0, 3);
        EXPECT_EQ(a.what, verdict::server_error) << status;
        EXPECT_EQ(code_of(a), errc::upstream_error);
        EXPECT_EQ(zoom_code_of(a), 503);
        EXPECT_NE(message_of(a).find("busy (code 503) (after 3 attempts)"), std::string::npos)
            << message_of(a);
    }
    EXPECT_NE(message_of(read(500, "")).find("HTTP 500 (after 1 attempt)"), std::string::npos);
}

TEST(TokenAnswer, UnauthorizedWithCode124AsksForANewAccessToken) {
    const auto a = read(401, R"({"code":124,"message":"Invalid access token."})");
    EXPECT_EQ(a.what, verdict::access_token_rejected);
    EXPECT_EQ(code_of(a), errc::upstream_error);
    EXPECT_EQ(zoom_code_of(a), 124);
    EXPECT_NE(message_of(a).find("Zoom rejected the access token: Invalid access token. (code 124)"),
              std::string::npos)
        << message_of(a);
    EXPECT_FALSE(a.access_token_accepted);
}

TEST(TokenAnswer, OtherUnauthorizedForbiddenAndScopeAreUpstreamErrors) {
    const auto other401 = read(401, R"({"code":200,"message":"No permission."})");
    EXPECT_EQ(other401.what, verdict::failed);
    EXPECT_EQ(code_of(other401), errc::upstream_error);
    EXPECT_EQ(zoom_code_of(other401), 200);

    const auto forbidden = read(403, R"({"code":200,"message":"Forbidden."})");
    EXPECT_EQ(forbidden.what, verdict::failed);
    EXPECT_EQ(code_of(forbidden), errc::upstream_error);
    EXPECT_NE(message_of(forbidden).find("unexpected answer from Zoom: Forbidden."), std::string::npos);

    for (unsigned status : {401u, 403u, 422u}) {
        const auto scope =
            read(status, R"({"code":4711,"message":"Invalid access token, does not contain scopes."})");
        EXPECT_EQ(scope.what, verdict::failed) << status;
        EXPECT_EQ(code_of(scope), errc::upstream_error) << status;
        EXPECT_EQ(zoom_code_of(scope), 4711);
        EXPECT_NE(message_of(scope).find("user:read:token:admin"), std::string::npos) << status;
    }
}

TEST(TokenAnswer, AnyOtherStatusIsUpstreamError) {
    for (unsigned status : {204u, 302u, 405u, 418u}) {
        const auto a = read(status, "not json");
        EXPECT_EQ(a.what, verdict::failed) << status;
        EXPECT_EQ(code_of(a), errc::upstream_error) << status;
        EXPECT_EQ(zoom_code_of(a), std::nullopt);
        EXPECT_NE(message_of(a).find("HTTP " + std::to_string(status)), std::string::npos);
    }
}

TEST(TokenAnswer, ZoomsTextIsMadePrintableAndBounded) {
    const auto a = read(400, R"({"code":1,"message":"line\nbreak\u0000)" + std::string(400, 'x') + R"("})");
    EXPECT_EQ(message_of(a).find('\n'), std::string::npos);
    EXPECT_EQ(message_of(a).find('\0'), std::string::npos);
    EXPECT_NE(message_of(a).find("line break"), std::string::npos);
    EXPECT_NE(message_of(a).find("..."), std::string::npos);
    EXPECT_LT(message_of(a).size(), 400u);
    // A code beyond int's range is no code.
    EXPECT_EQ(parse_error_body(R"({"code":99999999999,"message":"m"})").code, std::nullopt);
}

TEST(OAuthAnswer, GrantOrTheReason) {
    const auto ok =
        read_oauth_answer(200, R"({"access_token":"at","token_type":"bearer","expires_in":3600})");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->token.reveal(), "at");
    EXPECT_EQ(ok->expires_in, 3600s);
    EXPECT_EQ(read_oauth_answer(200, R"({"access_token":"at","expires_in":3599.0})")->expires_in, 3599s);

    const auto bad =
        read_oauth_answer(400, R"({"reason":"Invalid client_id or client_secret","error":"invalid_client"})");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, errc::not_ready);
    EXPECT_EQ(bad.error().message, "Zoom OAuth failed: invalid_client: Invalid client_id or client_secret");
    EXPECT_EQ(read_oauth_answer(503, R"({"code":503,"message":"busy"})").error().message,
              "Zoom OAuth failed: busy (code 503)");
    for (std::string_view body :
         {"", R"({"access_token":"at"})", R"({"access_token":"","expires_in":60})",
          R"({"access_token":"at","expires_in":0})", R"({"access_token":"at","expires_in":0.5})"}) {
        const auto r = read_oauth_answer(200, body);
        ASSERT_FALSE(r) << body;
        EXPECT_EQ(r.error().message, "Zoom OAuth failed: unexpected answer from the OAuth endpoint") << body;
    }
}

TEST(TransportFailure, EveryKindHasItsError) {
    const auto of = [](transport_failure k) { return transport_failure_error({k, "why"}, 3000ms); };
    EXPECT_EQ(of(transport_failure::unreachable).code, errc::upstream_unavailable);
    EXPECT_EQ(of(transport_failure::timeout).code, errc::upstream_timeout);
    EXPECT_NE(of(transport_failure::timeout).message.find("3000 ms"), std::string::npos);
    EXPECT_EQ(of(transport_failure::tls).code, errc::upstream_error);
    EXPECT_NE(of(transport_failure::tls).message.find("TLS"), std::string::npos);
    EXPECT_EQ(of(transport_failure::closed).code, errc::upstream_error);
    EXPECT_EQ(of(transport_failure::protocol).code, errc::upstream_error);
    EXPECT_EQ(of(transport_failure::cancelled).code, errc::not_ready);
}

TEST(TokenRequestTarget, UserIdIsOneEncodedSegmentAndParametersFollowInOrder) {
    token_query q;
    q.user_id = "../a b/?#%";
    EXPECT_EQ(token_request_target("/v2", q), "/v2/users/..%2Fa%20b%2F%3F%23%25/token?type=zak");
    q.user_id = "..";
    q.type = token_type::onbehalf;
    q.ttl = 600;
    q.meeting_id = "123456789";
    EXPECT_EQ(token_request_target("", q), "/users/%2E%2E/token?type=onbehalf&ttl=600&meeting_id=123456789");
    EXPECT_EQ(target_path("/v2/users/x/token?type=zak"), "/v2/users/x/token");
}

TEST(EndpointUrl, HttpsOnly) {
    const auto u = parse_endpoint_url("https://api.zoom.us:8443/v2/?x=1", "zoom.api_base_url");
    EXPECT_EQ(u.where.host, "api.zoom.us");
    EXPECT_EQ(u.where.port, "8443");
    EXPECT_EQ(u.path, "/v2");
    EXPECT_EQ(u.query, "x=1");
    EXPECT_EQ(parse_endpoint_url("https://zoom.us/oauth/token", "k").where.port, "443");
    EXPECT_THROW(parse_endpoint_url("http://api.zoom.us/v2", "zoom.api_base_url"), std::invalid_argument);
    EXPECT_THROW(parse_endpoint_url("not a url", "zoom.api_base_url"), std::invalid_argument);
}

TEST(BasicAuthorization, IsBase64OfUserColonPassword) {
    EXPECT_EQ(basic_authorization("sim-client", "sim-secret"), "Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0");
}

// ---- the fixed access token ----

TEST(FixedAccessToken, RejectedUntilAcceptedAgainAndOnlyForItsOwnToken) {
    fixed_access_token keeper(secret("fixed"));
    keeper.start();
    EXPECT_TRUE(keeper.ready().ready);
    keeper.rejected(secret("some-older-token"), "Invalid access token. (code 124)");
    EXPECT_TRUE(keeper.ready().ready); // not its token: nothing to do
    keeper.rejected(secret("fixed"), "Invalid access token. (code 124)");
    EXPECT_FALSE(keeper.ready().ready);
    EXPECT_EQ(
        keeper.ready().reason,
        "Zoom rejected the configured access token (zoom.access_token): Invalid access token. (code 124)");
    keeper.accepted(secret("other"));
    EXPECT_FALSE(keeper.ready().ready);
    keeper.accepted(secret("fixed"));
    EXPECT_TRUE(keeper.ready().ready);
    EXPECT_EQ(keeper.ready().reason, "");
    keeper.stop();
    EXPECT_FALSE(keeper.ready().ready);
}

} // namespace
} // namespace token_broker
