// Zoom's webhooks through real broker processes (CONTRACT.md section 9): replicas on one real
// redis-server in front of the Zoom simulator, events signed as Zoom signs them and posted to one
// replica's webhook listener: by the test itself, or by the zoom-sim program through its admin calls
// (sim/README.md), as Zoom would after an administrator's action.
#include "broker_process.hpp"
#include "redis_server.hpp"
#include "sim_program.hpp"
#include "webhook/signature.hpp"
#include "webhook_support.hpp"

#include <boost/json/parse.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

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

// ----- Events sent by the zoom-sim program, through its admin calls

// The answer of /readyz (status and body), status 0 and the error's text when none came.
answer readiness(std::uint16_t port) {
    try {
        const auto r = client(port).get("/readyz");
        return {static_cast<int>(r.result_int()), r.body()};
    } catch (const std::exception& e) {
        return {0, e.what()};
    }
}

// Replicas on one redis-server in front of the zoom-sim program, which posts Zoom's events to the
// first replica's webhook listener when an admin call asks.
struct WebhookViaZoomSim : ::testing::Test {
    test::redis_server redis;
    testing::sim_with_events zoom{hook_secret};
    std::vector<std::unique_ptr<broker_process>> brokers;

    // `n` replicas, with `redis_more` in their "redis" block and `extra` beside it; the first one
    // hears the events.
    void start_replicas(int n, const boost::json::object& redis_more = {}, boost::json::object extra = {}) {
        auto block = WebhookProcess::redis_block(redis);
        for (const auto& [k, v] : redis_more)
            block[k] = v;
        extra["redis"] = block;
        for (int i = 0; i < n; ++i)
            brokers.push_back(broker_process::start(zoom.endpoint(), extra, hook_secret));
        for (auto& b : brokers) {
            const auto port = b->wait_port();
            ASSERT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s))
                << readyz(port);
        }
        ASSERT_EQ(zoom.send_events_to("http://127.0.0.1:" + std::to_string(brokers[0]->webhook_port()) +
                                      "/zoom/webhook"),
                  200);
    }
    std::uint16_t port(std::size_t i) { return brokers[i]->wait_port(); }

    // `user` fetched by the first replica and served by every other from Redis: the token.
    std::string cached_everywhere(const std::string& user) {
        const auto first = get_token(port(0), user);
        EXPECT_EQ(first.status, 200) << first.body;
        if (first.status != 200)
            return {};
        for (std::size_t i = 1; i < brokers.size(); ++i) {
            const auto other = get_token(port(i), user);
            EXPECT_TRUE(other.cached()) << "replica " << i << ": " << other.body;
            EXPECT_THAT(other.body, HasSubstr(first.token())) << "replica " << i;
        }
        return first.token();
    }

    // The deactivation of `user` posted while subscriptions are cut: answered 200 or 503 (never a 200
    // that some replica did not honour), no replica serving `old_token` after it; then Zoom's retries
    // of a 5xx, answered 200 once the replicas are subscribed again, and still no replica serving it.
    void deactivate_while_cut(const std::string& user, const std::string& old_token) {
        const auto first = zoom.post("/admin/users/" + user + "/deactivate");
        EXPECT_TRUE(first.status == 200 || first.status == 503) << first.status << " " << first.body;
        served_by_none(user, old_token);
        EXPECT_TRUE(
            eventually([&] { return zoom.post("/admin/users/" + user + "/deactivate").status == 200; }, 20s));
        served_by_none(user, old_token);
    }

    // Every replica answers `user` without `old_token`, with Zoom's 404 for a user who no longer
    // exists, each request going to Zoom.
    void served_by_none(const std::string& user, const std::string& old_token) {
        for (std::size_t i = 0; i < brokers.size(); ++i) {
            const auto calls = zoom.token_calls(user);
            const auto after = get_token(port(i), user);
            EXPECT_EQ(after.status, 404) << "replica " << i << ": " << after.body;
            EXPECT_THAT(after.body, HasSubstr("user_not_found")) << "replica " << i;
            EXPECT_THAT(after.body, Not(HasSubstr(old_token))) << "replica " << i;
            EXPECT_EQ(zoom.token_calls(user), calls + 1) << "replica " << i << " did not ask Zoom";
        }
    }
};

TEST_F(WebhookViaZoomSim, ADeactivatedUserIsServedByNoReplicaEvenWhenZoomFailsAndAgainOnceActivated) {
    start_replicas(3, {}, {{"zoom", {{"request_timeout_ms", 1000}}}});
    const std::string user = "leaver@example.com";
    const auto old_token = cached_everywhere(user);
    ASSERT_FALSE(old_token.empty());

    const auto deactivated = zoom.post("/admin/users/" + user + "/deactivate");
    ASSERT_EQ(deactivated.status, 200) << deactivated.body;
    EXPECT_THAT(deactivated.body, HasSubstr(R"("event":"user.deactivated","posted":true,"status":200)"));
    // Asked twice of each replica: the 404 of a revoked user is not remembered either.
    served_by_none(user, old_token);
    served_by_none(user, old_token);

    // Zoom failing (it accepts connections and answers nothing): no replica falls back on the token
    // it held.
    zoom.pause();
    for (std::size_t i = 0; i < 3; ++i) {
        const auto during = get_token(port(i), user);
        EXPECT_NE(during.status, 200) << "replica " << i << ": " << during.body;
        EXPECT_THAT(during.body, Not(HasSubstr(old_token))) << "replica " << i;
        EXPECT_THAT(during.body, Not(HasSubstr(R"("token")"))) << "replica " << i;
    }
    zoom.resume();

    // Activated again: a new token, shared by the replicas again (the mark is gone everywhere).
    const auto activated = zoom.post("/admin/users/" + user + "/activate");
    ASSERT_EQ(activated.status, 200) << activated.body;
    EXPECT_THAT(activated.body, HasSubstr(R"("event":"user.activated","posted":true,"status":200)"));
    const auto calls = zoom.token_calls(user);
    const auto fresh = get_token(port(0), user);
    ASSERT_EQ(fresh.status, 200) << fresh.body;
    EXPECT_FALSE(fresh.cached());
    EXPECT_NE(fresh.token(), old_token);
    for (std::size_t i = 1; i < 3; ++i) {
        const auto other = get_token(port(i), user);
        EXPECT_TRUE(other.cached()) << "replica " << i << ": " << other.body;
        EXPECT_THAT(other.body, HasSubstr(fresh.token())) << "replica " << i;
    }
    EXPECT_EQ(zoom.token_calls(user), calls + 1);
    EXPECT_THAT(brokers[0]->output(), HasSubstr("user.deactivated"));
    EXPECT_THAT(brokers[0]->output(), Not(HasSubstr(hook_secret)));
}

TEST_F(WebhookViaZoomSim, ASignedOutUserGetsAFreshTokenFromZoomOnEveryReplica) {
    start_replicas(3);
    const std::string user = "signed.out@example.com";
    const auto old_token = cached_everywhere(user);
    ASSERT_FALSE(old_token.empty());
    ASSERT_EQ(zoom.token_calls(user), 1u);
    // The simulator's tokens carry their issue time in seconds: a second later, a new one differs.
    std::this_thread::sleep_for(1100ms);

    const auto signed_out = zoom.post("/admin/users/Signed.Out@Example.com/sign_out");
    ASSERT_EQ(signed_out.status, 200) << signed_out.body;
    EXPECT_THAT(signed_out.body, HasSubstr(R"("event":"user.signed_out","posted":true,"status":200)"));
    const auto fresh = get_token(port(1), user);
    ASSERT_EQ(fresh.status, 200) << fresh.body;
    EXPECT_FALSE(fresh.cached()) << fresh.body;
    EXPECT_NE(fresh.token(), old_token);
    for (std::size_t i : {0u, 2u}) {
        const auto other = get_token(port(i), user);
        ASSERT_EQ(other.status, 200) << "replica " << i << ": " << other.body;
        EXPECT_EQ(other.token(), fresh.token()) << "replica " << i << " served the signed-out token";
    }
    EXPECT_EQ(zoom.token_calls(user), 2u) << "one new Zoom call, shared by the three";
}

TEST_F(WebhookViaZoomSim, AppDeauthorizedMakesEveryReplicaUnreadyUntilAnOAuthFetchSucceedsThenOneServesAll) {
    start_replicas(3);
    for (std::size_t i = 0; i < 3; ++i)
        ASSERT_EQ(get_token(port(i), "before-" + std::to_string(i) + "@example.com").status, 200);
    ASSERT_EQ(zoom.oauth_calls(), 1u) << "one access token for the three";

    // Deauthorized, the simulator refuses the app's credentials (as Zoom does) until it is
    // authorized again: every replica drops its access token, tries OAuth at once and with its
    // backoff after that, and is not ready meanwhile.
    const auto deauthorized = zoom.post("/admin/app/deauthorize");
    ASSERT_EQ(deauthorized.status, 200) << deauthorized.body;
    EXPECT_THAT(deauthorized.body, HasSubstr(R"("event":"app_deauthorized","posted":true,"status":200)"));
    for (std::size_t i = 0; i < 3; ++i) {
        answer ready;
        EXPECT_TRUE(eventually(
            [&] {
                ready = readiness(port(i));
                return ready.status == 503;
            },
            10s))
            << "replica " << i << ": " << ready.status << " " << ready.body;
        EXPECT_THAT(ready.body, HasSubstr("app deauthorized")) << "replica " << i;
        const auto refused = get_token(port(i), "while-" + std::to_string(i) + "@example.com");
        EXPECT_NE(refused.status, 200) << "replica " << i << " served with a dropped access token";
    }
    EXPECT_TRUE(eventually([&] { return zoom.oauth_calls() > 1u; }, 10s))
        << "no replica tried OAuth again by itself";

    // Authorized again: the next try succeeds, and the others take its token from Redis as soon as
    // it is announced, without a token request and without an OAuth call of their own.
    const auto calls_before = zoom.oauth_calls();
    ASSERT_EQ(zoom.post("/admin/app/authorize").status, 200);
    for (std::size_t i = 0; i < 3; ++i) {
        answer ready;
        EXPECT_TRUE(eventually(
            [&] {
                ready = readiness(port(i));
                return ready.status == 200;
            },
            40s))
            << "replica " << i << ": " << ready.status << " " << ready.body;
    }
    EXPECT_EQ(zoom.oauth_calls(), calls_before + 1) << "one OAuth call for the three replicas";
    for (std::size_t i = 0; i < 3; ++i) {
        const auto after = get_token(port(i), "after-" + std::to_string(i) + "@example.com");
        EXPECT_EQ(after.status, 200) << "replica " << i << ": " << after.body;
        EXPECT_FALSE(after.cached());
    }
    EXPECT_EQ(zoom.oauth_calls(), calls_before + 1);
}

// The local ports of the TCP connections that process `pid` holds to port `port`: its sockets'
// inodes (/proc/PID/fd) looked up in /proc/PID/net/tcp.
std::set<std::uint16_t> local_ports_to(pid_t pid, std::uint16_t port) {
    const std::string proc = "/proc/" + std::to_string(pid);
    std::set<std::string> inodes;
    for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd")) {
        std::error_code ec;
        const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
        if (!ec && target.starts_with("socket:[") && target.ends_with("]"))
            inodes.insert(target.substr(8, target.size() - 9));
    }
    std::set<std::uint16_t> out;
    std::istringstream lines(testing::read_file(proc + "/net/tcp"));
    std::string line;
    std::getline(lines, line); // the header
    while (std::getline(lines, line)) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        std::istringstream fields(line);
        std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
        fields >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
        const auto port_of = [](const std::string& address) {
            return static_cast<std::uint16_t>(std::stoul(address.substr(address.find(':') + 1), nullptr, 16));
        };
        if (inodes.contains(inode) && port_of(remote) == port)
            out.insert(port_of(local));
    }
    return out;
}

// Cuts the Redis subscriptions of the broker process `pid` alone (CLIENT KILL ADDR): how many.
int kill_subscriptions_of(const test::redis_server& redis, pid_t pid) {
    const auto ports = local_ports_to(pid, redis.port());
    std::istringstream clients(redis.command({"CLIENT", "LIST", "TYPE", "pubsub"}).text);
    int killed = 0;
    for (std::string line; std::getline(clients, line);) {
        const auto at = line.find(" addr=");
        if (at == std::string::npos)
            continue;
        const auto address = line.substr(at + 6, line.find(' ', at + 6) - at - 6);
        const auto port = static_cast<std::uint16_t>(std::stoul(address.substr(address.rfind(':') + 1)));
        if (ports.contains(port))
            killed += static_cast<int>(redis.command({"CLIENT", "KILL", "ADDR", address}).integer);
    }
    return killed;
}

TEST_F(WebhookViaZoomSim, OneReplicasSubscriptionCutJustBeforeTheEventNeverLetsItServeTheToken) {
    start_replicas(3);
    const std::string user = "cut-one@example.com";
    const auto old_token = cached_everywhere(user);
    ASSERT_FALSE(old_token.empty());

    // The second replica's subscription alone is cut, then the event comes while it reconnects: it
    // misses the forget, so the answer is 503 when it has renewed its registration by then, 200 when
    // that lapsed first (it then dropped every copy by its own rule); it serves the token in neither.
    ASSERT_EQ(kill_subscriptions_of(redis, brokers[1]->pid()), 1)
        << redis.command({"CLIENT", "LIST", "TYPE", "pubsub"}).text;
    deactivate_while_cut(user, old_token);
}

TEST_F(WebhookViaZoomSim, SubscriptionsCutJustBeforeTheEventLeaveNoReplicaServingTheToken) {
    start_replicas(3);
    const std::string user = "cut@example.com";
    const auto old_token = cached_everywhere(user);
    ASSERT_FALSE(old_token.empty());

    // Every replica's subscription is cut (the replicas' only: nothing else subscribes), then the
    // event comes while they reconnect: the forget they miss makes the answer 503 unless their
    // registrations lapse first, never a 200 that some replica did not honour.
    const auto killed = redis.command({"CLIENT", "KILL", "TYPE", "pubsub"});
    ASSERT_EQ(killed.integer, 3) << killed.text;
    deactivate_while_cut(user, old_token);
}

TEST_F(WebhookViaZoomSim, APausedReplicaHoldsTheAnswerUntilItsLeaseLapsesAndServesNothingOldWhenResumed) {
    start_replicas(3); // redis.invalidation_lease_ms 1000 (the default)
    const std::string user = "paused@example.com";
    const auto old_token = cached_everywhere(user);
    ASSERT_FALSE(old_token.empty());

    brokers[1]->signal(SIGSTOP);
    const auto answered = zoom.post("/admin/users/" + user + "/deactivate");
    brokers[1]->signal(SIGCONT);
    // Within the 2.5 s the answer has, the paused replica's registration ran out (its lease, 1 s):
    // it has dropped its copies by its own rule, so the eviction counts as confirmed.
    EXPECT_EQ(answered.status, 200) << answered.body;
    const auto resumed = get_token(port(1), user);
    EXPECT_EQ(resumed.status, 404) << resumed.body;
    EXPECT_THAT(resumed.body, Not(HasSubstr(old_token)));
    served_by_none(user, old_token);
}

TEST_F(WebhookViaZoomSim, APausedReplicaWithALongLeaseMakesTheAnswerA503AndZoomsRetryA200) {
    start_replicas(3, {{"invalidation_lease_ms", 10000}});
    const std::string user = "paused-long@example.com";
    const auto old_token = cached_everywhere(user);
    ASSERT_FALSE(old_token.empty());

    brokers[1]->signal(SIGSTOP);
    const auto answered = zoom.post("/admin/users/" + user + "/deactivate");
    // Neither confirmed nor lapsed within 2.5 s: Zoom is told to retry.
    EXPECT_EQ(answered.status, 503) << answered.body;
    EXPECT_THAT(answered.body, HasSubstr("cache_unavailable"));
    // The replicas that are running have forgotten all the same.
    for (std::size_t i : {0u, 2u}) {
        const auto after = get_token(port(i), user);
        EXPECT_EQ(after.status, 404) << "replica " << i << ": " << after.body;
        EXPECT_THAT(after.body, Not(HasSubstr(old_token))) << "replica " << i;
    }
    brokers[1]->signal(SIGCONT);
    EXPECT_TRUE(
        eventually([&] { return zoom.post("/admin/users/" + user + "/deactivate").status == 200; }, 20s));
    served_by_none(user, old_token);
}

} // namespace
} // namespace token_broker
