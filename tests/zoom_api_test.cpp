// Zoom-side failures seen through HTTP, the whole broker in front of the Zoom simulator: a fixed
// access token that Zoom rejects, and a token that arrives already expired.
#include "broker_harness.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::client;
using testing::error_code_of;
using testing::running_broker;

constexpr std::string_view fixed_token = "fixed-access-token-that-zoom-does-not-know";

TEST(ZoomApi, RejectedFixedAccessTokenAnswers503AndReadyzSaysWhyUntilATokenRequestSucceeds) {
    running_broker b([](config& c) {
        c.zoom.account_id.clear();
        c.zoom.client_id.clear();
        c.zoom.client_secret.clear();
        c.zoom.access_token = std::string(fixed_token);
    });
    ASSERT_TRUE(b.wait_ready()); // configured: ready before Zoom has been asked anything
    client c(b.port());

    auto token = c.get("/token/jdoe");
    EXPECT_EQ(token.result_int(), 503) << token.body();
    EXPECT_EQ(error_code_of(token), "not_ready");
    EXPECT_NE(token.body().find("Invalid access token."), std::string::npos) << token.body();
    EXPECT_NE(token.body().find(R"("zoom_code":124)"), std::string::npos) << token.body();
    EXPECT_EQ(token.body().find(fixed_token), std::string::npos);

    auto ready = c.get("/readyz");
    EXPECT_EQ(ready.result_int(), 503);
    EXPECT_NE(ready.body().find("Zoom rejected the configured access token"), std::string::npos)
        << ready.body();
    EXPECT_EQ(ready.body().find(fixed_token), std::string::npos);

    b.sim.accept_access_token(std::string(fixed_token));
    EXPECT_EQ(c.get("/readyz").result_int(), 503); // nothing has told the broker yet
    auto ok = c.get("/token/jdoe");
    EXPECT_EQ(ok.result_int(), 200) << ok.body();
    EXPECT_EQ(c.get("/readyz").result_int(), 200);
    EXPECT_EQ(b.sim.oauth_calls(), 0u);
}

TEST(ZoomApi, TokenExpiredOnArrivalIs502AndNotCached) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    b.sim.inject({.what = zoom_sim::fault::kind::expired_token, .times = 1}, "skewed");
    client c(b.port());
    auto r = c.get("/token/skewed");
    EXPECT_EQ(r.result_int(), 502) << r.body();
    EXPECT_EQ(error_code_of(r), "upstream_error");
    EXPECT_NE(r.body().find("had already expired"), std::string::npos) << r.body();
    EXPECT_EQ(r.body().find("eyJ"), std::string::npos); // no token, not even an expired one
    auto next = c.get("/token/skewed");
    EXPECT_EQ(next.result_int(), 200) << next.body();
    EXPECT_EQ(b.sim.token_calls("skewed"), 2u);
    EXPECT_NE(c.get("/metrics").body().find("token_broker_expired_tokens_total 1"), std::string::npos);
}

} // namespace
} // namespace token_broker
