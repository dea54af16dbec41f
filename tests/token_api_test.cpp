// GET and DELETE /token/{userId} through HTTP, against the Zoom simulator over real TLS
// (CONTRACT.md sections 3 and 4).
#include "broker_harness.hpp"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::client;
using testing::error_code_of;
using testing::json_body;
using testing::running_broker;

TEST(TokenApi, FirstAnswerIsFreshAndTheSecondCachedWithoutAnotherZoomCall) {
    running_broker b;
    client c(b.port());
    auto first = c.get("/token/jdoe%40example.com");
    ASSERT_EQ(first.result_int(), 200) << first.body();
    EXPECT_EQ(first[http::field::cache_control], "no-store");
    auto j1 = json_body(first);
    EXPECT_FALSE(j1.at("cached").as_bool());
    EXPECT_EQ(j1.at("user_id").as_string(), "jdoe@example.com");
    EXPECT_EQ(j1.at("type").as_string(), "zak");
    EXPECT_GE(j1.at("expires_in").as_int64(), 7198);
    EXPECT_LE(j1.at("expires_in").as_int64(), 7200);
    EXPECT_EQ(std::count(j1.at("token").as_string().begin(), j1.at("token").as_string().end(), '.'), 2);

    auto second = c.get("/token/jdoe@example.com");
    auto j2 = json_body(second);
    EXPECT_TRUE(j2.at("cached").as_bool());
    EXPECT_EQ(j2.at("token"), j1.at("token"));
    EXPECT_EQ(j2.at("expires_at"), j1.at("expires_at"));
    EXPECT_EQ(b.sim.token_calls("jdoe@example.com"), 1u);
}

TEST(TokenApi, TtlAndTypeAreDistinctEntries) {
    running_broker b;
    client c(b.port());
    EXPECT_EQ(c.get("/token/a").result_int(), 200);
    auto with_ttl = c.get("/token/a?ttl=3600");
    EXPECT_GE(json_body(with_ttl).at("expires_in").as_int64(), 3598);
    EXPECT_LE(json_body(with_ttl).at("expires_in").as_int64(), 3600);
    EXPECT_EQ(json_body(c.get("/token/a?type=token")).at("type").as_string(), "token");
    EXPECT_TRUE(json_body(c.get("/token/a?type=zak&ttl=3600")).at("cached").as_bool());
    EXPECT_TRUE(json_body(c.get("/token/a?type=zak")).at("cached").as_bool());
    EXPECT_EQ(b.sim.token_calls("a"), 3u);
}

TEST(TokenApi, ConcurrentRequestsForASlowUserMakeOneZoomCall) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 500ms, .times = -1}, "slow@example.com");
    auto answers = testing::concurrent_gets(b.port(), "/token/slow@example.com", 200);
    const auto token = json_body(answers.front()).at("token");
    for (auto& a : answers) {
        ASSERT_EQ(a.result_int(), 200) << a.body();
        EXPECT_EQ(json_body(a).at("token"), token);
    }
    EXPECT_EQ(b.sim.token_calls("slow@example.com"), 1u);
    client c(b.port());
    auto metrics = c.get("/metrics").body();
    EXPECT_NE(metrics.find("token_broker_coalesced_requests_total 199"), std::string::npos) << metrics;
}

TEST(TokenApi, AFailingFetchReachesEveryWaiterAsTheSameError) {
    running_broker b([](config& c) { c.zoom.request_timeout = 500ms; });
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::hang, .times = -1}, "stuck");
    auto answers = testing::concurrent_gets(b.port(), "/token/stuck", 50);
    for (auto& a : answers) {
        EXPECT_EQ(a.result_int(), 504);
        EXPECT_EQ(error_code_of(a), "upstream_timeout");
    }
    EXPECT_EQ(b.sim.token_calls("stuck"), 1u);
}

TEST(TokenApi, OnBehalfTokensAreFetchedEveryTime) {
    running_broker b;
    client c(b.port());
    auto a = c.get("/token/obf?type=onbehalf&meeting_id=123456789");
    auto d = c.get("/token/obf?type=onbehalf&meeting_id=123456789");
    ASSERT_EQ(a.result_int(), 200) << a.body();
    ASSERT_EQ(d.result_int(), 200) << d.body();
    EXPECT_NE(json_body(a).at("token"), json_body(d).at("token"));
    EXPECT_FALSE(json_body(d).at("cached").as_bool());
    EXPECT_EQ(b.sim.token_calls("obf"), 2u);
    const auto targets = b.sim.received_targets();
    EXPECT_NE(std::find_if(
                  targets.begin(), targets.end(),
                  [](const std::string& t) { return t.find("meeting_id=123456789") != std::string::npos; }),
              targets.end());
}

TEST(TokenApi, UnknownUsersAreRemembered) {
    running_broker b;
    client c(b.port());
    for (int i = 0; i < 3; ++i) {
        auto r = c.get("/token/unknown-7");
        EXPECT_EQ(r.result_int(), 404);
        EXPECT_EQ(error_code_of(r), "user_not_found");
        EXPECT_EQ(json_body(r).at("error").at("zoom_code").as_int64(), 1001);
    }
    EXPECT_EQ(b.sim.token_calls("unknown-7"), 1u);
}

TEST(TokenApi, GoogleLoginUsersHaveNoToken) {
    running_broker b;
    b.sim.add_user("gmail-user", {.google_login = true});
    client c(b.port());
    auto r = c.get("/token/gmail-user?type=token");
    EXPECT_EQ(r.result_int(), 404);
    EXPECT_EQ(error_code_of(r), "token_unavailable");
}

TEST(TokenApi, DeleteForgetsEveryTokenOfTheUser) {
    running_broker b;
    client c(b.port());
    c.get("/token/d");
    c.get("/token/d?ttl=600");
    c.send("DELETE /token/d HTTP/1.1\r\nHost: x\r\n\r\n");
    auto del = c.read();
    EXPECT_EQ(del.result_int(), 204);
    EXPECT_TRUE(del.body().empty());
    EXPECT_FALSE(json_body(c.get("/token/d")).at("cached").as_bool());
    EXPECT_FALSE(json_body(c.get("/token/d?ttl=600")).at("cached").as_bool());
    EXPECT_EQ(b.sim.token_calls("d"), 4u);
}

TEST(TokenApi, LeastRecentlyUsedEntriesAreEvictedPastMaxEntries) {
    running_broker b([](config& c) { c.cache.max_entries = 2; });
    client c(b.port());
    c.get("/token/u1");
    c.get("/token/u2");
    c.get("/token/u1");
    c.get("/token/u3"); // evicts u2
    EXPECT_TRUE(json_body(c.get("/token/u1")).at("cached").as_bool());
    EXPECT_FALSE(json_body(c.get("/token/u2")).at("cached").as_bool());
    EXPECT_EQ(b.sim.token_calls("u2"), 2u);
    EXPECT_EQ(b.sim.token_calls("u1"), 1u);
}

TEST(TokenApi, EveryMalformedRequestIs400WithoutCallingZoom) {
    running_broker b;
    const std::string bad[] = {
        "/token/a?type=zpk",
        "/token/a?type=",
        "/token/a?ttl=59",
        "/token/a?ttl=31536001",
        "/token/a?ttl=abc",
        "/token/a?type=token&ttl=600",
        "/token/a?meeting_id=123456789",
        "/token/a?type=onbehalf&meeting_id=12345678",
        "/token/a?foo=bar",
        "/token/a?ttl=60&ttl=61",
        "/token/..",
        "/token/.",
        "/token/a%2Fb",
        "/token/a%25b",
        "/token/a%5Cb",
        "/token/a%20b",
        "/token/a/b",
        "/token/",
        "/token/a%3Fb",
        "/token/" + std::string(255, 'x'),
    };
    client c(b.port()); // one connection: a 400 must not close it
    for (const auto& target : bad) {
        auto r = c.get(target);
        EXPECT_EQ(r.result_int(), 400) << target;
        EXPECT_EQ(error_code_of(r), "invalid_request") << target;
    }
    EXPECT_EQ(b.sim.token_calls(), 0u);
    EXPECT_EQ(c.get("/token/" + std::string(254, 'x')).result_int(), 200);
}

// Section 3: server.header_timeout_ms bounds reading a request's head only. Once read, the answer's own
// deadline applies, and the caller gets that answer on the same connection, never a silent close.
void short_header_timeout(config& c) {
    c.server.header_timeout = 300ms;
    c.zoom.request_timeout = 1200ms;
}

// The answer to a GET, or a description of why none came (the connection closed, the read timed out).
http::response<http::string_body> get_or_describe(client& c, std::string_view target, std::string& failure) {
    try {
        return c.get(target);
    } catch (const std::exception& e) {
        failure = e.what();
        return {};
    }
}

TEST(TokenApi, AGetForAUserZoomNeverAnswersIs504AfterTheHeaderTimeoutHasPassed) {
    running_broker b(short_header_timeout);
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::hang, .times = -1}, "stuck");
    client c(b.port());
    std::string failure;
    const auto res = get_or_describe(c, "/token/stuck", failure);
    ASSERT_TRUE(failure.empty()) << "no answer: " << failure;
    EXPECT_EQ(res.result_int(), 504) << res.body();
    EXPECT_EQ(error_code_of(res), "upstream_timeout");
    // The connection goes on: the next request on it is answered.
    EXPECT_EQ(get_or_describe(c, "/healthz", failure).result_int(), 200) << failure;
}

TEST(TokenApi, ZoomAnsweringAfterTheHeaderTimeoutStillGivesThe200) {
    running_broker b(short_header_timeout);
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 800ms, .times = -1}, "slow");
    client c(b.port());
    std::string failure;
    const auto res = get_or_describe(c, "/token/slow", failure);
    ASSERT_TRUE(failure.empty()) << "no answer: " << failure;
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(b.sim.token_calls("slow"), 1u);
}

TEST(TokenApi, ZoomRateLimitIsPassedOnWithRetryAfter) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::rate_limited, .retry_after = "7", .times = 1}, "busy");
    client c(b.port());
    auto r = c.get("/token/busy");
    EXPECT_EQ(r.result_int(), 429);
    EXPECT_EQ(error_code_of(r), "rate_limited");
    EXPECT_EQ(r[http::field::retry_after], "7");
    // Until it passes, misses are answered 429 without calling Zoom.
    auto other = c.get("/token/someone-else");
    EXPECT_EQ(other.result_int(), 429);
    EXPECT_EQ(b.sim.token_calls("someone-else"), 0u);
}

TEST(TokenApi, ReadyzTurnsReadyWithoutACaller) {
    running_broker b;
    EXPECT_TRUE(b.wait_ready());
    EXPECT_EQ(b.sim.oauth_calls(), 1u);
    EXPECT_EQ(b.sim.token_calls(), 0u);
}

TEST(TokenApi, BadCredentialsMakeReadyzAndTokensAnswer503WithTheReason) {
    running_broker b([](config& c) { c.zoom.client_secret = "wrong-secret"; });
    client c(b.port());
    http::response<http::string_body> ready;
    for (int i = 0; i < 200; ++i) {
        ready = c.get("/readyz");
        if (ready.body().find("invalid_client") != std::string::npos ||
            ready.body().find("Invalid client") != std::string::npos)
            break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(ready.result_int(), 503);
    EXPECT_NE(ready.body().find("nvalid"), std::string::npos) << ready.body();
    auto token = c.get("/token/jdoe");
    EXPECT_EQ(token.result_int(), 503);
    EXPECT_EQ(error_code_of(token), "not_ready");
    EXPECT_EQ(token.body().find("wrong-secret"), std::string::npos);
}

// The audit line's `source` says where each answer came from (docs/CONTRACT.md section 8): Zoom for
// what Zoom answered, its errors included; the cache for a hit and for a remembered unknown user;
// the broker for a 429 of its own block, which no request to Zoom made; `-` before the cache; a
// DELETE's own.
TEST(TokenApi, TheAuditSourceSaysWhereEachAnswerCameFrom) {
    running_broker b([](config& c) { c.log.format = log_format::json; });
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    auto get = [&](std::string_view target, std::string_view id) {
        return c.get(target, "X-Request-Id: " + std::string(id) + "\r\n");
    };
    EXPECT_EQ(get("/token/unknown-a", "src-1").result_int(), 404);
    EXPECT_EQ(get("/token/unknown-a", "src-2").result_int(), 404);
    EXPECT_EQ(b.sim.token_calls("unknown-a"), 1u);
    EXPECT_EQ(get("/token/fresh", "src-3").result_int(), 200);
    EXPECT_EQ(get("/token/fresh", "src-4").result_int(), 200);
    EXPECT_EQ(get("/token/a?type=zpk", "src-5").result_int(), 400);
    b.sim.inject({.what = zoom_sim::fault::kind::rate_limited, .retry_after = "7", .times = 1}, "x");
    EXPECT_EQ(get("/token/x", "src-6").result_int(), 429);
    const auto y = get("/token/y", "src-7");
    EXPECT_EQ(y.result_int(), 429);
    EXPECT_EQ(y[http::field::retry_after].empty(), false);
    EXPECT_EQ(b.sim.token_calls("y"), 0u);
    c.send("DELETE /token/fresh HTTP/1.1\r\nHost: x\r\nX-Request-Id: src-8\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 204);

    std::map<std::string, std::string> source;
    std::istringstream lines(b.log.text());
    for (std::string line; std::getline(lines, line);) {
        const auto v = boost::json::parse(line).as_object();
        if (v.contains("msg") && v.at("msg") == "audit")
            source[std::string(v.at("request_id").as_string())] = v.at("source").as_string();
    }
    const std::map<std::string, std::string> expected{
        {"src-1", "zoom"}, {"src-2", "cache"}, {"src-3", "zoom"},   {"src-4", "cache"},
        {"src-5", "-"},    {"src-6", "zoom"},  {"src-7", "broker"}, {"src-8", "delete"},
    };
    EXPECT_EQ(source, expected);
}

} // namespace
} // namespace token_broker
