// The Zoom budget shared by replicas through Redis (CONTRACT.md section 7): the GCRA script alone
// against a real redis-server, then three "replicas" (three zoom_clients, each with its own Redis
// connections and metrics, in one process) against one Zoom simulator and one Redis: one access
// token for all, the account's rate for all, one 429 blocking all, and the fallback to each
// replica's own when Redis stops; replicas waiting for another's OAuth fetch woken by its
// announcement (or, when it is lost, after one lease), and the first fetch woken by Redis coming up.
#include "metrics/metrics.hpp"
#include "redis/sealed.hpp"
#include "redis/subscriber.hpp"
#include "redis_server.hpp"
#include "redis_test_support.hpp"
#include "zoom/shared_budget.hpp"
#include "zoom/zoom_client.hpp"
#include "zoom_simulator.hpp"

#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::test {
namespace {

using steady = std::chrono::steady_clock;
using std::chrono::microseconds;

// ---- the script alone ----

struct gcra_answer {
    bool granted = false;
    long long wait_us = -1;
};

net::awaitable<gcra_answer> gcra(redis::connection& c, std::chrono::microseconds interval,
                                 std::chrono::microseconds window, std::chrono::microseconds patience) {
    std::vector<std::string> keys{"test:budget"};
    std::vector<std::string> args{std::to_string(interval.count()), std::to_string(window.count()),
                                  std::to_string(patience.count())};
    auto r = co_await gcra_script().run(c, std::move(keys), std::move(args));
    EXPECT_TRUE(r.has_value());
    if (!r || r->type != redis::reply::kind::array || r->elements.size() != 2) {
        ADD_FAILURE() << "unexpected reply from the GCRA script";
        co_return gcra_answer{};
    }
    co_return gcra_answer{r->elements[0].integer == 1, r->elements[1].integer};
}

constexpr microseconds interval{250'000}; // 4 a second
constexpr microseconds window{1'000'000}; // a burst of 4

net::awaitable<void> script_burst_and_refusal(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    const auto first = steady::now();
    // The burst: four at once.
    for (int i = 0; i < 4; ++i) {
        const auto a = co_await gcra(*c, interval, window, microseconds{0});
        EXPECT_TRUE(a.granted) << i;
        EXPECT_EQ(a.wait_us, 0) << i;
    }
    // The fifth would have to wait about one interval: refused when the caller cannot wait, and
    // the refusal consumes nothing (it can be asked again with the same answer).
    for (int i = 0; i < 3; ++i) {
        const auto refused = co_await gcra(*c, interval, window, microseconds{0});
        EXPECT_FALSE(refused.granted);
        const auto elapsed = std::chrono::duration_cast<microseconds>(steady::now() - first).count();
        EXPECT_GT(refused.wait_us, 0);
        EXPECT_LE(refused.wait_us, interval.count());
        EXPECT_GE(refused.wait_us + elapsed, interval.count());
    }
    // A patient caller gets the reserved turns in order, one interval apart: the rate.
    for (int k = 1; k <= 4; ++k) {
        const auto a = co_await gcra(*c, interval, window, microseconds{10'000'000});
        const auto elapsed = std::chrono::duration_cast<microseconds>(steady::now() - first).count();
        EXPECT_TRUE(a.granted) << k;
        EXPECT_LE(a.wait_us, k * interval.count()) << k;
        EXPECT_GE(a.wait_us + elapsed, k * interval.count()) << k;
    }
    // Its key expires once it no longer limits anyone: within the reserved turns plus the window.
    std::vector<std::string> pttl{"PTTL", "test:budget"};
    auto ttl = co_await c->exec(std::move(pttl));
    EXPECT_TRUE(ttl && ttl->integer > 0 && ttl->integer <= 2001) << (ttl ? ttl->integer : -3);
}

TEST(RedisGcraScript, BurstThenRefusalWithTheWaitThenTurnsAtTheRate) {
    redis_server server;
    redis_fixture f;
    f.run(script_burst_and_refusal(f, server));
}

net::awaitable<void> script_after_the_wait(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    const microseconds slow{400'000};
    EXPECT_TRUE((co_await gcra(*c, slow, slow, microseconds{0})).granted); // a burst of one
    const auto refused = co_await gcra(*c, slow, slow, microseconds{0});
    EXPECT_FALSE(refused.granted);
    EXPECT_GT(refused.wait_us, 0);
    if (refused.wait_us <= 0)
        co_return;
    // Once the reported wait has passed, the same caller is granted at once.
    co_await sleep_for(microseconds(refused.wait_us));
    const auto later = co_await gcra(*c, slow, slow, microseconds{0});
    EXPECT_TRUE(later.granted);
    EXPECT_EQ(later.wait_us, 0);
}

TEST(RedisGcraScript, GrantsOnceTheReportedWaitHasPassed) {
    redis_server server;
    redis_fixture f;
    f.run(script_after_the_wait(f, server));
}

// ---- the block learnt from a publication ----

net::awaitable<void> block_from_publication(redis_fixture& f, redis_server& server, metrics& m) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    auto strand = net::make_strand(f.ioc.get_executor());
    auto budget = std::make_shared<shared_upstream_budget>(strand, c, "test:", 10, zoom_clock{}, f.log, m);
    EXPECT_EQ(co_await budget->blocked_for(steady::now()), std::nullopt);
    budget->on_block_published("not a number");
    budget->on_block_published("-5");
    budget->on_block_published("2500");
    // The publication reaches the block through the strand; Redis holds no block key, so only the
    // publication can block.
    std::optional<std::chrono::seconds> left;
    for (int i = 0; i < 100 && !left; ++i) {
        left = co_await budget->blocked_for(steady::now());
        if (!left)
            co_await sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(left, std::chrono::seconds(3));
}

TEST(RedisSharedBlock, APublishedBlockIsLearnt) {
    redis_server server;
    redis_fixture f;
    metrics m;
    m.enable_redis();
    f.run(block_from_publication(f, server, m));
}

// ---- three replicas ----

// How the replicas share the access token: its lock's lease, how long a replica that starts waits
// for Redis, and whether they hear each other's announcements (a subscriber each).
struct replica_sharing {
    std::chrono::milliseconds lock_lease{2000};
    std::chrono::milliseconds wait_for_redis{5000};
    bool subscribed = true;
};

struct replicas {
    static constexpr std::size_t n = 3;

    explicit replicas(double requests_per_second = 100000, std::chrono::milliseconds request_timeout = 5000ms,
                      replica_sharing how = {}) {
        sealer = std::make_shared<redis::sealer>(secret(std::string(32, 'k')), secret());
        for (std::size_t i = 0; i < n; ++i) {
            zoom_config cfg;
            cfg.api_base_url = sim.base_url();
            cfg.oauth_token_url = sim.oauth_url();
            cfg.account_id = sim.settings().account_id;
            cfg.client_id = sim.settings().client_id;
            cfg.client_secret = sim.settings().client_secret;
            cfg.ca_file = sim.ca_file();
            cfg.connect_timeout = 2000ms;
            cfg.request_timeout = request_timeout;
            cfg.max_connections = 16;
            cfg.max_retries = 2;
            cfg.requests_per_second = requests_per_second;
            auto& mi = *m.emplace_back(std::make_unique<metrics>());
            mi.enable_redis();
            auto o = server.client_options();
            o.connect_timeout = 1000ms;
            o.command_timeout = 1000ms;
            auto c = redis::connection::create(f.ioc.get_executor(), o, f.log, &mi);
            connections.push_back(c);
            zoom_shared shared{c, sealer, "test-broker:", how.wait_for_redis, how.lock_lease};
            auto& client = *clients.emplace_back(
                std::make_unique<zoom_client>(f.ioc.get_executor(), cfg, f.log, mi, shared));
            if (!how.subscribed)
                continue;
            auto s = redis::subscriber::create(
                f.ioc.get_executor(), o, f.log, client.redis_channels(),
                [&client](std::string_view ch, std::string_view msg) { client.on_redis_message(ch, msg); },
                [&client] { client.on_redis_subscribed(); });
            subscribers.push_back(s);
        }
    }

    // Starts Redis connections and clients as the broker does: the connections first, the clients
    // at once (they wait for Redis to come up before fetching an access token).
    void start() {
        for (std::size_t i = 0; i < n; ++i) {
            auto s = i < subscribers.size() ? subscribers[i] : nullptr;
            connections[i]->start();
            if (s)
                s->start();
            clients[i]->start();
            f.stops.push_back([c = clients[i].get(), r = connections[i], s] {
                c->stop();
                if (s)
                    s->stop();
                r->stop();
            });
        }
    }

    bool all_ready() const {
        return std::all_of(clients.begin(), clients.end(), [](const auto& c) { return c->ready().ready; });
    }

    zoom_sim::simulator sim;
    redis_server server;
    std::vector<std::unique_ptr<metrics>> m; // outlives the io_context's coroutines
    redis_fixture f;
    std::shared_ptr<redis::sealer> sealer;
    std::vector<std::shared_ptr<redis::connection>> connections;
    std::vector<std::shared_ptr<redis::subscriber>> subscribers;
    std::vector<std::unique_ptr<zoom_client>> clients;
};

token_query zak_of(std::string user) {
    token_query q;
    q.user_id = std::move(user);
    q.type = token_type::zak;
    return q;
}

errc error_of(const result<secret>& r) {
    return r ? errc::internal_error : r.error().code;
}

net::awaitable<void> one_oauth_call(replicas& r) {
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); })) << r.f.logs();
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
    for (std::size_t i = 0; i < replicas::n; ++i) {
        auto t = co_await r.clients[i]->fetch_token(zak_of("user-" + std::to_string(i)));
        EXPECT_TRUE(t.has_value()) << i << ": " << (t ? "" : t.error().message);
    }
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
    EXPECT_EQ(r.f.logs().find(r.sim.issued_access_tokens().at(0)), std::string::npos); // never logged
}

TEST(RedisSharedBudget, ThreeReplicasStartWithOneOAuthCall) {
    replicas r;
    r.start();
    r.f.run(one_oauth_call(r));
}

net::awaitable<void> fetch_into(zoom_client& c, std::string user, std::vector<result<secret>>& out,
                                std::size_t i, std::size_t& pending) {
    out[i] = co_await c.fetch_token(zak_of(std::move(user)));
    --pending;
}

net::awaitable<void> the_accounts_rate(replicas& r) {
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); })) << r.f.logs();
    r.sim.reset_counters();
    constexpr std::size_t per_replica = 12;
    std::vector<result<secret>> out(replicas::n * per_replica);
    std::size_t pending = out.size();
    for (std::size_t i = 0; i < out.size(); ++i)
        net::co_spawn(
            r.f.ioc,
            fetch_into(*r.clients[i % replicas::n], "rate-user-" + std::to_string(i), out, i, pending),
            fail_on_exception);
    EXPECT_TRUE(co_await eventually([&] { return pending == 0; }, 60s));
    for (std::size_t i = 0; i < out.size(); ++i)
        EXPECT_TRUE(out[i].has_value()) << i << ": " << (out[i] ? "" : out[i].error().message);

    // GCRA with 4 a second and a burst of 4: in any stretch of calls, at most 4 + 4 * its length
    // (one more for the jitter of delivery), whatever replica sent them.
    auto calls = r.sim.token_call_log();
    EXPECT_EQ(calls.size(), out.size());
    if (calls.empty())
        co_return;
    std::vector<steady::time_point> at;
    for (const auto& c : calls)
        at.push_back(c.at);
    std::sort(at.begin(), at.end());
    double worst = 0;
    for (std::size_t i = 0; i < at.size(); ++i)
        for (std::size_t j = i; j < at.size(); ++j) {
            const double seconds = std::chrono::duration<double>(at[j] - at[i]).count();
            const double excess = static_cast<double>(j - i + 1) - (4 + 4 * seconds);
            worst = std::max(worst, excess);
        }
    EXPECT_LE(worst, 1.0) << "the simulator saw more calls than the account's rate allows";
    const double span = std::chrono::duration<double>(at.back() - at.front()).count();
    std::cout << "36 calls in " << span << " s: " << (span > 0 ? 35 / span : 0)
              << " calls/s after the burst\n";
    for (const auto& mi : r.m)
        EXPECT_NE(mi->serialize().find("token_broker_zoom_budget_shared 1"), std::string::npos);
}

TEST(RedisSharedBudget, ThirtySixUsersOnThreeReplicasKeepTheAccountsRate) {
    replicas r(4, 30000ms);
    r.start();
    r.f.run(the_accounts_rate(r));
}

net::awaitable<void> one_429_blocks_all(replicas& r) {
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); })) << r.f.logs();
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::rate_limited;
    f.retry_after = "3";
    r.sim.inject(f, "alice");
    const auto before = steady::now();
    auto a = co_await r.clients[0]->fetch_token(zak_of("alice"));
    EXPECT_EQ(error_of(a), errc::rate_limited);
    // Replica B, for a user nobody asked for: 429 with the time left, without calling Zoom.
    auto b = co_await r.clients[1]->fetch_token(zak_of("bob"));
    EXPECT_EQ(error_of(b), errc::rate_limited);
    if (!b) {
        EXPECT_TRUE(b.error().retry_after.has_value());
        EXPECT_GE(b.error().retry_after.value_or(0s), 1s);
        EXPECT_LE(b.error().retry_after.value_or(0s), 3s);
    }
    EXPECT_EQ(r.sim.token_calls("bob"), 0u);
    // B keeps answering 429 until the block has passed, then asks Zoom.
    bool served = false;
    while (!served && steady::now() - before < 20s) {
        auto again = co_await r.clients[1]->fetch_token(zak_of("bob"));
        served = again.has_value();
        if (!served) {
            EXPECT_EQ(error_of(again), errc::rate_limited);
            co_await sleep_for(100ms);
        }
    }
    EXPECT_TRUE(served);
    auto calls = r.sim.token_call_log();
    auto first_bob = std::find_if(calls.begin(), calls.end(), [](const auto& c) { return c.user == "bob"; });
    EXPECT_NE(first_bob, calls.end());
    if (first_bob != calls.end()) {
        EXPECT_GE(first_bob->at - before, 3s)
            << "Zoom was called for bob before the 429's Retry-After passed";
    }
}

TEST(RedisSharedBudget, A429AtOneReplicaBlocksTheOthers) {
    replicas r;
    r.start();
    r.f.run(one_429_blocks_all(r));
}

net::awaitable<void> one_new_token_after_revocation(replicas& r) {
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); })) << r.f.logs();
    for (std::size_t i = 0; i < replicas::n; ++i)
        EXPECT_TRUE((co_await r.clients[i]->fetch_token(zak_of("before-" + std::to_string(i)))).has_value());
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
    r.sim.revoke_access_tokens();
    for (std::size_t i = 0; i < replicas::n; ++i) {
        auto t = co_await r.clients[i]->fetch_token(zak_of("after-" + std::to_string(i)));
        EXPECT_TRUE(t.has_value()) << i << ": " << (t ? "" : t.error().message);
    }
    EXPECT_EQ(r.sim.oauth_calls(), 2u) << "a revocation is to cost one OAuth call for all replicas";
}

TEST(RedisSharedBudget, ARevokedAccessTokenIsReplacedOnceForAll) {
    replicas r;
    r.start();
    r.f.run(one_new_token_after_revocation(r));
}

net::awaitable<void> redis_stopped(replicas& r) {
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); })) << r.f.logs();
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
    r.server.stop();
    EXPECT_TRUE(co_await eventually([&] {
        return std::none_of(r.connections.begin(), r.connections.end(),
                            [](const auto& c) { return c->up(); });
    }));
    r.sim.revoke_access_tokens();
    for (std::size_t i = 0; i < replicas::n; ++i) {
        auto t = co_await r.clients[i]->fetch_token(zak_of("alone-" + std::to_string(i)));
        EXPECT_TRUE(t.has_value()) << i << ": " << (t ? "" : t.error().message);
    }
    EXPECT_EQ(r.sim.oauth_calls(), 1u + replicas::n) << "each replica fetches its own token without Redis";
    for (const auto& mi : r.m)
        EXPECT_NE(mi->serialize().find("token_broker_zoom_budget_shared 0"), std::string::npos);
    EXPECT_NE(r.f.logs().find("this replica limits itself"), std::string::npos);

    // Redis is back: the shared budget is in force again.
    r.server.restart();
    EXPECT_TRUE(co_await eventually(
        [&] {
            return std::all_of(r.connections.begin(), r.connections.end(),
                               [](const auto& c) { return c->up(); });
        },
        30s));
    for (std::size_t i = 0; i < replicas::n; ++i)
        EXPECT_TRUE((co_await r.clients[i]->fetch_token(zak_of("back-" + std::to_string(i)))).has_value());
    for (const auto& mi : r.m)
        EXPECT_NE(mi->serialize().find("token_broker_zoom_budget_shared 1"), std::string::npos);
}

TEST(RedisSharedBudget, WithRedisStoppedEachReplicaFetchesItsOwnTokenAndKeepsAnswering) {
    replicas r;
    r.start();
    r.f.run(redis_stopped(r));
}

// ---- the access token's announcements ----

// A lease far longer than the tests below wait for the replicas (10 s): a replica that waited for
// another's OAuth fetch and got its token within that bound was woken by an announcement, not by its
// look after one lease. (Longer would slow the tests down: the lock's renewal timer, a third of the
// lease, keeps the io_context busy after the test.)
constexpr std::chrono::milliseconds long_lease = 30s;
constexpr std::string_view waiting_line = "another replica holds the Zoom access-token lock";

std::size_t times_in(const std::string& text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
        ++n;
    return n;
}

zoom_sim::fault slow_oauth(std::chrono::milliseconds delay) {
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::delay;
    f.delay = delay;
    return f;
}

net::awaitable<void> woken_by_the_stored_token(replicas& r) {
    // The holder's OAuth call takes 3 s; the others wait for it, and their next look would be one
    // lease (30 s) later: only the announcement of the stored token can bring them in time.
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); }, 10s)) << r.f.logs();
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
    const auto logs = r.f.logs();
    EXPECT_NE(logs.find(waiting_line), std::string::npos) << "no replica waited for the lock's holder";
    EXPECT_EQ(times_in(logs, "Zoom access token obtained from Redis"), replicas::n - 1) << logs;
}

TEST(RedisSharedAccessToken, WaitersAreWokenByTheAnnouncementOfTheStoredToken) {
    replicas r(100000, 5000ms, {long_lease, 5000ms, true});
    r.sim.inject_oauth(slow_oauth(3000ms));
    r.start();
    r.f.run(woken_by_the_stored_token(r));
}

net::awaitable<void> lost_announcement(replicas& r) {
    // Nobody hears the announcements: the waiters look again after one lease (1 s), long before
    // their bound of zoom.request_timeout_ms (30 s) plus one lease, after which they would give up
    // and try again only after the OAuth backoff.
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); }, 20s)) << r.f.logs();
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
    const auto logs = r.f.logs();
    EXPECT_NE(logs.find(waiting_line), std::string::npos) << "no replica waited for the lock's holder";
    EXPECT_EQ(times_in(logs, "Zoom access token obtained from Redis"), replicas::n - 1) << logs;
    EXPECT_EQ(logs.find("stored no token"), std::string::npos) << logs;
}

TEST(RedisSharedAccessToken, ALostAnnouncementCostsTheWaitersOneLeaseAtMost) {
    replicas r(100000, 30000ms, {1000ms, 5000ms, false});
    r.sim.inject_oauth(slow_oauth(2000ms));
    r.start();
    r.f.run(lost_announcement(r));
}

bool exposes(const metrics& m, std::string_view line) {
    return m.serialize().find(line) != std::string::npos;
}

net::awaitable<void> released_without_a_token(replicas& r) {
    // The holder's OAuth call hangs until zoom.request_timeout_ms (2 s) and fails; its release is
    // announced and a waiter takes the lock at once and fetches, before the holder's own retry (1 s
    // after its failure) and long before the waiters' next look (one lease, 30 s).
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); }, 10s)) << r.f.logs();
    EXPECT_EQ(r.sim.oauth_calls(), 2u);
    std::optional<std::size_t> failed, fetched;
    for (std::size_t i = 0; i < replicas::n; ++i) {
        if (exposes(*r.m[i], "token_broker_oauth_refreshes_total{result=\"failed\"} 1"))
            failed = i;
        if (exposes(*r.m[i], "token_broker_oauth_refreshes_total{result=\"ok\"} 1"))
            fetched = i;
    }
    EXPECT_TRUE(failed.has_value()) << r.f.logs();
    EXPECT_TRUE(fetched.has_value()) << r.f.logs();
    EXPECT_NE(failed, fetched) << "the failed holder fetched again: nobody took the released lock";
}

TEST(RedisSharedAccessToken, ALockReleasedWithoutATokenWakesAWaiterToTakeIt) {
    replicas r(100000, 2000ms, {long_lease, 5000ms, true});
    zoom_sim::fault hang;
    hang.what = zoom_sim::fault::kind::hang;
    r.sim.inject_oauth(hang);
    r.start();
    r.f.run(released_without_a_token(r));
}

net::awaitable<void> redis_comes_up(replicas& r) {
    // Redis is not there: the replicas wait for it (up to 30 s) instead of fetching their own.
    co_await sleep_for(1000ms);
    EXPECT_EQ(r.sim.oauth_calls(), 0u);
    EXPECT_FALSE(r.all_ready());
    r.server.restart();
    // Its connection coming up wakes them: one OAuth call, shared, long before the 30 s.
    EXPECT_TRUE(co_await eventually([&] { return r.all_ready(); }, 20s)) << r.f.logs();
    EXPECT_EQ(r.sim.oauth_calls(), 1u);
}

TEST(RedisSharedAccessToken, RedisComingUpWakesTheFirstFetch) {
    replicas r(100000, 5000ms, {2000ms, 30000ms, true});
    r.server.stop();
    r.start();
    r.f.run(redis_comes_up(r));
}

} // namespace
} // namespace token_broker::test
