// redis::cluster against a real Redis Cluster (tests/cluster_setup.hpp: three redis-server masters
// made one cluster with redis-cli): commands reach the master of their key's slot, scripts are loaded
// on each master, -MOVED, -ASK and -TRYAGAIN of a slot moved by hand are followed without an error
// reaching the caller, and a master that dies takes the cluster down (then up again).
#include "cluster_setup.hpp"
#include "redis/cluster.hpp"
#include "redis/script.hpp"
#include "redis_test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <thread>

namespace token_broker::test {
namespace {

class RedisClusterClient : public ::testing::Test, protected redis_fixture {
protected:
    redis::options cluster_options(std::vector<std::size_t> seeds = {0, 1, 2}) const {
        redis::options o;
        o.connect_to = redis::target::cluster;
        for (auto i : seeds)
            o.cluster_seeds.push_back({"127.0.0.1", cluster.nodes.at(i)->port()});
        o.password = secret(cluster_setup::password);
        o.command_timeout = 2000ms;
        return o;
    }

    std::shared_ptr<redis::cluster> start(redis::options o) {
        auto c = redis::cluster::create(ioc.get_executor(), std::move(o), log);
        c->on_state([this](bool up) { (up ? ups : downs) += 1; });
        c->start();
        stops.push_back([c] { c->stop(); });
        return c;
    }

    // The index of the master that holds `key`, as the servers see it.
    std::size_t owner(const std::string& key) const {
        auto o = cluster.owner_of(cluster.slot_of(key));
        if (!o)
            throw std::runtime_error("no master serves " + key);
        return *o;
    }

    cluster_setup cluster;
    std::atomic<int> ups{0}, downs{0};
};

TEST_F(RedisClusterClient, EachCommandReachesTheMasterOfItsKeysSlot) {
    auto c = start(cluster_options({1})); // one seed is enough: the map names the others
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        EXPECT_EQ(ups.load(), 1);
        for (int i = 0; i < 60; ++i) {
            const auto key = "key-" + std::to_string(i);
            auto set = co_await c->exec(cmd("SET", key, "v" + std::to_string(i)));
            EXPECT_TRUE(set && set->is_status("OK")) << key;
        }
        std::set<std::size_t> used;
        for (int i = 0; i < 60; ++i) {
            const auto key = "key-" + std::to_string(i);
            const auto at = owner(key);
            used.insert(at);
            // On the master of its slot itself, and through the client.
            EXPECT_EQ(cluster.nodes[at]->command({"GET", key}).text, "v" + std::to_string(i)) << key;
            auto got = co_await c->exec(cmd("GET", key));
            EXPECT_TRUE(got && got->text == "v" + std::to_string(i)) << key;
        }
        EXPECT_EQ(used.size(), 3u) << "sixty keys all on fewer than three masters";
        // A command without a key goes to any master.
        auto pong = co_await c->exec(cmd("PING"));
        EXPECT_TRUE(pong && pong->is_status("PONG"));
    }());
    EXPECT_EQ(logs().find("MOVED"), std::string::npos);
}

TEST_F(RedisClusterClient, ScriptsAreLoadedOnEachMasterTheyRunOn) {
    auto c = start(cluster_options());
    const redis::script both("redis.call('SET', KEYS[1], ARGV[1]) redis.call('SET', KEYS[2], ARGV[1]) "
                             "return redis.call('GET', KEYS[2])");
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        std::set<std::size_t> masters;
        for (int i = 0; i < 30; ++i) {
            // Two keys of one hash tag: one slot, so one master runs the script.
            const auto tag = "{user-" + std::to_string(i) + "}";
            auto r = co_await both.run(*c, cmd(tag + ":a", tag + ":b"), cmd("x" + std::to_string(i)));
            EXPECT_TRUE(r && r->text == "x" + std::to_string(i))
                << tag << ": " << (r ? r->text : r.error().message);
            masters.insert(owner(tag + ":a"));
            EXPECT_EQ(cluster.nodes[owner(tag + ":b")]->command({"GET", tag + ":b"}).text,
                      "x" + std::to_string(i));
        }
        EXPECT_EQ(masters.size(), 3u);
        // Two keys of two slots: the node refuses, and the refusal is the answer (no retry, no hang).
        auto cross = co_await both.run(*c, cmd("{a}x", "{b}x"), cmd("y"));
        EXPECT_TRUE(cross && cross->is_error() && cross->text.starts_with("CROSSSLOT"))
            << (cross ? cross->text : cross.error().message);
    }());
    for (const auto& n : cluster.nodes)
        EXPECT_EQ(n->command({"SCRIPT", "EXISTS", both.sha1()}).elements.at(0).integer, 1)
            << "the script was not loaded on node " << n->port();
}

TEST_F(RedisClusterClient, ASlotMovedToAnotherMasterIsFollowedAndTheMapRefreshed) {
    auto c = start(cluster_options());
    const std::string key = "{moving}:k";
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        auto set = co_await c->exec(cmd("SET", key, "before"));
        EXPECT_TRUE(set && set->is_status("OK"));
        const auto from = owner(key);
        const auto to = (from + 1) % 3;
        cluster_setup::slot_migration move(cluster, cluster.slot_of(key), from, to);
        move.begin();
        move.end();
        // The client's map still names the old master, which answers -MOVED.
        auto got = co_await c->exec(cmd("GET", key));
        EXPECT_TRUE(got && got->text == "before") << (got ? got->text : got.error().message);
        auto again = co_await c->exec(cmd("SET", key, "after"));
        EXPECT_TRUE(again && again->is_status("OK"));
        EXPECT_EQ(cluster.nodes[to]->command({"GET", key}).text, "after");
        // The map is asked for again after a -MOVED: the old master is not asked a second time.
        const auto moved_before = cluster.nodes[from]->command({"INFO", "errorstats"}).text;
        co_await sleep_for(1s);
        for (int i = 0; i < 5; ++i) {
            auto r = co_await c->exec(cmd("GET", key));
            EXPECT_TRUE(r && r->text == "after");
        }
        EXPECT_EQ(cluster.nodes[from]->command({"INFO", "errorstats"}).text, moved_before)
            << "the old master still answers -MOVED for the slot after the map was refreshed";
    }());
}

TEST_F(RedisClusterClient, DuringAMigrationAskIsFollowedOnceWithoutChangingTheMap) {
    auto c = start(cluster_options());
    const std::string moved = "{half}:moved", stays = "{half}:stays";
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        // A named list: GCC 12 mishandles a braced one that lives across a co_await.
        const std::vector<std::string> both_keys{moved, stays};
        for (const auto& k : both_keys) {
            auto r = co_await c->exec(cmd("SET", k, k));
            EXPECT_TRUE(r && r->is_status("OK"));
        }
        const auto from = owner(moved);
        const auto to = (from + 1) % 3;
        cluster_setup::slot_migration move(cluster, cluster.slot_of(moved), from, to);
        move.begin();
        // One key of the slot migrated by hand: the old master answers -ASK for it.
        const auto r =
            cluster.nodes[from]->command({"MIGRATE", "127.0.0.1", std::to_string(cluster.nodes[to]->port()),
                                          moved, "0", "5000", "AUTH", cluster_setup::password});
        EXPECT_TRUE(r.is_status("OK")) << r.text;
        auto got = co_await c->exec(cmd("GET", moved));
        EXPECT_TRUE(got && got->text == moved) << (got ? got->text : got.error().message);
        EXPECT_NE(cluster.nodes[from]->command({"INFO", "errorstats"}).text.find("errorstat_ASK"),
                  std::string::npos)
            << "the old master never answered -ASK: the test did not test it";
        auto other = co_await c->exec(cmd("GET", stays));
        EXPECT_TRUE(other && other->text == stays) << (other ? other->text : other.error().message);
        // A new key of the slot goes where -ASK says (the importing master) and is found there.
        auto created = co_await c->exec(cmd("SET", "{half}:new", "n"));
        EXPECT_TRUE(created && created->is_status("OK"))
            << (created ? created->text : created.error().message);
        move.end();
        EXPECT_EQ(cluster.nodes[to]->command({"GET", "{half}:new"}).text, "n");
        auto after = co_await c->exec(cmd("GET", "{half}:new"));
        EXPECT_TRUE(after && after->text == "n");
    }());
}

TEST_F(RedisClusterClient, ACommandOnKeysSplitByAMigrationIsTriedAgainUntilTheSlotHasMoved) {
    auto c = start(cluster_options());
    const std::string a = "{split}:a", b = "{split}:b";
    std::thread finisher;
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        const std::vector<std::string> both_keys{a, b};
        for (const auto& k : both_keys) {
            auto r = co_await c->exec(cmd("SET", k, k));
            EXPECT_TRUE(r && r->is_status("OK"));
        }
        const auto from = owner(a);
        const auto to = (from + 1) % 3;
        auto move = std::make_shared<cluster_setup::slot_migration>(cluster, cluster.slot_of(a), from, to);
        move->begin();
        const auto r =
            cluster.nodes[from]->command({"MIGRATE", "127.0.0.1", std::to_string(cluster.nodes[to]->port()),
                                          a, "0", "5000", "AUTH", cluster_setup::password});
        EXPECT_TRUE(r.is_status("OK")) << r.text;
        // Now MGET of both answers -TRYAGAIN (one key here, one there) until the slot has moved.
        const auto direct = cluster.nodes[from]->command({"MGET", a, b});
        EXPECT_TRUE(direct.is_error() && direct.text.starts_with("TRYAGAIN")) << direct.text;
        finisher = std::thread([move] {
            std::this_thread::sleep_for(200ms);
            move->end();
        });
        auto both = co_await c->exec(cmd("MGET", a, b));
        EXPECT_TRUE(both && both->elements.size() == 2 && both->elements[0].text == a &&
                    both->elements[1].text == b)
            << (both ? both->text : both.error().message);
    }());
    if (finisher.joinable())
        finisher.join();
}

TEST_F(RedisClusterClient, NoReplicasMeansAForgetIsConfirmedAtOnce) {
    auto c = start(cluster_options());
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        // WAIT 1 would have answered 0 (no replica), an error.
        EXPECT_TRUE(co_await c->confirm_replicated("{user}:gen"));
    }());
}

// Three masters each with a replica: a master SIGKILLed is replaced by its replica (the cluster's own
// failover, after the 2 s node timeout), and the client finds the new master in the map without being
// told; a forget's WAIT is asked where there is a replica to answer it.
TEST(RedisClusterFailover, AMasterLostIsReplacedByItsReplicaAndTheClientFollows) {
    cluster_setup cluster(3, 1);
    redis_fixture f;
    redis::options o;
    o.connect_to = redis::target::cluster;
    o.cluster_seeds.push_back({"127.0.0.1", cluster.nodes.at(0)->port()});
    o.password = secret(cluster_setup::password);
    o.command_timeout = 2000ms;
    auto c = redis::cluster::create(f.ioc.get_executor(), o, f.log);
    std::atomic<int> downs{0};
    c->on_state([&downs](bool up) { downs += up ? 0 : 1; });
    c->start();
    f.stops.push_back([c] { c->stop(); });
    const std::string key = "{failover}:k";
    f.run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        auto set = co_await c->exec(cmd("SET", key, "kept"));
        EXPECT_TRUE(set && set->is_status("OK"));
        // A replica has it: WAIT 1 answered 1.
        auto replicated = co_await c->confirm_replicated(key);
        EXPECT_TRUE(replicated) << (replicated ? "" : replicated.error().message);
        const auto owner = cluster.owner_of(cluster.slot_of(key));
        EXPECT_TRUE(owner && *owner < 3);
        if (!owner)
            co_return;
        const auto killed = std::chrono::steady_clock::now();
        cluster.nodes[*owner]->kill();
        EXPECT_TRUE(co_await eventually([&] { return !c->up(); }, 10s));
        const auto noticed = std::chrono::steady_clock::now();
        EXPECT_TRUE(co_await eventually([&] { return c->up(); }, 30s))
            << "the replica's promotion was not followed: "
            << cluster.nodes[(*owner + 1) % 3]->command({"CLUSTER", "NODES"}).text;
        const auto back = std::chrono::steady_clock::now();
        const auto ms = [](auto d) {
            return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        };
        std::cout << "[ failover ] down noticed after " << ms(noticed - killed)
                  << " ms, up on the new master after " << ms(back - killed) << " ms\n";
        EXPECT_EQ(downs.load(), 1);
        const auto now_owner = cluster.owner_of(cluster.slot_of(key), (*owner + 1) % 3);
        EXPECT_TRUE(now_owner && *now_owner >= 3) << "a replica should serve the slot now";
        auto got = co_await c->exec(cmd("GET", key));
        EXPECT_TRUE(got && got->text == "kept")
            << (got ? "type " + std::to_string(static_cast<int>(got->type)) + " " + got->text
                    : got.error().message)
            << " direct: " << (now_owner ? cluster.nodes[*now_owner]->command({"GET", key}).text : "-")
            << " roles: " << [&] {
                   std::string out;
                   for (auto& n : cluster.nodes)
                       if (n->running())
                           out += std::to_string(n->port()) + "=" + n->command({"ROLE"}).elements.at(0).text +
                                  "/" + std::to_string(n->command({"DBSIZE"}).integer) + " ";
                   return out;
               }();
        // The new master has no replica left: nothing to wait for.
        EXPECT_TRUE(co_await c->confirm_replicated(key));
    }());
}

TEST_F(RedisClusterClient, AMasterKilledTakesTheClusterDownAndItsReturnBringsItBack) {
    auto c = start(cluster_options());
    run([&]() -> net::awaitable<void> {
        EXPECT_TRUE(co_await c->wait_up(std::chrono::steady_clock::now() + 10s));
        cluster.nodes[2]->kill();
        EXPECT_TRUE(co_await eventually([&] { return !c->up(); }, 10s));
        EXPECT_EQ(downs.load(), 1);
        // Down as a whole: commands fail at once, whichever master they are for.
        auto r = co_await c->exec(cmd("GET", "anything"));
        EXPECT_FALSE(r);
        cluster.nodes[2]->restart();
        EXPECT_TRUE(co_await eventually([&] { return c->up(); }, 20s));
        EXPECT_EQ(ups.load(), 2);
        EXPECT_TRUE(co_await eventually([&] { return cluster.ok(); }, 20s));
        auto after = co_await c->exec(cmd("SET", "anything", "x"));
        EXPECT_TRUE(after && after->is_status("OK")) << (after ? after->text : after.error().message);
    }());
}

} // namespace
} // namespace token_broker::test
