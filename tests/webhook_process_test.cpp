// Zoom's webhooks through real broker processes (CONTRACT.md section 9): replicas on one real
// redis-server in front of the Zoom simulator, events signed as Zoom signs them and posted to one
// replica's webhook listener.
#include "broker_process.hpp"
#include "redis_server.hpp"
#include "webhook/signature.hpp"
#include "webhook_support.hpp"

#include <boost/json/parse.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::answer;
using testing::broker_process;
using testing::client;
using testing::eventually;
using testing::get_token;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::readyz;
using testing::unix_seconds_now;
using testing::user_event;

const std::string hook_secret = "process-test-webhook-secret";

// POSTs `body` to `path` on `port`, signed with `secret` for timestamp `ts` unless `signature` is
// given.
answer post(std::uint16_t port, const std::string& body, const std::string& ts = unix_seconds_now(),
            const std::string& secret = hook_secret, std::optional<std::string> signature = std::nullopt,
            const std::string& path = "/zoom/webhook") {
    const std::string sig = signature ? *signature : webhook::signature(secret, ts, body);
    try {
        client c(port, 10s);
        c.send("POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
               "x-zm-signature: " + sig + "\r\nx-zm-request-timestamp: " + ts +
               "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
        const auto r = c.read();
        return {static_cast<int>(r.result_int()), r.body()};
    } catch (const std::exception& e) {
        return {0, e.what()};
    }
}

struct WebhookProcess : ::testing::Test {
    zoom_sim::simulator sim;
    std::vector<std::unique_ptr<broker_process>> brokers;

    static boost::json::object redis_block(const test::redis_server& server) {
        return {{"url", "redis://127.0.0.1:" + std::to_string(server.port())},
                {"password", server.password()},
                {"encryption_key", std::string(64, 'e')}};
    }

    void start_brokers(int n, const boost::json::object& extra, bool with_redis) {
        for (int i = 0; i < n; ++i) {
            auto b = broker_process::start(sim, extra, hook_secret);
            ASSERT_NE(b->webhook_port(), 0);
            brokers.push_back(std::move(b));
        }
        if (!with_redis)
            return;
        for (auto& b : brokers) {
            const auto port = b->wait_port();
            ASSERT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s))
                << readyz(port);
        }
    }
    std::uint16_t port(std::size_t i) { return brokers[i]->wait_port(); }
    std::string event(const std::string& name, const std::string& id, const std::string& email) {
        return user_event(name, id, email, sim.settings().account_id);
    }
};

TEST_F(WebhookProcess, ADeactivatedUserIsServedByNoReplicaOnceTheEventIsAnswered) {
    test::redis_server redis;
    start_brokers(3, {{"redis", redis_block(redis)}}, true);
    const std::string user = "JDoe@Example.com";
    const auto first = get_token(port(0), user);
    ASSERT_EQ(first.status, 200) << first.body;
    for (std::size_t i = 1; i < 3; ++i)
        ASSERT_THAT(get_token(port(i), user).body, HasSubstr(R"("cached":true)"));

    // Zoom deactivates the user: its token calls answer 404/1001, and the event goes to one replica.
    sim.remove_user(user);
    const auto answered =
        post(brokers[0]->webhook_port(), event("user.deactivated", "UID-JDOE", "jdoe@example.com"));
    ASSERT_EQ(answered.status, 200) << answered.body;
    for (std::size_t i = 0; i < 3; ++i) {
        const auto after = get_token(port(i), user);
        EXPECT_EQ(after.status, 404) << "replica " << i << ": " << after.body;
        EXPECT_THAT(after.body, Not(HasSubstr(R"("token")"))) << "replica " << i;
    }

    // Zoom failing afterwards: no replica falls back on the token it held.
    sim.add_user(user);
    zoom_sim::fault failing;
    failing.what = zoom_sim::fault::kind::server_error;
    failing.status = 503;
    failing.times = -1;
    sim.inject(failing, user);
    const std::string old_token =
        std::string(boost::json::parse(first.body).as_object().at("token").as_string());
    for (std::size_t i = 0; i < 3; ++i) {
        const auto during = get_token(port(i), user);
        EXPECT_NE(during.status, 200) << "replica " << i << ": " << during.body;
        EXPECT_THAT(during.body, Not(HasSubstr(old_token))) << "replica " << i;
    }
    EXPECT_THAT(brokers[0]->output(), HasSubstr("user.deactivated"));
    EXPECT_THAT(brokers[0]->output(), Not(HasSubstr(hook_secret)));
}

TEST_F(WebhookProcess, RefusesWhatZoomDidNotSendAndTheTokenPortRefusesTheWebhookPath) {
    start_brokers(1, {{"webhook", {{"max_body_bytes", 1024}}}}, false);
    const auto hook = brokers[0]->webhook_port();
    const std::string body = event("user.signed_out", "UID1", "a@example.com");
    EXPECT_EQ(post(hook, body, unix_seconds_now(), "not-the-secret").status, 401);
    EXPECT_EQ(post(hook, body, std::to_string(std::stoll(unix_seconds_now()) - 6000)).status, 401);
    EXPECT_EQ(post(hook, std::string(2000, ' ') + body).status, 413);
    EXPECT_EQ(post(hook, "this is not JSON").status, 400);
    EXPECT_EQ(post(port(0), body).status, 404) << "the token API never serves the webhook path";
    EXPECT_EQ(post(hook, body).status, 200);
    const auto metrics_text = client(port(0)).get("/metrics").body();
    EXPECT_THAT(metrics_text,
                HasSubstr(R"(token_broker_webhook_events_total{event="unknown",outcome="rejected"} 3)"));
    EXPECT_THAT(
        metrics_text,
        HasSubstr(R"(token_broker_webhook_events_total{event="user.signed_out",outcome="evicted"} 1)"));
    const auto log = brokers[0]->output();
    EXPECT_THAT(log, HasSubstr("signature does not match the body"));
    EXPECT_THAT(log, Not(HasSubstr(hook_secret)));
}

TEST_F(WebhookProcess, RedisDownIsA503AndTheLocalCopyIsGoneAllTheSame) {
    test::redis_server redis;
    // A long invalidation lease: the replica keeps its copies through the outage, so only the
    // eviction can take one away.
    auto block = redis_block(redis);
    block["invalidation_lease_ms"] = 60000;
    start_brokers(2, {{"redis", block}}, true);
    const std::string user = "down@example.com";
    const std::string kept = "kept@example.com";
    ASSERT_EQ(get_token(port(0), user).status, 200);
    ASSERT_EQ(get_token(port(0), kept).status, 200);
    ASSERT_THAT(get_token(port(0), user).body, HasSubstr(R"("cached":true)"));
    redis.pause(); // commands time out; the connections stay, and so do the copies (the lease)
    ASSERT_THAT(get_token(port(0), kept).body, HasSubstr(R"("cached":true)")) << "copies outlive the outage";
    const auto answered = post(brokers[0]->webhook_port(), event("user.signed_out", "UID-DOWN", user));
    EXPECT_EQ(answered.status, 503) << answered.body;
    EXPECT_THAT(answered.body, HasSubstr("cache_unavailable"));
    const auto after = get_token(port(0), user);
    EXPECT_EQ(after.status, 200) << after.body;
    EXPECT_THAT(after.body, HasSubstr(R"("cached":false)")) << "the local copy went";
    EXPECT_THAT(
        client(port(0)).get("/metrics").body(),
        HasSubstr(R"(token_broker_webhook_events_total{event="user.signed_out",outcome="unavailable"} 1)"));
    redis.resume();
}

} // namespace
} // namespace token_broker
