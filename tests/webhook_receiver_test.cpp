// The webhook listener in process (CONTRACT.md section 9): an http_server with the receiver as its
// handler, a token service in front of a fake Zoom, signed requests sent over loopback.
#include "cache/token_service.hpp"
#include "server/router.hpp"
#include "server_harness.hpp"
#include "webhook/receiver.hpp"
#include "webhook/signature.hpp"
#include "webhook_support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::captured_log;
using testing::client;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::running_server;

constexpr std::string_view secret_token = "webhook-secret-token-for-tests";
constexpr std::string_view account = "acct-1";

// Zoom: a new token for every call, or the error set.
class counting_zoom final : public token_source {
public:
    std::atomic<int> calls{0};
    std::optional<broker_error> fail_with;
    net::awaitable<result<secret>> fetch_token(token_query q) override {
        const int n = ++calls;
        if (fail_with)
            co_return *fail_with;
        co_return secret("token-" + q.user_id + "-" + std::to_string(n));
    }
    readiness ready() const override { return {true, {}}; }
};

std::string user_event(std::string_view name, std::string_view id, std::string_view email,
                       std::string_view acct = account) {
    return testing::user_event(name, id, email, acct);
}

class WebhookReceiverTest : public ::testing::Test {
protected:
    WebhookReceiverTest() {
        server_config listener;
        listener.kept_body_path = "/zoom/webhook";
        listener.max_body_bytes = 4096;
        webhook::receiver::settings s;
        s.secret_token = secret(std::string(secret_token));
        s.account_id = std::string(account);
        receiver_ = std::make_unique<webhook::receiver>(s, tokens_, metrics_, log_.logger, nullptr);
        server_ = std::make_unique<running_server>(listener, *receiver_, log_.logger, metrics_);
    }

    // A token for `user` through the service, as a GET would get it: "cached", "fresh" or "stale",
    // or the error code's name.
    std::string get(const std::string& user) {
        token_query q{user, token_type::zak, std::nullopt, std::nullopt};
        std::string body;
        auto r = net::co_spawn(ioc_, tokens_.answer(q, body), net::use_future);
        ioc_.restart();
        ioc_.run();
        auto got = r.get();
        if (!got)
            return std::string(code_name(got.error().code));
        return *got == answer_source::cached ? "cached" : *got == answer_source::fresh ? "fresh" : "stale";
    }

    http::response<http::string_body> post(std::string_view body,
                                           std::string ts = testing::unix_seconds_now(),
                                           std::optional<std::string> sig = std::nullopt,
                                           std::string_view path = "/zoom/webhook") {
        const std::string signature = sig ? *sig : webhook::signature(secret_token, ts, body);
        client c(server_->port());
        c.send("POST " + std::string(path) +
               " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
               "x-zm-signature: " + signature + "\r\nx-zm-request-timestamp: " + ts +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body));
        return c.read();
    }

    std::string metrics_text() { return metrics_.serialize(); }

    captured_log log_;
    metrics metrics_;
    net::io_context ioc_;
    counting_zoom zoom_;
    cache_config cache_;
    token_service tokens_{ioc_.get_executor(), zoom_, cache_, metrics_, log_.logger};
    std::unique_ptr<webhook::receiver> receiver_;
    std::unique_ptr<running_server> server_;
};

TEST_F(WebhookReceiverTest, ServesOnlyPostOnItsPath) {
    client c(server_->port());
    auto r = c.get("/zoom/webhook");
    EXPECT_EQ(r.result_int(), 405);
    EXPECT_EQ(r[http::field::allow], "POST");
    EXPECT_EQ(post("{}", testing::unix_seconds_now(), std::nullopt, "/token/x").result_int(), 404);
    EXPECT_EQ(client(server_->port()).get("/healthz").result_int(), 404);
    EXPECT_EQ(client(server_->port()).get("/metrics").result_int(), 404);
}

TEST_F(WebhookReceiverTest, RefusesWhatZoomDidNotSignAndSaysWhyWithoutTheSecret) {
    const std::string body = user_event("user.signed_out", "u1", "a@example.com");
    const auto wrong = post(body, testing::unix_seconds_now(), "v0=" + std::string(64, 'a'));
    EXPECT_EQ(wrong.result_int(), 401);
    EXPECT_EQ(wrong.count(http::field::www_authenticate), 0u);
    const auto stale = post(body, std::to_string(std::stoll(testing::unix_seconds_now()) - 5401));
    EXPECT_EQ(stale.result_int(), 401);
    const auto missing = post(body, testing::unix_seconds_now(), "");
    EXPECT_EQ(missing.result_int(), 401);
    const std::string text = log_.text();
    EXPECT_THAT(text, HasSubstr("signature does not match the body"));
    EXPECT_THAT(text, HasSubstr("window"));
    EXPECT_THAT(text, Not(HasSubstr(secret_token)));
    EXPECT_THAT(text, Not(HasSubstr(std::string(64, 'a'))));
    EXPECT_THAT(metrics_text(),
                HasSubstr(R"(token_broker_webhook_events_total{event="unknown",outcome="rejected"} 3)"));
}

TEST_F(WebhookReceiverTest, AnswersUrlValidation) {
    const auto r = post(R"({"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,)"
                        R"("event":"endpoint.url_validation"})");
    ASSERT_EQ(r.result_int(), 200);
    const auto answer = boost::json::parse(r.body()).as_object();
    EXPECT_EQ(answer.at("plainToken").as_string(), "qgg8vlvZRS6UYooatFL8Aw");
    EXPECT_EQ(answer.at("encryptedToken").as_string(),
              webhook::encrypted_token(secret_token, "qgg8vlvZRS6UYooatFL8Aw"));
}

TEST_F(WebhookReceiverTest, ASignedBodyThatIsNoEventIs400) {
    EXPECT_EQ(post("not json").result_int(), 400);
    EXPECT_EQ(post(R"({"event":"user.deleted"})").result_int(), 400);
    EXPECT_EQ(post(R"({"event":1,"payload":{}})").result_int(), 400);
}

TEST_F(WebhookReceiverTest, OversizedBodyIs413) {
    EXPECT_EQ(post(std::string(5000, 'x')).result_int(), 413);
}

TEST_F(WebhookReceiverTest, EvictionForgetsAnEmailInAnyCase) {
    EXPECT_EQ(get("JDoe@Example.com"), "fresh");
    EXPECT_EQ(get("JDoe@Example.com"), "cached");
    EXPECT_EQ(get("UID123"), "fresh");
    EXPECT_EQ(get("other@example.com"), "fresh");
    const auto r = post(user_event("user.signed_out", "UID123", "jdoe@example.com"));
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(get("JDoe@Example.com"), "fresh") << "forgotten whatever the case of its email";
    EXPECT_EQ(get("UID123"), "fresh");
    EXPECT_EQ(get("other@example.com"), "cached");
    EXPECT_THAT(
        metrics_text(),
        HasSubstr(R"(token_broker_webhook_events_total{event="user.signed_out",outcome="evicted"} 1)"));
    EXPECT_THAT(log_.text(), HasSubstr("UID123,jdoe@example.com"));
}

TEST_F(WebhookReceiverTest, AReplayIsAnsweredAsTheFirstAndNotActedOnAgain) {
    const std::string body = user_event("user.signed_out", "UID1", "x@example.com");
    const std::string ts = testing::unix_seconds_now();
    EXPECT_EQ(post(body, ts).result_int(), 200);
    EXPECT_EQ(get("UID1"), "fresh"); // cached again after the eviction
    const auto again = post(body, ts);
    EXPECT_EQ(again.result_int(), 200);
    EXPECT_EQ(again.body(), R"({"outcome":"evicted"})");
    EXPECT_EQ(get("UID1"), "cached") << "the replay evicted nothing";
}

TEST_F(WebhookReceiverTest, OtherAccountsAndUnlistedEventsAreIgnored) {
    EXPECT_EQ(get("UID2"), "fresh");
    auto r = post(user_event("user.deactivated", "UID2", "y@example.com", "another-account"));
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), R"({"outcome":"ignored"})");
    r = post(user_event("meeting.started", "UID2", "y@example.com"));
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(get("UID2"), "cached");
    EXPECT_THAT(
        metrics_text(),
        HasSubstr(R"(token_broker_webhook_events_total{event="user.deactivated",outcome="ignored"} 1)"));
}

TEST_F(WebhookReceiverTest, ADeactivatedUserIsNeverCachedUntilActivated) {
    EXPECT_EQ(get("UID3"), "fresh");
    EXPECT_EQ(post(user_event("user.deactivated", "UID3", "z@example.com")).result_int(), 200);
    EXPECT_TRUE(tokens_.revoked("UID3"));
    EXPECT_TRUE(tokens_.revoked("Z@Example.com"));
    EXPECT_EQ(get("UID3"), "fresh");
    EXPECT_EQ(get("UID3"), "fresh") << "a revoked user's token is not cached";
    EXPECT_EQ(post(user_event("user.activated", "UID3", "z@example.com")).result_int(), 200);
    EXPECT_FALSE(tokens_.revoked("UID3"));
    EXPECT_EQ(get("UID3"), "fresh");
    EXPECT_EQ(get("UID3"), "cached");
}

TEST_F(WebhookReceiverTest, AppDeauthorizedDropsTheAccessTokenAndA503WhenTheOthersCannotBeTold) {
    // Without a way to drop the access token, the event is ignored (and says so).
    const std::string event =
        R"({"event":"app_deauthorized","event_ts":1700000000000,"payload":{"account_id":"acct-1","user_id":"u9",)"
        R"("client_id":"c","deauthorization_time":"2026-12-04T17:00:00Z"}})";
    auto ignored = post(event);
    EXPECT_EQ(ignored.result_int(), 200);
    EXPECT_THAT(ignored.body(), HasSubstr("ignored"));

    std::atomic<int> dropped{0};
    std::optional<broker_error> tell_fails; // set only while no request is under way
    server_.reset();
    webhook::receiver::settings s;
    s.secret_token = secret(std::string(secret_token));
    s.account_id = std::string(account);
    receiver_ = std::make_unique<webhook::receiver>(s, tokens_, metrics_, log_.logger,
                                                    [&]() -> net::awaitable<result<void>> {
                                                        ++dropped;
                                                        if (tell_fails)
                                                            co_return *tell_fails;
                                                        co_return result<void>();
                                                    });
    server_config listener;
    listener.kept_body_path = "/zoom/webhook";
    listener.max_body_bytes = 4096;
    server_ = std::make_unique<running_server>(listener, *receiver_, log_.logger, metrics_);

    auto acted = post(event);
    EXPECT_EQ(acted.result_int(), 200) << acted.body();
    EXPECT_THAT(acted.body(), HasSubstr("evicted"));
    EXPECT_EQ(dropped, 1);
    EXPECT_EQ(post(R"({"event":"app_deauthorized","payload":{"account_id":"another","user_id":"u9"}})")
                  .result_int(),
              200);
    EXPECT_EQ(dropped, 1) << "another account's app is not this one";

    tell_fails = make_error(errc::cache_unavailable, "Redis is down");
    const auto ts = testing::unix_seconds_now();
    const std::string retried = R"({"event":"app_deauthorized","payload":{"account_id":"acct-1"}})";
    auto unavailable = post(retried, ts);
    EXPECT_EQ(unavailable.result_int(), 503) << unavailable.body();
    EXPECT_EQ(dropped, 2);
    tell_fails.reset();
    EXPECT_EQ(post(retried, ts).result_int(), 200) << "a 503 is not remembered: Zoom's retry is acted on";
    EXPECT_EQ(dropped, 3);
    const auto text = metrics_text();
    EXPECT_THAT(
        text,
        HasSubstr(R"(token_broker_webhook_events_total{event="app_deauthorized",outcome="evicted"} 2)"));
    EXPECT_THAT(
        text,
        HasSubstr(R"(token_broker_webhook_events_total{event="app_deauthorized",outcome="unavailable"} 1)"));
}

TEST(WebhookRevokedMark, NoStaleAnswerForARevokedUser) {
    captured_log log;
    metrics m;
    net::io_context ioc;
    counting_zoom zoom;
    cache_config cache;
    auto now = std::chrono::system_clock::now();
    token_service tokens(ioc.get_executor(), zoom, cache, m, log.logger, [&now] { return now; });
    auto get = [&](const std::string& user) {
        token_query q{user, token_type::zak, std::nullopt, std::nullopt};
        std::string body;
        auto r = net::co_spawn(ioc, tokens.answer(q, body), net::use_future);
        ioc.restart();
        ioc.run();
        auto got = r.get();
        return got ? std::string(*got == answer_source::stale ? "stale" : "token")
                   : std::string(code_name(got.error().code));
    };
    EXPECT_EQ(get("kept"), "token");
    EXPECT_EQ(get("revoked@example.com"), "token");
    tokens.revoke("Revoked@Example.com", now + 3h);
    // Past the refresh margin (2 h tokens, 300 s) but 200 s before expiry: a failing fetch would be
    // answered from the old entry.
    now += 2h - 200s;
    zoom.fail_with = make_error(errc::upstream_error, "Zoom is failing");
    EXPECT_EQ(get("kept"), "stale");
    EXPECT_EQ(get("revoked@example.com"), "upstream_error");
    tokens.reinstate("REVOKED@example.com");
    EXPECT_EQ(get("revoked@example.com"), "stale");
}

TEST(WebhookTokenListener, TheTokenApiNeverServesTheWebhookPath) {
    metrics m;
    router routes(
        m, [] { return std::optional<std::string>(); }, nullptr);
    request req;
    req.method = http::verb::post;
    req.method_name = "POST";
    req.target = "/zoom/webhook";
    connection_context ctx;
    response res;
    EXPECT_TRUE(routes.answer(req, ctx, res));
    EXPECT_EQ(res.status, 404u);
}

} // namespace
} // namespace token_broker
