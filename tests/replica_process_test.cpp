// Replicas as operators run them (CONTRACT.md section 7): separate token-broker processes naming
// one real redis-server, in front of one Zoom simulator. What shared_cache_test checks inside one
// process, checked here through the executable's own wiring, its signals and its configuration.
#include "broker_process.hpp"
#include "redis_server.hpp"
#include "replica_scenarios.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <future>
#include <hiredis/hiredis.h>
#include <set>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::answer;
using testing::broker_process;
using testing::client;
using testing::delete_token;
using testing::eventually;
using testing::get_token;
using testing::readyz;

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
        ++n;
    return n;
}

struct Replicas : ::testing::Test {
    zoom_sim::simulator sim;
    std::vector<std::unique_ptr<broker_process>> brokers;
    std::vector<std::uint16_t> ports;

    // The redis block for `server` (rediss:// with its CA when it serves TLS), plus `more` keys.
    static boost::json::object redis_block(const test::redis_server& server, bool tls = false,
                                           const boost::json::object& more = {}) {
        boost::json::object r{
            {"url", std::string(tls ? "rediss" : "redis") + "://127.0.0.1:" + std::to_string(server.port())},
            {"password", server.password()},
            {"encryption_key", std::string(64, 'e')}};
        if (tls)
            r["ca_file"] = server.client_options().ca_file;
        for (const auto& [k, v] : more)
            r[k] = v;
        return r;
    }

    // Starts one more broker with `extra` configuration; returns its port (it is listening).
    std::uint16_t start_broker(const boost::json::object& extra) {
        auto b = broker_process::start(sim, extra);
        const auto port = b->wait_port();
        brokers.push_back(std::move(b));
        ports.push_back(port);
        return port;
    }

    // Starts `n` brokers and waits until each says its Redis is up.
    void start_brokers(int n, const boost::json::object& extra) {
        for (int i = 0; i < n; ++i)
            start_broker(extra);
        for (auto port : ports)
            ASSERT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s))
                << readyz(port);
    }
};

// The body is tests/replica_scenarios.hpp's, which the cluster's replicas run too.
TEST_F(Replicas, ThreeProcessesOverRedissMakeOneZoomCallForNinetyConcurrentRequestsAndShareWhatTheyFetch) {
    test::redis_tls_setup tls;
    test::redis_server redis(tls.files);
    start_brokers(3, {{"redis", redis_block(redis, true)}});
    testing::replicas_act_as_one_broker(sim, ports);
}

// One Zoom budget for the account: a 429 seen by one replica stops the others' calls.
TEST_F(Replicas, AZoom429SeenByOneReplicaStopsTheOthersCalls) {
    test::redis_server redis;
    start_brokers(3, {{"redis", redis_block(redis)}});
    testing::a_zoom_429_stops_every_replica(sim, ports);
}

// The body is tests/replica_scenarios.hpp's, which the cluster's replicas run too.
TEST_F(Replicas, WhatTheProcessesLeaveInRedisHoldsNoUserIdTokenOrSecret) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis)}});
    testing::nothing_in_clear(
        sim, ports, [&] { return redis.contents(); }, redis.password());
}

// Redis frozen (SIGSTOP: it accepts connections but answers nothing), then gone, then back.
TEST_F(Replicas, RedisGoingAwayLeavesEachReplicaAloneAndEachFindsItAgainByItself) {
    test::redis_server redis;
    const boost::json::object more{{"command_timeout_ms", 400}};
    // A budget that never makes a miss wait: only Redis's part of a miss is measured.
    start_brokers(2, {{"redis", redis_block(redis, false, more)},
                      {"zoom", {{"request_timeout_ms", 5000}, {"requests_per_second", 10000}}}});
    ASSERT_EQ(get_token(ports[0], "before@example.com").status, 200);
    ASSERT_TRUE(get_token(ports[1], "before@example.com").cached());
    const auto zoom_miss = get_token(ports[0], "baseline@example.com").took;

    redis.pause();
    for (std::size_t i = 0; i < ports.size(); ++i) {
        // From memory while the invalidation lease holds, else from Zoom: answered either way.
        const auto hit = get_token(ports[i], "before@example.com");
        EXPECT_EQ(hit.status, 200) << hit.body;
        // A miss: one command that waits its command_timeout_ms (400 ms), then Zoom; a second
        // command's timeout, the wait for a fetch lock (5 s + 1 s here) or for a reconnection play
        // no part. The margin is for a loaded machine, and less than a second timeout.
        const auto miss = get_token(ports[i], "frozen-" + std::to_string(i) + "@example.com");
        EXPECT_EQ(miss.status, 200) << miss.body;
        EXPECT_FALSE(miss.cached());
        EXPECT_LT(miss.took, zoom_miss + 400ms + 300ms) << "a miss waited more than one command timeout";
        const auto next = get_token(ports[i], "frozen-next-" + std::to_string(i) + "@example.com");
        EXPECT_EQ(next.status, 200) << next.body;
        EXPECT_LT(next.took, zoom_miss + 300ms) << "Redis is known to be down: no more waiting";
        EXPECT_TRUE(get_token(ports[i], "frozen-next-" + std::to_string(i) + "@example.com").cached())
            << "a lone replica keeps its own copies";
    }
    for (auto port : ports) {
        EXPECT_EQ(readyz(port), R"({"status":"ready","redis":"down"})");
        EXPECT_EQ(delete_token(port, "before@example.com"), 503);
    }

    redis.stop(); // gone: connections refused
    for (auto port : ports) {
        const auto miss = get_token(port, "gone@example.com");
        EXPECT_EQ(miss.status, 200) << miss.body;
        EXPECT_FALSE(miss.cached()) << "each replica alone";
        EXPECT_EQ(readyz(port), R"({"status":"ready","redis":"down"})");
    }
    EXPECT_EQ(sim.token_calls("gone@example.com"), 2u);

    redis.restart();
    for (auto port : ports)
        EXPECT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s))
            << readyz(port);
    const auto fresh = get_token(ports[0], "after@example.com");
    ASSERT_EQ(fresh.status, 200);
    const auto shared = get_token(ports[1], "after@example.com");
    ASSERT_EQ(shared.status, 200);
    EXPECT_TRUE(shared.cached()) << "sharing works again";
    EXPECT_EQ(sim.token_calls("after@example.com"), 1u);
    EXPECT_EQ(delete_token(ports[1], "after@example.com"), 204);
    // One warning each time Redis went (frozen, then briefly back when the stop thawed it, then
    // gone), one line each time it came back, none for the failed reconnections in between; never
    // its password or the encryption key.
    for (std::size_t i = 0; i < brokers.size(); ++i) {
        EXPECT_TRUE(eventually([&] {
            const auto out = brokers[i]->output();
            const auto down = occurrences(out, " is down: ");
            return down >= 1 && occurrences(out, " is up") == down + 1;
        })) << brokers[i]->output();
        const auto out = brokers[i]->output();
        EXPECT_LE(occurrences(out, " is down: "), 2u) << out;
        for (const auto& secret : {redis.password(), std::string(64, 'e')})
            EXPECT_EQ(out.find(secret), std::string::npos) << "replica " << i << " logged a secret";
    }
}

// A replica started while the others hold the users' tokens (a rolling restart) serves them from
// Redis from its first request: it waits for its first Redis connection (up to
// redis.connect_timeout_ms) instead of calling Zoom. Redis is frozen while it starts, so that its
// connection comes up only after its first requests have arrived.
TEST_F(Replicas, AReplicaStartedUnderTrafficServesWhatTheOthersCachedWithoutCallingZoom) {
    test::redis_server redis;
    const boost::json::object more{{"connect_timeout_ms", 3000}, {"command_timeout_ms", 1000}};
    const boost::json::object extra{{"redis", redis_block(redis, false, more)}};
    start_brokers(1, extra);
    std::vector<std::string> users;
    for (int i = 0; i < 20; ++i) {
        users.push_back("user-" + std::to_string(i) + "@example.com");
        ASSERT_EQ(get_token(ports[0], users.back()).status, 200);
    }
    const auto calls = sim.token_calls();
    const auto oauth = sim.oauth_calls();

    redis.pause();
    const auto port = start_broker(extra);
    std::vector<std::future<answer>> first;
    for (const auto& u : users)
        first.push_back(std::async(std::launch::async, [&, u] { return get_token(port, u, 10s); }));
    std::this_thread::sleep_for(300ms);
    redis.resume();
    for (auto& f : first) {
        const auto a = f.get();
        EXPECT_EQ(a.status, 200) << a.body;
        EXPECT_TRUE(a.cached()) << a.body;
    }
    EXPECT_EQ(sim.token_calls(), calls) << "the new replica called Zoom for users whose tokens were in Redis";
    EXPECT_EQ(sim.oauth_calls(), oauth) << "and took the access token from Redis too";
}

// ---------------------------------------------------------------------------------------------
// Forgetting is certain (CONTRACT.md section 7): after a DELETE's 204 no replica serves a token of
// that user fetched before it, whatever happened to the subscriptions, to Redis or to the replicas.

// GETs `user` on `port` for `period` and returns every answer that handed out one of `forgotten`.
std::vector<answer> served_forgotten(std::uint16_t port, const std::string& user,
                                     const std::set<std::string>& forgotten,
                                     std::chrono::milliseconds period = 1500ms) {
    std::vector<answer> bad;
    const auto until = std::chrono::steady_clock::now() + period;
    do {
        auto a = get_token(port, user);
        if (a.status != 200 || forgotten.contains(a.token()))
            bad.push_back(std::move(a));
        std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < until);
    return bad;
}

std::string describe(const std::vector<answer>& answers) {
    std::string out;
    for (const auto& a : answers)
        out += std::to_string(a.status) + " " + a.body + "\n";
    return out;
}

// A client of Redis that is not a broker: subscribed with `command` (e.g. PSUBSCRIBE *) for as
// long as it lives.
class outside_subscriber {
public:
    outside_subscriber(const test::redis_server& redis, const std::vector<std::string>& command) {
        timeval tv{5, 0};
        c_ = redisConnectWithTimeout("127.0.0.1", redis.port(), tv);
        if (c_ == nullptr || c_->err != 0)
            throw std::runtime_error("cannot connect to redis-server");
        run({"AUTH", redis.password()});
        run(command);
    }
    ~outside_subscriber() { redisFree(c_); }
    outside_subscriber(const outside_subscriber&) = delete;
    outside_subscriber& operator=(const outside_subscriber&) = delete;

private:
    void run(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data()));
        if (r == nullptr || r->type == REDIS_REPLY_ERROR)
            throw std::runtime_error("redis-server refused the outside subscriber");
        freeReplyObject(r);
    }

    redisContext* c_ = nullptr;
};

// Both replicas hold the user's token in memory; then every subscription is cut (CLIENT KILL TYPE
// pubsub) and the DELETE comes at once. Before the lease, B served the deleted token right after the
// 204 (it resubscribes about 100 ms later and had missed the message).
TEST_F(Replicas, ASubscriptionKilledThenADeleteLeavesNoReplicaServingTheForgottenToken) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis)}});
    const auto first = get_token(ports[0], "killed@example.com");
    ASSERT_EQ(first.status, 200) << first.body;
    ASSERT_TRUE(get_token(ports[1], "killed@example.com").cached());
    std::this_thread::sleep_for(1100ms); // a token fetched from now on differs from the first

    ASSERT_GE(redis.command({"CLIENT", "KILL", "TYPE", "pubsub"}).integer, 2);
    EXPECT_TRUE(eventually([&] { return delete_token(ports[0], "killed@example.com") == 204; }, 10s));
    const auto bad = served_forgotten(ports[1], "killed@example.com", {first.token()});
    EXPECT_TRUE(bad.empty()) << "served after the 204:\n" << describe(bad);
}

// The same with the resubscription refused (the ACL takes SUBSCRIBE away): before the lease, B
// served the deleted token for as long as it was asked, while saying that Redis was up.
TEST_F(Replicas, ASubscriptionRefusedThenADeleteLeavesNoReplicaServingTheForgottenToken) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis)}});
    const auto first = get_token(ports[0], "refused@example.com");
    ASSERT_EQ(first.status, 200) << first.body;
    ASSERT_TRUE(get_token(ports[1], "refused@example.com").cached());
    std::this_thread::sleep_for(1100ms);

    ASSERT_FALSE(redis.command({"ACL", "SETUSER", "default", "-subscribe", "-psubscribe"}).is_error());
    ASSERT_GE(redis.command({"CLIENT", "KILL", "TYPE", "pubsub"}).integer, 2);
    EXPECT_TRUE(eventually([&] { return delete_token(ports[0], "refused@example.com") == 204; }, 10s));
    const auto bad = served_forgotten(ports[1], "refused@example.com", {first.token()});
    EXPECT_TRUE(bad.empty()) << "served after the 204:\n" << describe(bad);
}

// PUBLISH counts every subscriber: before the registrations, a redis-cli PSUBSCRIBE '*' made every
// DELETE a 503 ("2 of 3 replicas confirmed").
TEST_F(Replicas, AnOutsideSubscriberNeverTurnsADeleteIntoA503) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis)}});
    ASSERT_EQ(get_token(ports[0], "watched@example.com").status, 200);
    ASSERT_TRUE(get_token(ports[1], "watched@example.com").cached());
    outside_subscriber everything(redis, {"PSUBSCRIBE", "*"});
    outside_subscriber forgets(redis, {"SUBSCRIBE", "token-broker:forget"});

    EXPECT_EQ(delete_token(ports[0], "watched@example.com"), 204);
    EXPECT_EQ(delete_token(ports[1], "watched@example.com"), 204);
    const auto after = get_token(ports[1], "watched@example.com");
    ASSERT_EQ(after.status, 200) << after.body;
    EXPECT_FALSE(after.cached()) << after.body;
}

// A key rotation under way: A on key 1 alone, B and C on key 2 with key 1 as the previous one. A
// DELETE on A used to remove only key 1's names: B and C dropped their copies, read the entry named
// under key 2 back from Redis and served the deleted token as cached.
TEST_F(Replicas, DuringAKeyRotationADeleteFromEitherSideIsForgottenByEveryReplica) {
    test::redis_server redis;
    const std::string key1(64, '1'), key2(64, '2');
    start_brokers(1, {{"redis", redis_block(redis, false, {{"encryption_key", key1}})}});
    for (int i = 0; i < 2; ++i)
        start_broker({{"redis", redis_block(redis, false,
                                            {{"encryption_key", key2}, {"previous_encryption_key", key1}})}});
    for (auto port : ports)
        ASSERT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s));

    // Fetched by a new-key replica, forgotten on the old-key one.
    const auto b = get_token(ports[1], "rotated-1@example.com");
    ASSERT_EQ(b.status, 200) << b.body;
    ASSERT_TRUE(get_token(ports[2], "rotated-1@example.com").cached());
    const auto a = get_token(ports[0], "rotated-1@example.com");
    ASSERT_EQ(a.status, 200) << a.body;
    std::this_thread::sleep_for(1100ms);
    EXPECT_TRUE(eventually([&] { return delete_token(ports[0], "rotated-1@example.com") == 204; }, 10s));
    for (auto port : ports) {
        const auto bad = served_forgotten(port, "rotated-1@example.com", {a.token(), b.token()}, 100ms);
        EXPECT_TRUE(bad.empty()) << "port " << port << " served after the 204:\n" << describe(bad);
    }

    // Fetched by the old-key replica, read by a new-key one, forgotten on a new-key one.
    const auto c = get_token(ports[0], "rotated-2@example.com");
    ASSERT_EQ(c.status, 200) << c.body;
    ASSERT_TRUE(get_token(ports[1], "rotated-2@example.com").cached());
    std::this_thread::sleep_for(1100ms);
    EXPECT_TRUE(eventually([&] { return delete_token(ports[2], "rotated-2@example.com") == 204; }, 10s));
    for (auto port : ports) {
        const auto bad = served_forgotten(port, "rotated-2@example.com", {c.token()}, 100ms);
        EXPECT_TRUE(bad.empty()) << "port " << port << " served after the 204:\n" << describe(bad);
    }
}

// A DELETE on A landing while B's fetch of the same user is finishing: B's result must not land in
// Redis after the forget (C would serve it as cached). 200 tries in four lanes, the DELETE spread
// over the last 25 ms of B's Zoom call and the 25 ms after it; before the fence a few of them left
// B's token behind.
TEST_F(Replicas, AFetchRacingADeleteNeverLeavesTheForgottenTokenBehind) {
    test::redis_server redis;
    start_brokers(3, {{"redis", redis_block(redis)}, {"zoom", {{"requests_per_second", 10000}}}});
    constexpr int lanes = 4, tries = 50;
    std::atomic<int> stale{0}, confirmed{0}, raced{0};
    std::vector<std::future<std::string>> running;
    for (int lane = 0; lane < lanes; ++lane)
        running.push_back(std::async(std::launch::async, [&, lane] {
            std::string report;
            for (int i = 0; i < tries; ++i) {
                const auto user = "race-" + std::to_string(lane) + "-" + std::to_string(i) + "@example.com";
                sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 100ms, .times = 1}, user);
                auto fetch = std::async(std::launch::async, [&] { return get_token(ports[1], user); });
                std::this_thread::sleep_for(75ms + std::chrono::milliseconds(i % 50));
                const auto deleting = std::chrono::steady_clock::now();
                int status = 0;
                for (int attempt = 0; attempt < 5 && status != 204; ++attempt)
                    status = delete_token(ports[0], user);
                const auto fetched = fetch.get();
                if (status != 204 || fetched.status != 200) {
                    report += user + ": DELETE " + std::to_string(status) + ", GET " + fetched.body + "\n";
                    continue;
                }
                ++confirmed;
                // A race only when B's Zoom call (made after it took the lock) began before the DELETE.
                bool raced_here = false;
                for (const auto& call : sim.token_call_log())
                    if (call.user == user && call.at < deleting)
                        raced_here = true;
                if (!raced_here)
                    continue;
                ++raced;
                // Nothing fetched this user since the 204: a cached answer on C is B's forgotten
                // token, read back from Redis. (A fresh one may equal it: the simulator's tokens
                // change once a second.)
                const auto after = get_token(ports[2], user);
                if (after.status != 200 || after.cached()) {
                    ++stale;
                    report += user + ": after the 204 C answered " + after.body + "\n";
                }
            }
            return report;
        }));
    std::string report;
    for (auto& r : running)
        report += r.get();
    EXPECT_EQ(confirmed.load(), lanes * tries) << report;
    EXPECT_GE(raced.load(), lanes * tries / 2)
        << "too few DELETEs landed during a fetch: the case is not made";
    EXPECT_EQ(stale.load(), 0) << report;
}

// Redis frozen for longer than command_timeout_ms while A fetches six users: the lock scripts that
// A gave up on run when Redis resumes and leave locks that belong to nobody alive. The same users
// on B and C are then answered within one lock lease (2 s) plus a Zoom call; before the leases they
// waited for zoom.request_timeout_ms + 1 s (11 s).
TEST_F(Replicas, ARedisStallLeavesNoLockThatHoldsOthersUpLongerThanALease) {
    test::redis_server redis;
    start_brokers(3, {{"redis", redis_block(redis)}, {"zoom", {{"requests_per_second", 10000}}}});
    // Redis knows the scripts (else the late EVALSHA would only say NOSCRIPT).
    ASSERT_EQ(get_token(ports[0], "warm@example.com").status, 200);
    std::vector<std::string> users;
    for (int i = 0; i < 6; ++i)
        users.push_back("stalled-" + std::to_string(i) + "@example.com");

    redis.pause();
    {
        std::vector<std::future<answer>> alone;
        for (const auto& u : users)
            alone.push_back(std::async(std::launch::async, [&, u] { return get_token(ports[0], u); }));
        for (auto& f : alone)
            EXPECT_EQ(f.get().status, 200);
    }
    std::this_thread::sleep_for(1100ms); // so that B and C get tokens of their own
    redis.resume();
    std::size_t locks = 0;
    for (const auto& k : redis.command({"KEYS", "*:lock"}).elements)
        locks += k.text.empty() ? 0 : 1;
    ASSERT_GE(locks, 1u) << "the stall left no lock behind: the case is not made";
    for (auto port : ports)
        ASSERT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s));

    std::vector<std::future<answer>> after;
    for (const auto& u : users)
        for (auto port : {ports[1], ports[2]})
            after.push_back(std::async(std::launch::async, [&, u, port] { return get_token(port, u, 20s); }));
    for (auto& f : after) {
        const auto a = f.get();
        EXPECT_EQ(a.status, 200) << a.body;
        // One lease (2 s) since the lock was made, a waiter's poll (150 ms), a Zoom call; the margin
        // is for a loaded machine.
        EXPECT_LT(a.took, 2000ms + 1500ms) << "held up by a lock nobody holds";
    }
}

// The lock of a replica SIGKILLed in the middle of its Zoom call is renewed by nobody: it is gone
// within one lock lease (2 s), though zoom.request_timeout_ms is 5 s. Until then nobody calls Zoom
// for that user; then one of the survivors does, and the other takes its result.
TEST_F(Replicas, AReplicaKilledWhileItFetchesHoldsTheOthersUpForOneLeaseAtMost) {
    test::redis_server redis;
    start_brokers(3, {{"redis", redis_block(redis)}, {"zoom", {{"request_timeout_ms", 5000}}}});
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 4000ms, .times = 1}, "orphan@example.com");

    auto on_dying = std::async(std::launch::async, [&] { return get_token(ports[0], "orphan@example.com"); });
    ASSERT_TRUE(eventually([&] { return sim.token_calls("orphan@example.com") == 1; }));
    const auto taken = std::chrono::steady_clock::now(); // the lock was taken before Zoom was called
    brokers[0]->signal(SIGKILL);
    EXPECT_EQ(brokers[0]->wait_exit(5s), 128 + SIGKILL);
    EXPECT_EQ(on_dying.get().status, 0) << "the killed replica answered nothing";

    auto on_b =
        std::async(std::launch::async, [&] { return get_token(ports[1], "orphan@example.com", 20s); });
    auto on_c =
        std::async(std::launch::async, [&] { return get_token(ports[2], "orphan@example.com", 20s); });
    const auto b = on_b.get();
    const auto c = on_c.get();
    ASSERT_EQ(b.status, 200) << b.body;
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(b.token(), c.token());
    EXPECT_EQ(sim.token_calls("orphan@example.com"), 2u) << "one survivor fetched, the other waited on it";

    const auto log = sim.token_call_log();
    ASSERT_FALSE(log.empty());
    // One lease after the lock was taken (2 s), a waiter's poll, and a margin for a loaded machine;
    // before the leases this was zoom.request_timeout_ms + 1 s (6 s).
    EXPECT_LT(log.back().at - taken, 2000ms + 1000ms) << "the dead replica held the others up past a lease";
}

// The access token's lock is the same lease as a token fetch's: a replica SIGKILLed during its OAuth
// call holds the next one up for one lock lease (2 s); before, its lock lived
// zoom.request_timeout_ms + 1 s (6 s here).
TEST_F(Replicas, AReplicaKilledWhileItFetchesTheAccessTokenHoldsTheNextOneUpForOneLeaseAtMost) {
    test::redis_server redis;
    const boost::json::object extra{{"redis", redis_block(redis)}, {"zoom", {{"request_timeout_ms", 5000}}}};
    sim.inject_oauth({.what = zoom_sim::fault::kind::delay, .delay = 4000ms, .times = 1});
    start_broker(extra);
    ASSERT_TRUE(eventually([&] { return sim.oauth_calls() == 1; }));
    const auto called = std::chrono::steady_clock::now(); // the lock was taken before the call
    brokers[0]->signal(SIGKILL);
    EXPECT_EQ(brokers[0]->wait_exit(5s), 128 + SIGKILL);

    const auto port = start_broker(extra);
    ASSERT_TRUE(eventually([&] { return sim.oauth_calls() == 2; }, 20s));
    // One lease, the new replica's start and its 100 ms look, and a margin for a loaded machine.
    EXPECT_LT(std::chrono::steady_clock::now() - called, 2000ms + 1500ms) << "held up past a lease";
    EXPECT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }))
        << readyz(port);
}

// A replica frozen (SIGSTOP) for longer than its invalidation lease has let its registration lapse:
// a DELETE elsewhere is 204 without it (before the registrations it was 503 until the replica
// thawed), and once thawed it does not serve the token from its memory.
TEST_F(Replicas, AReplicaFrozenLongerThanItsLeaseNeverServesATokenForgottenMeanwhile) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis)}});
    const auto first = get_token(ports[0], "leaver@example.com");
    ASSERT_EQ(first.status, 200) << first.body;
    ASSERT_TRUE(get_token(ports[1], "leaver@example.com").cached());
    std::this_thread::sleep_for(1100ms);

    brokers[1]->signal(SIGSTOP);
    std::this_thread::sleep_for(1500ms); // longer than redis.invalidation_lease_ms (1 s)
    EXPECT_EQ(delete_token(ports[0], "leaver@example.com"), 204);
    brokers[1]->signal(SIGCONT);
    const auto after = get_token(ports[1], "leaver@example.com");
    ASSERT_EQ(after.status, 200) << after.body;
    EXPECT_NE(after.token(), first.token()) << "the thawed replica served the forgotten token";
    EXPECT_EQ(sim.token_calls("leaver@example.com"), 2u);
}

// ---------------------------------------------------------------------------------------------
// What Redis may answer (CONTRACT.md section 7): refusing what sharing needs is `degraded`.

std::string metrics_text(std::uint16_t port) {
    try {
        return client(port).get("/metrics").body();
    } catch (const std::exception& e) {
        return e.what();
    }
}

long long connections_received(const test::redis_server& redis) {
    const auto info = redis.command({"INFO", "stats"}).text;
    static const std::string field = "total_connections_received:";
    const auto at = info.find(field);
    return at == std::string::npos ? -1 : std::stoll(info.substr(at + field.size()));
}

// An ACL user that may not run scripts: callers are still answered (alone), but /readyz, the gauge
// and the log say that Redis refuses, and say when it stops. Before, /readyz said "up" and only
// debug lines told.
TEST_F(Replicas, RedisRefusingScriptsIsDegradedNotUp) {
    test::redis_server redis;
    start_brokers(1, {{"redis", redis_block(redis)}});
    ASSERT_FALSE(redis.command({"ACL", "SETUSER", "default", "-evalsha", "-eval"}).is_error());
    const auto a = get_token(ports[0], "refused-scripts@example.com");
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(eventually([&] {
        return readyz(ports[0]).find(R"("redis":"degraded")") != std::string::npos;
    })) << readyz(ports[0]);
    EXPECT_NE(readyz(ports[0]).find(R"("redis_reason":"commands: NOPERM)"), std::string::npos)
        << readyz(ports[0]);
    EXPECT_NE(metrics_text(ports[0]).find("\ntoken_broker_redis_degraded 1\n"), std::string::npos);
    EXPECT_EQ(get_token(ports[0], "refused-scripts-2@example.com").status, 200);

    ASSERT_FALSE(redis.command({"ACL", "SETUSER", "default", "+evalsha", "+eval"}).is_error());
    EXPECT_TRUE(eventually([&] { return readyz(ports[0]) == R"({"status":"ready","redis":"up"})"; }))
        << readyz(ports[0]);
    EXPECT_NE(metrics_text(ports[0]).find("\ntoken_broker_redis_degraded 0\n"), std::string::npos);
    // Logs are flushed five times a second.
    EXPECT_TRUE(eventually([&] { return occurrences(brokers[0]->output(), "no longer degraded") == 1; }))
        << brokers[0]->output();
    EXPECT_EQ(occurrences(brokers[0]->output(), "refuses what sharing needs"), 1u) << brokers[0]->output();
}

// An out-of-memory Redis with noeviction refuses every write (OOM): callers still get their
// answers, but /readyz says degraded, naming OOM, until Redis takes writes again.
TEST_F(Replicas, AnOutOfMemoryRedisIsDegradedNotUp) {
    test::redis_server redis;
    start_brokers(1, {{"redis", redis_block(redis)}});
    ASSERT_TRUE(redis.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).is_status("OK"));
    ASSERT_TRUE(redis.command({"CONFIG", "SET", "maxmemory", "1"}).is_status("OK"));
    EXPECT_EQ(get_token(ports[0], "out-of-memory@example.com").status, 200);
    EXPECT_TRUE(eventually([&] {
        return readyz(ports[0]).find(R"("redis":"degraded")") != std::string::npos;
    })) << readyz(ports[0]);
    EXPECT_NE(readyz(ports[0]).find("OOM"), std::string::npos) << readyz(ports[0]);
    EXPECT_NE(metrics_text(ports[0]).find("\ntoken_broker_redis_degraded 1\n"), std::string::npos);
    EXPECT_EQ(get_token(ports[0], "out-of-memory-2@example.com").status, 200);

    ASSERT_TRUE(redis.command({"CONFIG", "SET", "maxmemory", "0"}).is_status("OK"));
    EXPECT_TRUE(eventually([&] { return readyz(ports[0]) == R"({"status":"ready","redis":"up"})"; }))
        << readyz(ports[0]);
    EXPECT_NE(metrics_text(ports[0]).find("\ntoken_broker_redis_degraded 0\n"), std::string::npos);
}

// A Redis that became a read-only replica (REPLICAOF) refuses every write (READONLY): degraded,
// naming READONLY, while callers are answered; up again once it is a master.
TEST_F(Replicas, AReadOnlyReplicaIsDegradedNotUp) {
    test::redis_server redis;
    test::redis_server master;
    start_brokers(1, {{"redis", redis_block(redis)}});
    ASSERT_TRUE(redis.command({"CONFIG", "SET", "masterauth", master.password()}).is_status("OK"));
    ASSERT_TRUE(redis.command({"REPLICAOF", "127.0.0.1", std::to_string(master.port())}).is_status("OK"));
    EXPECT_EQ(get_token(ports[0], "read-only@example.com").status, 200);
    EXPECT_TRUE(eventually([&] {
        return readyz(ports[0]).find(R"("redis":"degraded")") != std::string::npos;
    })) << readyz(ports[0]);
    EXPECT_NE(readyz(ports[0]).find("READONLY"), std::string::npos) << readyz(ports[0]);
    EXPECT_EQ(get_token(ports[0], "read-only-2@example.com").status, 200);

    ASSERT_TRUE(redis.command({"REPLICAOF", "NO", "ONE"}).is_status("OK"));
    EXPECT_TRUE(eventually([&] { return readyz(ports[0]) == R"({"status":"ready","redis":"up"})"; }))
        << readyz(ports[0]);
}

// A user allowed to log in but not to SUBSCRIBE: degraded, and the subscription's reconnections
// back off (100 ms doubling) instead of starting again ten times a second, as they did when each
// successful login reset the backoff.
TEST_F(Replicas, ARefusedSubscriptionIsDegradedAndBacksOff) {
    test::redis_server redis;
    start_brokers(1, {{"redis", redis_block(redis)}});
    ASSERT_FALSE(redis.command({"ACL", "SETUSER", "default", "-subscribe"}).is_error());
    ASSERT_GE(redis.command({"CLIENT", "KILL", "TYPE", "pubsub"}).integer, 1);
    EXPECT_TRUE(eventually([&] {
        return readyz(ports[0]).find(R"("redis":"degraded")") != std::string::npos;
    })) << readyz(ports[0]);
    EXPECT_NE(readyz(ports[0]).find(R"("redis_reason":"subscription: SUBSCRIBE refused: NOPERM)"),
              std::string::npos)
        << readyz(ports[0]);
    const auto before = connections_received(redis);
    std::this_thread::sleep_for(3s);
    // With the backoff: about 6 in 3 s (at 0.1, 0.2, 0.4, 0.8, 1.6 s...), plus this test's own
    // INFO connections; without it, about 30.
    EXPECT_LT(connections_received(redis) - before, 14) << "the subscription reconnected without backing off";

    ASSERT_FALSE(redis.command({"ACL", "SETUSER", "default", "+subscribe"}).is_error());
    EXPECT_TRUE(eventually([&] { return readyz(ports[0]) == R"({"status":"ready","redis":"up"})"; }))
        << readyz(ports[0]);
    EXPECT_EQ(occurrences(brokers[0]->output(), "refuses what sharing needs"), 1u) << brokers[0]->output();
}

} // namespace
} // namespace token_broker
