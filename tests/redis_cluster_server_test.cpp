// The Redis Cluster client's pure parts (redis/cluster_map.hpp) against a real cluster: three
// redis-server masters on loopback made one cluster with `redis-cli --cluster create`. What the map
// reads from CLUSTER SLOTS, the slots it computes and the redirections it reads are the servers' own.
#include "cluster_setup.hpp"
#include "redis/cluster_map.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace token_broker::redis {
namespace {

using namespace std::chrono_literals;

// Three masters sharing the slots, as `redis-cli --cluster create` deals them (tests/cluster_setup.hpp).
class RealCluster : public ::testing::Test {
protected:
    node_address address_of(const test::redis_server& n) const { return {"127.0.0.1", n.port()}; }
    const test::redis_server& node_at(const node_address& a) const {
        for (const auto& n : nodes)
            if (n->port() == a.port)
                return *n;
        throw std::runtime_error("no node at " + to_string(a));
    }
    slot_map read_map() const {
        auto m = slot_map::read(nodes[0]->command({"CLUSTER", "SLOTS"}), address_of(*nodes[0]));
        if (!m)
            throw std::runtime_error(m.error().message);
        return *m;
    }

    static constexpr const char* password = test::cluster_setup::password;
    test::cluster_setup cluster;
    std::vector<std::unique_ptr<test::redis_server>>& nodes = cluster.nodes;
};

TEST_F(RealCluster, TheSlotMapCoversEverySlotWithTheThreeMasters) {
    const auto m = read_map();
    EXPECT_TRUE(m.complete());
    ASSERT_EQ(m.masters().size(), 3u);
    for (const auto& n : nodes)
        EXPECT_NE(std::find(m.masters().begin(), m.masters().end(), address_of(*n)), m.masters().end())
            << "node " << n->port() << " is not among the masters read";
    // Each master answers for its own slots: a key written through the map is found there.
    for (int i = 0; i < 30; ++i) {
        const auto key = "key-" + std::to_string(i);
        const auto& owner = node_at(*m.master_of(key_slot(key)));
        EXPECT_TRUE(owner.command({"SET", key, "v"}).is_status("OK")) << key;
        EXPECT_EQ(owner.command({"GET", key}).text, "v") << key;
    }
}

TEST_F(RealCluster, KeySlotsAreTheServersOwn) {
    // The broker's key names (a user's keys under one hash tag, and without one), and others.
    const std::vector<std::string> keys = {
        "token-broker:u:{0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}:zak:-",
        "token-broker:u:{0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}:gen",
        "token-broker:u:0123456789abcdef:zak:7200:lock",
        "token-broker:{zoom}:budget",
        "token-broker:replicas",
        "{}",
        "{",
        "}{x}",
        "a{b}c{d}",
        std::string("\x00\xff{\x01}", 6),
    };
    for (const auto& key : keys)
        EXPECT_EQ(key_slot(key), nodes[0]->command({"CLUSTER", "KEYSLOT", key}).integer) << key;
    for (int i = 0; i < 200; ++i) {
        const auto key = "user-" + std::to_string(i * 7919) + "@example.com";
        EXPECT_EQ(key_slot(key), nodes[0]->command({"CLUSTER", "KEYSLOT", key}).integer) << key;
    }
}

TEST_F(RealCluster, AKeyAskedOfAnotherNodeIsMovedToItsMaster) {
    const auto m = read_map();
    const std::string key = "moved-key";
    const auto slot = key_slot(key);
    const auto owner = *m.master_of(slot);
    for (const auto& n : nodes) {
        if (address_of(*n) == owner)
            continue;
        const auto answer = n->command({"GET", key});
        const auto r = read_redirect(answer, address_of(*n));
        ASSERT_TRUE(r) << answer.text;
        EXPECT_EQ(r->what, redirect::kind::moved);
        EXPECT_EQ(r->slot, slot);
        EXPECT_EQ(r->to, owner);
    }
    EXPECT_FALSE(read_redirect(node_at(owner).command({"GET", key}), owner)) << "its master answers it";
}

TEST_F(RealCluster, AKeyOfASlotBeingMigratedIsAskedOfTheNodeItGoesTo) {
    const auto m = read_map();
    const std::string key = "migrating-key";
    const auto slot = key_slot(key);
    const auto from = *m.master_of(slot);
    node_address to;
    for (const auto& n : nodes)
        if (address_of(*n) != from)
            to = address_of(*n);
    const auto id_of = [&](const node_address& a) { return node_at(a).command({"CLUSTER", "MYID"}).text; };
    const auto s = std::to_string(slot);
    ASSERT_TRUE(node_at(to).command({"CLUSTER", "SETSLOT", s, "IMPORTING", id_of(from)}).is_status("OK"));
    ASSERT_TRUE(node_at(from).command({"CLUSTER", "SETSLOT", s, "MIGRATING", id_of(to)}).is_status("OK"));

    // The key is not (or no longer) on the node it leaves: that node sends the client on, once.
    const auto answer = node_at(from).command({"GET", key});
    const auto r = read_redirect(answer, from);
    ASSERT_TRUE(r) << answer.text;
    EXPECT_EQ(r->what, redirect::kind::ask);
    EXPECT_EQ(r->slot, slot);
    EXPECT_EQ(r->to, to);
    // There, ASKING first makes the node answer for the slot it imports; without it, it is MOVED back.
    const auto asked = test::commands_at(to.port, password, {{"ASKING"}, {"GET", key}});
    EXPECT_TRUE(asked.is_nil()) << asked.text;
    const auto unasked = read_redirect(node_at(to).command({"GET", key}), to);
    ASSERT_TRUE(unasked);
    EXPECT_EQ(unasked->what, redirect::kind::moved);
    EXPECT_EQ(unasked->to, from);
}

// The slot migration that the process tests run under traffic (cluster_setup::slot_migration), by
// itself: while it runs the old master answers -ASK for a key it no longer holds, afterwards every
// key is on the new master, which the others name (-MOVED).
TEST_F(RealCluster, ASlotMigratedByHandTakesEveryKeyToTheOtherMaster) {
    const std::vector<std::string> keys = {"{moved-slot}:a", "{moved-slot}:b", "{moved-slot}:c"};
    const auto slot = cluster.slot_of(keys[0]);
    const auto from = *cluster.owner_of(slot);
    const auto to = (from + 1) % nodes.size();
    for (const auto& k : keys)
        ASSERT_TRUE(nodes[from]->command({"SET", k, "v"}).is_status("OK"));
    test::cluster_setup::slot_migration m(cluster, slot, from, to);
    m.begin();
    EXPECT_EQ(m.move_keys(1), 1u);
    std::size_t asked = 0;
    for (const auto& k : keys) {
        const auto r = nodes[from]->command({"GET", k});
        if (r.is_error()) {
            EXPECT_EQ(r.text.rfind("ASK ", 0), 0u) << r.text;
            ++asked;
        }
    }
    EXPECT_EQ(asked, 1u) << "the key moved is asked of the new master, the others are still answered";
    m.end();
    EXPECT_EQ(cluster.owner_of(slot, from), to);
    EXPECT_EQ(cluster.owner_of(slot, to), to);
    for (const auto& k : keys) {
        EXPECT_EQ(nodes[to]->command({"GET", k}).text, "v") << k;
        const auto r = nodes[from]->command({"GET", k});
        EXPECT_EQ(r.text.rfind("MOVED ", 0), 0u) << r.text;
    }
    EXPECT_EQ(nodes[from]->command({"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)}).integer, 0);
}

} // namespace
} // namespace token_broker::redis
