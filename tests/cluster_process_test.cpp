// Replicas on a Redis Cluster (CONTRACT.md section 7, "Redis that survives a node"): token-broker
// processes with a redis+cluster:// URL in front of one Zoom simulator, and three real redis-server
// masters made one cluster (tests/cluster_setup.hpp). What the replicas on one redis-server promise
// (the bodies of tests/replica_scenarios.hpp), then slots moved from one master to another under
// traffic (-ASK while they move, -MOVED after), and a master killed.
//
// No key name is written here: the key names are the broker's to choose (a hash tag per user, one
// for the shared Zoom keys). The tests find them: the keys the replicas made before any user was
// asked for are the shared ones (the access token, the replicas' registrations), and the keys that
// appear when one user is fetched are that user's.
#include "broker_process.hpp"
#include "cluster_setup.hpp"
#include "replica_scenarios.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::answer;
using testing::broker_process;
using testing::delete_token;
using testing::eventually;
using testing::get_token;
using testing::readyz;

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines)
        out += l + "\n";
    return out;
}

template <class T>
std::string listed(const std::set<T>& items) {
    std::ostringstream out;
    for (const auto& i : items)
        out << i << " ";
    return out.str();
}

// Traffic on every replica from a few threads until stopped, every answer that is not what it must be
// kept: GETs of users fetched before (hits), one request in four for a user nobody asked for yet (a
// miss: a Zoom call, the budget, a new user's keys); and, with a `churned` user, a thread that DELETEs
// that user on each replica in turn (204) and then GETs it on each (200: one fetches, the others read
// it from Redis), so that the user's keys are written, read and removed all the time.
class cluster_traffic {
public:
    cluster_traffic(std::vector<std::uint16_t> ports, std::vector<std::string> users,
                    std::string churned = "")
        : ports_(std::move(ports)), users_(std::move(users)), churned_(std::move(churned)) {
        for (int t = 0; t < 3; ++t)
            threads_.emplace_back([this, t] {
                for (std::size_t i = 0; !stop_; ++i) {
                    const auto port = ports_[(i + static_cast<std::size_t>(t)) % ports_.size()];
                    const auto user =
                        i % 4 == 3 ? "miss-" + std::to_string(t) + "-" + std::to_string(i) + "@example.com"
                                   : users_[i % users_.size()];
                    check_get(port, user);
                    std::this_thread::sleep_for(5ms);
                }
            });
        if (!churned_.empty())
            threads_.emplace_back([this] {
                for (std::size_t k = 0; !stop_; ++k) {
                    const auto port = ports_[k % ports_.size()];
                    int status = 0;
                    try {
                        status = delete_token(port, churned_);
                    } catch (const std::exception& e) {
                        fail("DELETE on " + std::to_string(port) + ": " + e.what());
                    }
                    if (status != 204)
                        fail("DELETE on " + std::to_string(port) + ": " + std::to_string(status));
                    std::size_t cached = 0;
                    for (auto p : ports_)
                        cached += check_get(p, churned_).cached() ? 1 : 0;
                    std::lock_guard lock(m_);
                    ++cycles_;
                    // Sequential GETs after a forget: the first fetches, the others read its result.
                    if (cached + 1 < ports_.size())
                        ++unshared_cycles_;
                }
            });
    }
    ~cluster_traffic() { stop(); }
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
    std::size_t cycles() {
        std::lock_guard lock(m_);
        return cycles_;
    }
    std::size_t unshared_cycles() {
        std::lock_guard lock(m_);
        return unshared_cycles_;
    }
    std::vector<std::string> failures() {
        std::lock_guard lock(m_);
        return failures_;
    }

private:
    answer check_get(std::uint16_t port, const std::string& user) {
        auto a = get_token(port, user);
        if (a.status != 200)
            fail("GET " + user + " on " + std::to_string(port) + ": " + std::to_string(a.status) + " " +
                 a.body);
        std::lock_guard lock(m_);
        ++answered_;
        return a;
    }
    void fail(const std::string& what) {
        std::lock_guard lock(m_);
        failures_.push_back(what);
    }

    std::vector<std::uint16_t> ports_;
    std::vector<std::string> users_;
    std::string churned_;
    std::atomic<bool> stop_{false};
    std::mutex m_;
    std::size_t answered_ = 0;
    std::size_t cycles_ = 0;
    std::size_t unshared_cycles_ = 0;
    std::vector<std::string> failures_;
    std::vector<std::thread> threads_;
};

struct ClusterReplicas : ::testing::Test {
    zoom_sim::simulator sim;
    test::cluster_setup cluster;
    std::vector<std::unique_ptr<broker_process>> brokers;
    std::vector<std::uint16_t> ports;
    int probes = 0;

    // The redis block naming the cluster (every master a seed), plus `more` keys. The command timeout
    // is generous for a loaded machine: a MIGRATE holds its node up for a moment.
    boost::json::object redis_block(const boost::json::object& more = {}) const {
        boost::json::object r{{"url", cluster.url()},
                              {"password", test::cluster_setup::password},
                              {"encryption_key", std::string(64, 'e')},
                              {"command_timeout_ms", 1000}};
        for (const auto& [k, v] : more)
            r[k] = v;
        return r;
    }

    // Starts `n` brokers naming the cluster, with `zoom` settings, and waits until each says its Redis
    // is up.
    void start_brokers(int n, const boost::json::object& zoom = {}) {
        boost::json::object extra{{"redis", redis_block()}};
        if (!zoom.empty())
            extra["zoom"] = zoom;
        testing::start_sharing_brokers(sim, n, extra, brokers, ports);
    }

    // One fetch shared: a new user fetched on the first broker is served by the others as cached.
    bool shares() {
        return testing::one_fetch_shared(ports, "probe-" + std::to_string(++probes) + "@example.com");
    }

    std::string logs() const {
        std::string out;
        for (std::size_t i = 0; i < brokers.size(); ++i)
            out += "--- broker " + std::to_string(i) + " (port " + std::to_string(ports[i]) + ")\n" +
                   brokers[i]->output();
        return out;
    }

    // The slot of `user`'s keys: the slots of the keys that appear when it is fetched on the first
    // broker, less `shared_slots` (a Zoom call may make the shared budget's keys). Fails the test
    // unless they are one slot: every key of a user under one hash tag.
    int slot_of_user(const std::string& user, const std::set<int>& shared_slots) {
        const auto before = cluster.keys();
        const auto a = get_token(ports[0], user);
        EXPECT_EQ(a.status, 200) << a.body;
        std::set<std::string> made;
        for (const auto& k : cluster.keys())
            if (!before.contains(k))
                made.insert(k);
        std::set<int> slots;
        for (auto s : cluster.slots_of(made))
            if (!shared_slots.contains(s))
                slots.insert(s);
        EXPECT_EQ(slots.size(), 1u) << user << "'s keys are in more than one slot, or in none: keys "
                                    << listed(made) << "slots " << listed(cluster.slots_of(made))
                                    << "(shared: " << listed(shared_slots) << ")";
        return slots.empty() ? -1 : *slots.begin();
    }

    // Moves each of `slots` to another master while cluster_traffic runs (steady users, misses, and
    // `churned` DELETEd and fetched again all the time): its keys one at a time, so that the nodes
    // answer -ASK (and -TRYAGAIN for a script whose keys are split) for a while, then -MOVED. Then
    // checks that no caller saw an error, and returns the traffic's figures.
    void migrate_under_traffic(const std::set<int>& slots, const std::vector<std::string>& users,
                               const std::string& churned) {
        cluster_traffic traffic(ports, users, churned);
        ASSERT_TRUE(eventually([&] { return traffic.cycles() >= 3; })) << joined(traffic.failures());
        for (auto slot : slots) {
            const auto from = cluster.owner_of(slot);
            ASSERT_TRUE(from);
            const auto to = (*from + 1) % cluster.nodes.size();
            test::cluster_setup::slot_migration m(cluster, slot, *from, to);
            const auto cycles = traffic.cycles();
            m.begin();
            // While the slot is half moved: its keys one at a time, a pause after each, and the
            // traffic given time to meet every state (a key here, a key there, all gone).
            // The whole window stays well within one command_timeout_ms (1 s here): a script whose
            // keys are not all on one side (some absent, as a lock or a revoked mark mostly is) is
            // answered -TRYAGAIN until the migration ends, and is tried again until then
            // (CONTRACT.md section 8).
            std::this_thread::sleep_for(200ms);
            std::size_t moved = 0;
            for (std::size_t n; (n = m.move_keys(1, 40ms)) > 0;)
                moved += n;
            m.end();
            EXPECT_TRUE(eventually([&] { return traffic.cycles() >= cycles + 3; }))
                << "the churn made no progress after slot " << slot << " migrated";
            std::cout << "[ migrated ] slot " << slot << " from node " << *from << " to node " << to << ", "
                      << moved << " keys moved one at a time\n";
            EXPECT_EQ(cluster.owner_of(slot), to);
        }
        // And on under -MOVED, until the replicas have met it.
        const auto cycles = traffic.cycles();
        EXPECT_TRUE(eventually([&] { return traffic.cycles() >= cycles + 5; }));
        std::this_thread::sleep_for(500ms);
        traffic.stop();
        std::cout << "[ traffic ] " << traffic.answered() << " answers, " << traffic.failures().size()
                  << " errors; " << traffic.cycles() << " DELETE-and-GET cycles of " << churned << ", "
                  << sim.token_calls(churned) << " Zoom calls for it, " << traffic.unshared_cycles()
                  << " cycles where a replica did not read the token from Redis\n";
        EXPECT_EQ(traffic.failures(), std::vector<std::string>{}) << "a caller got an error\n" << logs();
        EXPECT_GT(traffic.answered(), 50u);
        for (const auto& u : users)
            EXPECT_EQ(sim.token_calls(u), 1u) << u << " was fetched again";
    }

    // After the migration: a DELETE of `user` on one replica, then nine concurrent GETs on the three,
    // make one Zoom call and one token, and the keys it leaves are in `slot` on the master `slot`
    // went to.
    void still_one_broker(const std::string& user, int slot) {
        std::this_thread::sleep_for(1100ms); // a token fetched from now on differs from the last
        const auto before = get_token(ports[1], user);
        ASSERT_EQ(before.status, 200) << before.body;
        ASSERT_EQ(delete_token(ports[2], user), 204);
        const auto calls = sim.token_calls(user);
        std::set<std::string> tokens;
        for (const auto& a : testing::concurrently(ports, user, 9)) {
            ASSERT_EQ(a.status, 200) << a.body;
            tokens.insert(a.token());
        }
        EXPECT_EQ(tokens.size(), 1u);
        EXPECT_FALSE(tokens.contains(before.token())) << "the forgotten token came back";
        EXPECT_EQ(sim.token_calls(user), calls + 1) << "the replicas no longer share " << user;
        const auto owner = cluster.owner_of(slot);
        ASSERT_TRUE(owner);
        EXPECT_GT(
            cluster.nodes[*owner]->command({"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)}).integer, 0)
            << "no key of " << user << " on the master that now serves its slot";
        EXPECT_TRUE(shares());
    }
};

TEST_F(ClusterReplicas, ThreeProcessesMakeOneZoomCallForNinetyConcurrentRequestsAndShareWhatTheyFetch) {
    start_brokers(3);
    testing::replicas_act_as_one_broker(sim, ports);
}

// Nothing any master holds names a user or carries a secret in clear (a hash tag included).
TEST_F(ClusterReplicas, WhatTheProcessesLeaveInTheClusterHoldsNoUserIdTokenOrSecret) {
    start_brokers(2);
    testing::nothing_in_clear(
        sim, ports,
        [&] {
            std::vector<std::string> all;
            for (const auto& n : cluster.nodes) {
                const auto held = n->contents();
                all.insert(all.end(), held.begin(), held.end());
            }
            return all;
        },
        test::cluster_setup::password);
}

TEST_F(ClusterReplicas, AZoom429SeenByOneReplicaStopsTheOthersCalls) {
    start_brokers(3);
    testing::a_zoom_429_stops_every_replica(sim, ports);
}

// A user's slot moved from one master to another while the replicas serve it (its keys DELETEd and
// fetched again all the time) and others: no caller error, and the replicas still share it after.
TEST_F(ClusterReplicas, AUsersSlotMigratedUnderTrafficGivesCallersNoErrorAndStaysShared) {
    start_brokers(3, {{"requests_per_second", 10000}});
    const auto shared_slots = cluster.slots_of(cluster.keys());
    ASSERT_FALSE(shared_slots.empty()) << "the replicas made no key before any user was asked for";
    const std::string churned = "moving@example.com";
    const auto slot = slot_of_user(churned, shared_slots);
    ASSERT_GE(slot, 0);
    std::vector<std::string> users;
    for (int i = 0; i < 8; ++i) {
        users.push_back("steady-" + std::to_string(i) + "@example.com");
        ASSERT_EQ(get_token(ports[0], users.back()).status, 200);
    }
    migrate_under_traffic({slot}, users, churned);
    still_one_broker(churned, slot);
    EXPECT_EQ(sim.oauth_calls(), 1u);
}

// The shared slots (the access token and the Zoom budget, the replicas' registrations: every key the
// replicas made before any user was asked for) moved while the replicas fetch, forget and call Zoom:
// no caller error; after it one access token still serves all, and the budget is still shared.
TEST_F(ClusterReplicas, TheSharedZoomSlotMigratedUnderTrafficGivesCallersNoErrorAndStaysShared) {
    start_brokers(3, {{"requests_per_second", 10000}});
    const auto shared_keys = cluster.keys();
    const auto shared_slots = cluster.slots_of(shared_keys);
    ASSERT_FALSE(shared_slots.empty()) << "the replicas made no key before any user was asked for";
    std::cout << "[ shared ] keys " << listed(shared_keys) << "in slots " << listed(shared_slots) << "\n";
    const std::string churned = "forgotten-often@example.com";
    const auto slot = slot_of_user(churned, shared_slots);
    ASSERT_GE(slot, 0);
    std::vector<std::string> users;
    for (int i = 0; i < 8; ++i) {
        users.push_back("steady-" + std::to_string(i) + "@example.com");
        ASSERT_EQ(get_token(ports[0], users.back()).status, 200);
    }
    migrate_under_traffic(shared_slots, users, churned);
    still_one_broker(churned, slot);
    for (auto s : shared_slots)
        EXPECT_GT(cluster.nodes[*cluster.owner_of(s)]
                      ->command({"CLUSTER", "COUNTKEYSINSLOT", std::to_string(s)})
                      .integer,
                  0)
            << "nothing left in shared slot " << s << " on the master it went to";
    EXPECT_EQ(sim.oauth_calls(), 1u) << "the access token was fetched again";
    testing::a_zoom_429_stops_every_replica(sim, ports);
}

// A master SIGKILLed (no replica to take over: --cluster-replicas 0) under traffic: the slots it
// served are lost, and once the other masters see it fail (the 2 s node timeout) they refuse every
// key (CLUSTERDOWN). The replicas keep answering, each alone, with no caller error; a forget
// answered before stays forgotten; once the master is back (empty) they share again.
TEST_F(ClusterReplicas, AMasterKilledLeavesEachReplicaAnsweringAloneAndTheyShareAgainWhenItIsBack) {
    start_brokers(3, {{"requests_per_second", 10000}});
    const auto shared_slots = cluster.slots_of(cluster.keys());
    ASSERT_FALSE(shared_slots.empty());
    ASSERT_TRUE(shares());
    std::vector<std::string> users;
    for (int i = 0; i < 8; ++i) {
        users.push_back("steady-" + std::to_string(i) + "@example.com");
        ASSERT_EQ(get_token(ports[0], users.back()).status, 200);
    }
    const auto forgotten = get_token(ports[0], "forgotten@example.com");
    ASSERT_EQ(forgotten.status, 200);
    for (auto port : {ports[1], ports[2]})
        ASSERT_TRUE(get_token(port, "forgotten@example.com").cached());
    std::this_thread::sleep_for(1100ms); // a token fetched from now on differs
    ASSERT_EQ(delete_token(ports[1], "forgotten@example.com"), 204);

    // The master of the shared Zoom keys.
    const auto victim = *cluster.owner_of(*shared_slots.begin());
    cluster_traffic traffic(ports, users);
    ASSERT_TRUE(eventually([&] { return traffic.answered() >= 20; }));
    cluster.nodes[victim]->kill();
    ASSERT_TRUE(eventually([&] { return cluster.failed(); }, 20s)) << "the cluster did not notice";
    auto answered = traffic.answered();
    EXPECT_TRUE(eventually([&] { return traffic.answered() >= answered + 50; }));
    // Misses on each, alone.
    for (std::size_t i = 0; i < ports.size(); ++i) {
        const auto a = get_token(ports[i], "during-" + std::to_string(i) + "@example.com");
        EXPECT_EQ(a.status, 200) << a.body;
        EXPECT_NE(readyz(ports[i]).find(R"("status":"ready")"), std::string::npos) << readyz(ports[i]);
    }

    cluster.nodes[victim]->restart(); // its nodes.conf kept: it takes its slots back, empty
    ASSERT_TRUE(eventually([&] { return cluster.ok(); }, 30s)) << "the cluster did not come back";
    EXPECT_TRUE(eventually([&] { return shares(); }, 30s)) << "the replicas do not share again\n" << logs();
    answered = traffic.answered();
    EXPECT_TRUE(eventually([&] { return traffic.answered() >= answered + 20; }));
    traffic.stop();
    std::cout << "[ traffic ] " << traffic.answered() << " answers, " << traffic.failures().size()
              << " errors\n";
    EXPECT_EQ(traffic.failures(), std::vector<std::string>{}) << "a caller got an error\n" << logs();
    for (auto port : ports) {
        const auto after = get_token(port, "forgotten@example.com");
        ASSERT_EQ(after.status, 200) << after.body;
        EXPECT_NE(after.token(), forgotten.token()) << "a token forgotten before the kill came back";
    }
    for (auto port : ports)
        EXPECT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; }))
            << readyz(port);
}

} // namespace
} // namespace token_broker
