// Replicas as operators run them (CONTRACT.md section 7): separate token-broker processes naming
// one real redis-server, in front of one Zoom simulator. What shared_cache_test checks inside one
// process, checked here through the executable's own wiring, its signals and its configuration.
#include "broker_process.hpp"
#include "redis_server.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <set>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::broker_process;
using testing::client;
using testing::eventually;

const std::string auth = "Authorization: Bearer first-key-0123456789\r\n";

struct answer {
    int status = 0;
    std::string body;
    std::chrono::steady_clock::duration took{};

    bool cached() const { return body.find(R"("cached":true)") != std::string::npos; }
    std::string token() const {
        const auto v = boost::json::parse(body);
        return std::string(v.as_object().at("token").as_string());
    }
};

answer get(std::uint16_t port, const std::string& user, std::chrono::milliseconds limit = 5s) {
    const auto started = std::chrono::steady_clock::now();
    try {
        client c(port, limit);
        const auto r = c.get("/token/" + user, auth);
        return {static_cast<int>(r.result_int()), r.body(), std::chrono::steady_clock::now() - started};
    } catch (const std::exception& e) {
        return {0, e.what(), std::chrono::steady_clock::now() - started};
    }
}

int remove(std::uint16_t port, const std::string& user) {
    client c(port);
    c.send("DELETE /token/" + user + " HTTP/1.1\r\nHost: localhost\r\n" + auth + "\r\n");
    return static_cast<int>(c.read().result_int());
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
        ++n;
    return n;
}

std::string readyz(std::uint16_t port) {
    try {
        return client(port).get("/readyz").body();
    } catch (const std::exception& e) {
        return e.what();
    }
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

    // `count` concurrent GETs for `user`, spread over every broker in turn.
    std::vector<answer> concurrently(const std::string& user, int count,
                                     std::chrono::milliseconds limit = 10s) {
        std::vector<std::future<answer>> running;
        for (int i = 0; i < count; ++i)
            running.push_back(std::async(std::launch::async, [this, i, &user, limit] {
                return get(ports[static_cast<std::size_t>(i) % ports.size()], user, limit);
            }));
        std::vector<answer> all;
        for (auto& f : running)
            all.push_back(f.get());
        return all;
    }
};

TEST_F(Replicas, ThreeProcessesOverRedissMakeOneZoomCallForNinetyConcurrentRequestsAndShareWhatTheyFetch) {
    test::redis_tls_setup tls;
    test::redis_server redis(tls.files);
    start_brokers(3, {{"redis", redis_block(redis, true)}});
    EXPECT_EQ(sim.oauth_calls(), 1u) << "one access token for the three";

    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 600ms, .times = -1}, "slow@example.com");
    const auto answers = concurrently("slow@example.com", 90);
    std::set<std::string> tokens;
    for (const auto& a : answers) {
        ASSERT_EQ(a.status, 200) << a.body;
        tokens.insert(a.token());
    }
    EXPECT_EQ(tokens.size(), 1u) << "every caller got the one token Zoom issued";
    EXPECT_EQ(sim.token_calls("slow@example.com"), 1u);

    // Fetched by one, served by the others from Redis as cached.
    const auto first = get(ports[0], "shared@example.com");
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_FALSE(first.cached());
    for (auto port : {ports[1], ports[2]}) {
        const auto other = get(port, "shared@example.com");
        ASSERT_EQ(other.status, 200) << other.body;
        EXPECT_TRUE(other.cached()) << other.body;
        EXPECT_EQ(other.token(), first.token());
    }
    EXPECT_EQ(sim.token_calls("shared@example.com"), 1u);

    // An unknown user costs one Zoom call for all, and is remembered by all.
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 300ms, .times = -1}, "unknown-1@example.com");
    for (const auto& a : concurrently("unknown-1@example.com", 30)) {
        EXPECT_EQ(a.status, 404) << a.body;
        EXPECT_NE(a.body.find("user_not_found"), std::string::npos) << a.body;
    }
    for (auto port : ports)
        EXPECT_EQ(get(port, "unknown-1@example.com").status, 404);
    EXPECT_EQ(sim.token_calls("unknown-1@example.com"), 1u);

    // DELETE on one: every replica fetches fresh, and the three of them make one call for it. (The
    // simulator's tokens carry their issue time in seconds: a second later, a new one differs.)
    std::this_thread::sleep_for(1100ms);
    ASSERT_EQ(remove(ports[2], "shared@example.com"), 204);
    std::set<std::string> after;
    for (const auto& a : concurrently("shared@example.com", 9)) {
        ASSERT_EQ(a.status, 200) << a.body;
        after.insert(a.token());
    }
    EXPECT_EQ(after.size(), 1u);
    EXPECT_FALSE(after.contains(first.token())) << "the forgotten token came back";
    EXPECT_EQ(sim.token_calls("shared@example.com"), 2u);
    EXPECT_EQ(sim.oauth_calls(), 1u);
}

// After two processes have fetched tokens, met an unknown user, shared the access token and the
// budget, and forgotten a user: nothing Redis holds names a user or carries a secret in clear.
TEST_F(Replicas, WhatTheProcessesLeaveInRedisHoldsNoUserIdTokenOrSecret) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis)}});
    const std::vector<std::string> users{"alice@example.com", "bob.smith", "unknown-carol@example.com",
                                         "leaver@example.com"};
    std::vector<std::string> forbidden = users;
    for (const auto& u : users)
        for (auto port : ports) {
            const auto a = get(port, u);
            if (a.status == 200)
                forbidden.push_back(a.token());
        }
    ASSERT_EQ(forbidden.size(), users.size() + 6) << "three users, each answered on both replicas";
    ASSERT_EQ(remove(ports[1], "leaver@example.com"), 204);
    const auto issued = sim.issued_access_tokens();
    ASSERT_EQ(issued.size(), 1u);
    forbidden.insert(forbidden.end(), issued.begin(), issued.end());
    for (const auto& s : {std::string("example.com"), sim.settings().client_secret,
                          std::string("first-key-0123456789"), redis.password(), std::string(64, 'e')})
        forbidden.push_back(s);

    const auto contents = redis.contents();
    ASSERT_GE(contents.size(), 8u) << "two token entries with their sets, a negative entry, the access token";
    for (const auto& text : contents) {
        EXPECT_EQ(text.find("unexpected type"), std::string::npos) << text;
        for (const auto& f : forbidden)
            EXPECT_EQ(text.find(f), std::string::npos) << "Redis holds \"" << f << "\" in clear";
    }
}

// A DELETE's 204 says every replica has forgotten the user. A replica that is frozen (SIGSTOP)
// hears of it but cannot say so: the DELETE is 503 until it can, and then it has forgotten.
TEST_F(Replicas, ADeleteIsNotConfirmedWhileAReplicaCannotForget) {
    test::redis_server redis;
    start_brokers(2, {{"redis", redis_block(redis, false, {{"command_timeout_ms", 250}})}});
    ASSERT_EQ(get(ports[0], "leaver@example.com").status, 200);
    ASSERT_TRUE(get(ports[1], "leaver@example.com").cached());

    brokers[1]->signal(SIGSTOP);
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(remove(ports[0], "leaver@example.com"), 503);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 1250ms) << "command_timeout_ms + 1 s";
    brokers[1]->signal(SIGCONT);

    EXPECT_TRUE(eventually([&] { return remove(ports[0], "leaver@example.com") == 204; }));
    const auto after = get(ports[1], "leaver@example.com");
    ASSERT_EQ(after.status, 200) << after.body;
    EXPECT_FALSE(after.cached()) << "the thawed replica still had the forgotten token";
    EXPECT_EQ(sim.token_calls("leaver@example.com"), 2u);
}

// The lock of a replica SIGKILLed in the middle of its Zoom call is never released: it lives
// zoom.request_timeout_ms + 1 s (3 s here). Until then nobody calls Zoom for that user; then one of
// the survivors does, and the other takes its result.
TEST_F(Replicas, AReplicaKilledWhileItFetchesHoldsTheOthersUpUntilTheBoundThenOneFetches) {
    test::redis_server redis;
    start_brokers(3, {{"redis", redis_block(redis)}, {"zoom", {{"request_timeout_ms", 2000}}}});
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 1500ms, .times = 1}, "orphan@example.com");

    auto on_dying = std::async(std::launch::async, [&] { return get(ports[0], "orphan@example.com"); });
    ASSERT_TRUE(eventually([&] { return sim.token_calls("orphan@example.com") == 1; }));
    const auto taken = std::chrono::steady_clock::now(); // the lock was taken before Zoom was called
    brokers[0]->signal(SIGKILL);
    EXPECT_EQ(brokers[0]->wait_exit(5s), 128 + SIGKILL);
    EXPECT_EQ(on_dying.get().status, 0) << "the killed replica answered nothing";

    auto on_b = std::async(std::launch::async, [&] { return get(ports[1], "orphan@example.com", 20s); });
    auto on_c = std::async(std::launch::async, [&] { return get(ports[2], "orphan@example.com", 20s); });
    while (std::chrono::steady_clock::now() - taken < 2500ms) {
        ASSERT_EQ(sim.token_calls("orphan@example.com"), 1u) << "a survivor ignored the dead replica's lock";
        std::this_thread::sleep_for(20ms);
    }
    const auto b = on_b.get();
    const auto c = on_c.get();
    ASSERT_EQ(b.status, 200) << b.body;
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(b.token(), c.token());
    EXPECT_EQ(sim.token_calls("orphan@example.com"), 2u) << "one survivor fetched, the other waited on it";

    const auto log = sim.token_call_log();
    ASSERT_FALSE(log.empty());
    const auto second_call = log.back().at - taken;
    EXPECT_GE(second_call, 2500ms);
    // The bound is 3 s after the lock was taken; a waiter looks again every 150 ms. The margin is for
    // a loaded machine.
    EXPECT_LT(second_call, 5s) << "the dead replica held the others up past its lock's life";
}

// Redis frozen (SIGSTOP: it accepts connections but answers nothing), then gone, then back.
TEST_F(Replicas, RedisGoingAwayLeavesEachReplicaAloneAndEachFindsItAgainByItself) {
    test::redis_server redis;
    const boost::json::object more{{"command_timeout_ms", 400}};
    // A budget that never makes a miss wait: only Redis's part of a miss is measured.
    start_brokers(2, {{"redis", redis_block(redis, false, more)},
                      {"zoom", {{"request_timeout_ms", 5000}, {"requests_per_second", 10000}}}});
    ASSERT_EQ(get(ports[0], "before@example.com").status, 200);
    ASSERT_TRUE(get(ports[1], "before@example.com").cached());
    const auto zoom_miss = get(ports[0], "baseline@example.com").took;

    redis.pause();
    for (std::size_t i = 0; i < ports.size(); ++i) {
        const auto hit = get(ports[i], "before@example.com");
        EXPECT_EQ(hit.status, 200) << hit.body;
        EXPECT_TRUE(hit.cached());
        // A miss: one command that waits its command_timeout_ms (400 ms), then Zoom; a second
        // command's timeout, the wait for a fetch lock (5 s + 1 s here) or for a reconnection play
        // no part. The margin is for a loaded machine, and less than a second timeout.
        const auto miss = get(ports[i], "frozen-" + std::to_string(i) + "@example.com");
        EXPECT_EQ(miss.status, 200) << miss.body;
        EXPECT_FALSE(miss.cached());
        EXPECT_LT(miss.took, zoom_miss + 400ms + 300ms) << "a miss waited more than one command timeout";
        const auto next = get(ports[i], "frozen-next-" + std::to_string(i) + "@example.com");
        EXPECT_EQ(next.status, 200) << next.body;
        EXPECT_LT(next.took, zoom_miss + 300ms) << "Redis is known to be down: no more waiting";
    }
    for (auto port : ports) {
        EXPECT_EQ(readyz(port), R"({"status":"ready","redis":"down"})");
        EXPECT_EQ(remove(port, "before@example.com"), 503);
    }

    redis.stop(); // gone: connections refused
    for (auto port : ports) {
        const auto miss = get(port, "gone@example.com");
        EXPECT_EQ(miss.status, 200) << miss.body;
        EXPECT_FALSE(miss.cached()) << "each replica alone";
        EXPECT_EQ(readyz(port), R"({"status":"ready","redis":"down"})");
    }
    EXPECT_EQ(sim.token_calls("gone@example.com"), 2u);

    redis.restart();
    for (auto port : ports)
        EXPECT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }, 20s))
            << readyz(port);
    const auto fresh = get(ports[0], "after@example.com");
    ASSERT_EQ(fresh.status, 200);
    const auto shared = get(ports[1], "after@example.com");
    ASSERT_EQ(shared.status, 200);
    EXPECT_TRUE(shared.cached()) << "sharing works again";
    EXPECT_EQ(sim.token_calls("after@example.com"), 1u);
    EXPECT_EQ(remove(ports[1], "after@example.com"), 204);
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
        ASSERT_EQ(get(ports[0], users.back()).status, 200);
    }
    const auto calls = sim.token_calls();
    const auto oauth = sim.oauth_calls();

    redis.pause();
    const auto port = start_broker(extra);
    std::vector<std::future<answer>> first;
    for (const auto& u : users)
        first.push_back(std::async(std::launch::async, [&, u] { return get(port, u, 10s); }));
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

} // namespace
} // namespace token_broker
