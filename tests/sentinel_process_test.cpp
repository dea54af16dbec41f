// Replicas on a Redis watched by Sentinel (CONTRACT.md section 7, "Redis that survives a node"):
// token-broker processes with a redis+sentinel:// URL in front of one Zoom simulator, and a real
// master, replica and three sentinels (tests/sentinel_setup.hpp). The master is killed or failed
// over under traffic; a sentinel is made to name the replica. And the two parts of the Redis client
// that these rest on, on a connection of their own: WAIT for the forget, the idle health check.
#include "broker_process.hpp"
#include "redis_test_support.hpp"
#include "replica_scenarios.hpp"
#include "sentinel_setup.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <iostream>
#include <mutex>
#include <set>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::answer;
using testing::broker_process;
using testing::delete_token;
using testing::eventually;
using testing::get_token;
using testing::readyz;
using steady = std::chrono::steady_clock;

// GETs of already fetched users, on every broker in turn, from a few threads, until stopped: every
// answer that is not a 200 is kept.
class steady_traffic {
public:
    steady_traffic(std::vector<std::uint16_t> ports, std::vector<std::string> users)
        : ports_(std::move(ports)), users_(std::move(users)) {
        for (int t = 0; t < 4; ++t)
            threads_.emplace_back([this, t] {
                for (std::size_t i = static_cast<std::size_t>(t); !stop_; ++i) {
                    const auto a = get_token(ports_[i % ports_.size()], users_[i % users_.size()]);
                    std::lock_guard lock(m_);
                    ++answered_;
                    if (a.status != 200)
                        failures_.push_back(std::to_string(a.status) + " " + a.body);
                }
            });
    }
    ~steady_traffic() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& t : threads_)
            if (t.joinable())
                t.join();
    }
    std::size_t answered() {
        std::lock_guard lock(m_);
        return answered_;
    }
    std::vector<std::string> failures() {
        std::lock_guard lock(m_);
        return failures_;
    }

private:
    std::vector<std::uint16_t> ports_;
    std::vector<std::string> users_;
    std::atomic<bool> stop_{false};
    std::mutex m_;
    std::size_t answered_ = 0;
    std::vector<std::string> failures_;
    std::vector<std::thread> threads_;
};

struct SentinelReplicas : ::testing::Test {
    zoom_sim::simulator sim;
    test::sentinel_setup redis;
    std::vector<std::unique_ptr<broker_process>> brokers;
    std::vector<std::uint16_t> ports;
    int probes = 0;

    boost::json::object redis_block(const std::string& url) const {
        return {{"url", url},
                {"password", redis.master.password()},
                {"sentinel_password", test::sentinel_setup::sentinel_password},
                {"encryption_key", std::string(64, 'e')}};
    }

    // Starts `n` brokers naming `url`, and waits until each says its Redis is up.
    void start_brokers(int n, const std::string& url) {
        testing::start_sharing_brokers(
            sim, n, {{"redis", redis_block(url)}, {"zoom", {{"requests_per_second", 10000}}}}, brokers,
            ports);
    }

    // One fetch shared: a new user fetched on the first broker is served by the second as cached.
    bool shares() {
        return testing::one_fetch_shared(ports, "probe-" + std::to_string(++probes) + "@example.com");
    }

    // Polls shares() every 50 ms until it holds; when it did, or nullopt at `limit`.
    std::optional<steady::time_point> shares_again(std::chrono::milliseconds limit) {
        const auto give_up = steady::now() + limit;
        while (steady::now() < give_up) {
            if (shares())
                return steady::now();
            std::this_thread::sleep_for(50ms);
        }
        return std::nullopt;
    }

    // Polls the sentinels every 20 ms until one names `port` as the master; when, or nullopt.
    std::optional<steady::time_point> master_moves_to(std::uint16_t port, std::chrono::milliseconds limit) {
        const auto give_up = steady::now() + limit;
        while (steady::now() < give_up) {
            for (std::size_t i = 0; i < redis.sentinels.size(); ++i)
                if (redis.master_port_by(i) == port)
                    return steady::now();
            std::this_thread::sleep_for(20ms);
        }
        return std::nullopt;
    }

    // What the failover tests share: traffic on users fetched before, a user forgotten before the
    // failover, `fail_over` run, then sharing again on the replica made master, no caller error, the
    // forgotten user still forgotten.
    template <class F>
    void fail_over_under_traffic(const char* what, F fail_over) {
        redis.wait_ready_to_fail_over();
        start_brokers(2, redis.url());
        ASSERT_TRUE(shares());
        std::vector<std::string> users;
        for (int i = 0; i < 8; ++i) {
            users.push_back("steady-" + std::to_string(i) + "@example.com");
            ASSERT_EQ(get_token(ports[0], users.back()).status, 200);
        }
        const auto forgotten = get_token(ports[0], "forgotten@example.com");
        ASSERT_EQ(forgotten.status, 200);
        ASSERT_TRUE(get_token(ports[1], "forgotten@example.com").cached());
        const auto calls_before = sim.token_calls();
        // The simulator's tokens carry their issue time in seconds: a second later, a new one differs.
        std::this_thread::sleep_for(1100ms);
        steady_traffic traffic(ports, users);
        ASSERT_EQ(delete_token(ports[1], "forgotten@example.com"), 204);

        const auto started = steady::now();
        fail_over();
        const auto moved = master_moves_to(redis.replica.port(), 30s);
        ASSERT_TRUE(moved) << "the sentinels did not fail over";
        const auto shared = shares_again(10s);
        traffic.stop();
        ASSERT_TRUE(shared) << "the replicas do not share again";
        const auto probe_calls = static_cast<std::uint64_t>(probes) * 2; // at most two calls a probe
        const auto ms = [](auto d) {
            return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        };
        std::cout << "[ " << what << " ] failover by the sentinels after " << ms(*moved - started)
                  << " ms; sharing again " << ms(*shared - *moved) << " ms after that; " << traffic.answered()
                  << " answers under traffic, " << traffic.failures().size()
                  << " errors; Zoom calls during it " << sim.token_calls() - calls_before
                  << " (probes at most " << probe_calls << ")\n";
        EXPECT_EQ(traffic.failures(), std::vector<std::string>{}) << "a caller got an error";
        EXPECT_GT(traffic.answered(), 20u);
        // Sharing again within a second of the failover (measured: 0.2 s at most; each connection
        // asks the sentinels again when it is dropped, or when +switch-master comes).
        EXPECT_LT(*shared - *moved, 1s);

        for (auto port : ports) {
            const auto after = get_token(port, "forgotten@example.com");
            ASSERT_EQ(after.status, 200) << after.body;
            EXPECT_NE(after.token(), forgotten.token()) << "a token forgotten before the failover came back";
        }
        EXPECT_EQ(redis.replica.command({"ROLE"}).elements.at(0).text, "master");
        // Each replica hears the sentinels' +switch-master (published once the failover is complete,
        // which may be after the sentinels already name the new master) and moves at once on it.
        const std::string heard =
            "redis sentinel: master tbmaster moved from 127.0.0.1:" + std::to_string(redis.master.port()) +
            " to 127.0.0.1:" + std::to_string(redis.replica.port());
        for (const auto& b : brokers)
            EXPECT_TRUE(eventually([&] { return b->output().find(heard) != std::string::npos; }, 15s))
                << b->output();
    }
};

TEST_F(SentinelReplicas, TwoProcessesFindTheMasterThroughTheSentinelsAndShareWhatTheyFetch) {
    // A sentinel that is down first in the list: the next is asked.
    start_brokers(2, redis.url({1}));
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 600ms, .times = -1}, "slow@example.com");
    std::vector<std::future<answer>> running;
    for (int i = 0; i < 20; ++i)
        running.push_back(std::async(std::launch::async, [this, i] {
            return get_token(ports[static_cast<std::size_t>(i) % 2], "slow@example.com");
        }));
    std::set<std::string> tokens;
    for (auto& f : running) {
        const auto a = f.get();
        ASSERT_EQ(a.status, 200) << a.body;
        tokens.insert(a.token());
    }
    EXPECT_EQ(tokens.size(), 1u);
    EXPECT_EQ(sim.token_calls("slow@example.com"), 1u) << "one Zoom call for both replicas";
    EXPECT_TRUE(shares());
    EXPECT_GT(redis.master.command({"DBSIZE"}).integer, 0) << "the entries are on the master";
}

TEST_F(SentinelReplicas, AKilledMasterUnderTrafficGivesNoCallerAnErrorAndTheReplicasShareAgainOnTheNewOne) {
    fail_over_under_traffic("SIGKILL", [&] { redis.master.kill(); });
}

TEST_F(SentinelReplicas, AForcedFailoverUnderTrafficGivesNoCallerAnErrorAndTheReplicasShareAgain) {
    fail_over_under_traffic("SENTINEL FAILOVER", [&] {
        const auto a =
            redis.sentinels[0]->command({"SENTINEL", "FAILOVER", test::sentinel_setup::master_name});
        ASSERT_FALSE(a.is_error()) << a.text;
    });
}

// A sentinel that names a server that is not the master (here: told to monitor the replica) is passed
// over: the ROLE check refuses the replica and the next sentinel's answer is used.
TEST_F(SentinelReplicas, ASentinelNamingAReplicaIsPassedOverForTheNextOne) {
    auto& stale = *redis.sentinels[0];
    const std::string name = test::sentinel_setup::master_name;
    ASSERT_FALSE(stale.command({"SENTINEL", "REMOVE", name}).is_error());
    ASSERT_FALSE(
        stale.command({"SENTINEL", "MONITOR", name, "127.0.0.1", std::to_string(redis.replica.port()), "2"})
            .is_error());
    ASSERT_FALSE(stale.command({"SENTINEL", "SET", name, "auth-pass", redis.master.password()}).is_error());
    ASSERT_EQ(redis.master_port_by(0), redis.replica.port());

    start_brokers(2, redis.url());
    EXPECT_TRUE(shares());
    EXPECT_GT(redis.master.command({"DBSIZE"}).integer, 0) << "the entries are on the master";
    EXPECT_EQ(redis.master_port_by(0), redis.replica.port()) << "the stale sentinel still names the replica";
}

// With no Redis replica to hold it, a forget could be lost in a failover: the DELETE is refused
// (503, the caller retries) rather than answered 204.
TEST_F(SentinelReplicas, ADeleteThatNoRedisReplicaConfirmsIsRefused) {
    start_brokers(2, redis.url());
    ASSERT_EQ(get_token(ports[0], "leaver@example.com").status, 200);
    ASSERT_EQ(delete_token(ports[1], "leaver@example.com"), 204);
    redis.replica.kill();
    EXPECT_EQ(delete_token(ports[1], "leaver@example.com"), 503);
    EXPECT_TRUE(eventually(
        [&] { return brokers[1]->output().find("no Redis replica confirmed") != std::string::npos; }, 5s))
        << brokers[1]->output();
}

redis::options sentinel_client(const test::sentinel_setup& s) {
    redis::options o;
    o.connect_to = redis::target::sentinel_master;
    for (const auto& sentinel : s.sentinels)
        o.sentinels.push_back({"127.0.0.1", sentinel->port()});
    o.master_name = test::sentinel_setup::master_name;
    o.password = secret(s.master.password());
    o.sentinel_password = secret(test::sentinel_setup::sentinel_password);
    o.connect_timeout = 2s;
    o.command_timeout = 300ms;
    return o;
}

net::awaitable<void> confirm_on_a_replica(test::redis_fixture& f, test::sentinel_setup& s) {
    auto c = f.connect(sentinel_client(s));
    EXPECT_TRUE(co_await c->wait_up(steady::now() + 10s));
    auto set = co_await c->exec(test::cmd("SET", "forgotten", "v"));
    EXPECT_TRUE(set && set->is_status("OK"));
    auto confirmed = co_await c->confirm_replicated("k");
    EXPECT_TRUE(confirmed) << (confirmed ? "" : confirmed.error().message);
    EXPECT_EQ(s.replica.command({"GET", "forgotten"}).text, "v") << "WAIT said a replica had it";

    // No replica left: WAIT answers 0 after its timeout (half of command_timeout: 150 ms), and that
    // is an error, not a reason to drop the connection.
    s.replica.kill();
    set = co_await c->exec(test::cmd("SET", "forgotten", "w"));
    EXPECT_TRUE(set && set->is_status("OK"));
    const auto started = steady::now();
    confirmed = co_await c->confirm_replicated("k");
    EXPECT_FALSE(confirmed);
    if (!confirmed) {
        EXPECT_EQ(confirmed.error().message, "no Redis replica confirmed the write within 150 ms (WAIT)");
    }
    EXPECT_GE(steady::now() - started, 140ms);
    EXPECT_LT(steady::now() - started, 300ms);
    EXPECT_TRUE(c->up());

    // Without Sentinel there is no replica to wait for: confirmed at once.
    auto direct = f.connect(s.master.client_options());
    EXPECT_TRUE(co_await direct->wait_up(steady::now() + 10s));
    EXPECT_TRUE(co_await direct->confirm_replicated("k"));
}

TEST(SentinelClient, TheForgetsWaitConfirmsOnlyWhenAReplicaHasTheWrites) {
    test::sentinel_setup redis;
    test::redis_fixture f;
    f.run(confirm_on_a_replica(f, redis));
}

// A master demoted behind the sentinels' back (REPLICAOF, which keeps its clients connected): the
// idle command connection's health check (ROLE under Sentinel) finds it out and drops the connection.
net::awaitable<void> demoted_master(test::redis_fixture& f, test::sentinel_setup& s) {
    auto o = sentinel_client(s);
    o.health_check = 100ms;
    auto c = f.connect(o);
    EXPECT_TRUE(co_await c->wait_up(steady::now() + 10s));
    co_await test::sleep_for(300ms);
    EXPECT_TRUE(c->up()) << "a master passes its checks";
    s.replica.command({"REPLICAOF", "NO", "ONE"});
    s.master.command({"REPLICAOF", "127.0.0.1", std::to_string(s.replica.port())});
    const auto demoted = steady::now();
    EXPECT_TRUE(co_await test::eventually([&] { return !c->up(); }, 5s));
    EXPECT_LT(steady::now() - demoted, 100ms + 100ms + 300ms + 300ms) << "one interval, one ROLE's timeout";
}

TEST(SentinelClient, AnIdleCommandConnectionToADemotedMasterIsDroppedByItsRoleCheck) {
    test::sentinel_setup redis;
    test::redis_fixture f;
    f.run(demoted_master(f, redis));
    EXPECT_NE(f.logs().find("failed its health check: the server is not the master (ROLE says slave)"),
              std::string::npos)
        << f.logs();
}

// rediss+sentinel://: the sentinel is asked over TLS and the master it names is reached over TLS,
// both verified with the one CA (redis.ca_file) against the address each was reached by.
net::awaitable<void> over_tls(test::redis_fixture& f, redis::options o) {
    auto c = f.connect(o);
    EXPECT_TRUE(co_await c->wait_up(steady::now() + 10s)) << f.logs();
    auto pong = co_await c->exec(test::cmd("PING"));
    EXPECT_TRUE(pong && pong->is_status("PONG"));
}

net::awaitable<void> not_up(test::redis_fixture& f, redis::options o) {
    auto c = f.connect(o);
    EXPECT_FALSE(co_await c->wait_up(steady::now() + 1s));
}

TEST(SentinelClient, ASentinelAndItsMasterAreReachedOverTls) {
    test::redis_tls_setup tls;
    test::redis_server master(tls.files);
    std::string pattern = (std::filesystem::temp_directory_path() / "token-broker-sentinel-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    test::sentinel_process sentinel(pattern, "tlsmaster", master.port(), master.password(), "sentinel-pw",
                                    &tls.files);
    redis::options o = master.client_options();
    o.connect_to = redis::target::sentinel_master;
    o.sentinels = {{"127.0.0.1", sentinel.port()}};
    o.master_name = "tlsmaster";
    o.sentinel_password = secret("sentinel-pw");
    test::redis_fixture f;
    f.run(over_tls(f, o));
    EXPECT_NE(f.logs().find("redis at rediss+sentinel://127.0.0.1:" + std::to_string(master.port()) +
                            " (master tlsmaster) is up"),
              std::string::npos)
        << f.logs();

    // A CA that signed neither: the sentinel is refused, and so nothing is connected.
    o.ca_file = tls.dir + "/other-ca.pem";
    test::redis_fixture other;
    other.run(not_up(other, o));
    EXPECT_NE(other.logs().find("no sentinel named a master"), std::string::npos) << other.logs();
    std::error_code ignored;
    std::filesystem::remove_all(pattern, ignored);
}

// A command connection that has been idle: its health check finds a frozen Redis (SIGSTOP: the
// connection stays open, nothing answers) without any caller's command, and drops it.
net::awaitable<void> idle_check(test::redis_fixture& f, test::redis_server& server) {
    auto o = server.client_options();
    o.command_timeout = 200ms;
    o.health_check = 100ms;
    auto c = f.connect(o);
    EXPECT_TRUE(co_await c->wait_up(steady::now() + 10s));
    co_await test::sleep_for(300ms);
    EXPECT_TRUE(c->up()) << "a healthy idle connection passes its checks";
    server.pause();
    const auto paused = steady::now();
    EXPECT_TRUE(co_await test::eventually([&] { return !c->up(); }, 5s));
    EXPECT_LT(steady::now() - paused, 100ms + 100ms + 200ms + 300ms) << "one interval, one PING's timeout";
    server.resume();
    EXPECT_TRUE(co_await c->wait_up(steady::now() + 10s));
}

TEST(SentinelClient, AnIdleCommandConnectionToAFrozenRedisIsDroppedByItsHealthCheck) {
    test::redis_server server;
    test::redis_fixture f;
    f.run(idle_check(f, server));
    EXPECT_NE(f.logs().find("failed its health check"), std::string::npos) << f.logs();
}

} // namespace
} // namespace token_broker
