// The Redis Cluster client's pure parts (redis/cluster_map.hpp): key slots, CLUSTER SLOTS replies and
// redirections, read from RESP byte strings as a node would send them.
#include "redis/cluster_map.hpp"
#include "redis/protocol.hpp"

#include <gtest/gtest.h>

#include <string>

namespace token_broker::redis {
namespace {

// The one reply in `bytes`, through the protocol reader the connections use.
reply resp(const std::string& bytes) {
    reader r;
    EXPECT_TRUE(r.feed(bytes));
    auto taken = r.take();
    EXPECT_TRUE(taken && *taken) << "not one whole reply: " << bytes;
    return taken && *taken ? **taken : reply{};
}

const node_address asked{"127.0.0.1", 7000};

TEST(ClusterKeySlot, IsTheCrc16OfTheKeyModulo16384) {
    // The Redis Cluster specification: CRC16 of "123456789" is 0x31C3.
    EXPECT_EQ(key_slot("123456789"), 0x31C3 % 16384);
    // Values that `CLUSTER KEYSLOT` answers (Redis 7).
    EXPECT_EQ(key_slot("foo"), 12182);
    EXPECT_EQ(key_slot("bar"), 5061);
    EXPECT_EQ(key_slot(""), 0);
}

TEST(ClusterKeySlot, AHashTagIsTheFirstNonEmptyBraceGroup) {
    // The specification's examples, with what `CLUSTER KEYSLOT` answers (Redis 7).
    EXPECT_EQ(key_slot("{user1000}.following"), 3443);
    EXPECT_EQ(key_slot("{user1000}.followers"), 3443);
    EXPECT_EQ(key_slot("user1000"), 3443);
    EXPECT_EQ(key_slot("foo{}{bar}"), 8363) << "an empty first group: the whole key";
    EXPECT_EQ(key_slot("foo{{bar}}zap"), 4015) << "the tag is \"{bar\"";
    EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
    EXPECT_EQ(key_slot("no closing {brace"), 5599) << "no closing brace: the whole key";
    EXPECT_EQ(key_slot("token-broker:u:{abc}:zak:-"), key_slot("abc"));
}

// Three masters, the second with a replica, the third with an empty host (the node asked).
const std::string three_masters = "*3\r\n"
                                  "*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nid1\r\n"
                                  "*4\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nid2\r\n"
                                  "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$3\r\nid5\r\n"
                                  "*3\r\n:10923\r\n:16383\r\n*3\r\n$0\r\n\r\n:7002\r\n$3\r\nid3\r\n";

TEST(ClusterSlotMap, ReadsEachRangesMasterAndIgnoresReplicas) {
    auto m = slot_map::read(resp(three_masters), asked);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_TRUE(m->complete());
    ASSERT_EQ(m->masters().size(), 3u);
    EXPECT_EQ(*m->master_of(0), (node_address{"127.0.0.1", 7000}));
    EXPECT_EQ(*m->master_of(5460), (node_address{"127.0.0.1", 7000}));
    EXPECT_EQ(*m->master_of(5461), (node_address{"127.0.0.1", 7001}));
    EXPECT_EQ(*m->master_of(10922), (node_address{"127.0.0.1", 7001}));
    EXPECT_EQ(*m->master_of(16383), (node_address{"127.0.0.1", 7002})) << "an empty host is the node asked";
    EXPECT_EQ(m->master_of(16384), nullptr);
}

TEST(ClusterSlotMap, KnowsWhichMastersHaveReplicas) {
    auto m = slot_map::read(resp(three_masters), asked);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_FALSE(m->has_replicas(0));
    EXPECT_TRUE(m->has_replicas(5461));
    EXPECT_TRUE(m->has_replicas(10922));
    EXPECT_FALSE(m->has_replicas(16383));
    EXPECT_FALSE(m->has_replicas(16384));
}

TEST(ClusterSlotMap, AMovedSlotGoesToItsNewMaster) {
    auto m = slot_map::read(resp(three_masters), asked);
    ASSERT_TRUE(m);
    m->move(100, {"127.0.0.1", 7003});
    EXPECT_EQ(*m->master_of(100), (node_address{"127.0.0.1", 7003}));
    EXPECT_EQ(*m->master_of(99), (node_address{"127.0.0.1", 7000}));
    EXPECT_EQ(m->masters().size(), 4u);
}

TEST(ClusterSlotMap, AnUncoveredSlotHasNoMaster) {
    auto m = slot_map::read(resp("*1\r\n*3\r\n:0\r\n:99\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n"), asked);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_FALSE(m->complete());
    EXPECT_NE(m->master_of(99), nullptr);
    EXPECT_EQ(m->master_of(100), nullptr);
}

TEST(ClusterSlotMap, AnythingElseIsRefusedWithAReason) {
    const std::string bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        ":1\r\n",
        "*1\r\n:5\r\n",                                            // a range that is not an array
        "*1\r\n*2\r\n:0\r\n:10\r\n",                               // no master
        "*1\r\n*3\r\n:10\r\n:0\r\n*2\r\n$1\r\nh\r\n:1\r\n",        // end before start
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",     // past the last slot
        "*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",        // negative
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:70000\r\n",     // port out of range
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:7000\r\n",           // host not a string
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n$4\r\n7000\r\n", // port not an integer
        "*1\r\n*3\r\n$1\r\n0\r\n:5\r\n*2\r\n$1\r\nh\r\n:7000\r\n", // start not an integer
    };
    for (const auto& bytes : bad) {
        auto m = slot_map::read(resp(bytes), asked);
        ASSERT_FALSE(m) << bytes;
        EXPECT_EQ(m.error().code, errc::cache_unavailable);
        EXPECT_NE(m.error().message.find("CLUSTER SLOTS"), std::string::npos) << m.error().message;
    }
}

TEST(ClusterRedirect, MovedAndAskNameTheSlotAndTheNode) {
    auto moved = read_redirect(resp("-MOVED 3999 127.0.0.1:6381\r\n"), asked);
    ASSERT_TRUE(moved);
    EXPECT_EQ(moved->what, redirect::kind::moved);
    EXPECT_EQ(moved->slot, 3999);
    EXPECT_EQ(moved->to, (node_address{"127.0.0.1", 6381}));

    auto ask = read_redirect(resp("-ASK 16383 10.0.0.5:7002\r\n"), asked);
    ASSERT_TRUE(ask);
    EXPECT_EQ(ask->what, redirect::kind::ask);
    EXPECT_EQ(ask->slot, 16383);
    EXPECT_EQ(ask->to, (node_address{"10.0.0.5", 7002}));

    auto ipv6 = read_redirect(resp("-MOVED 1 ::1:7005\r\n"), asked);
    ASSERT_TRUE(ipv6);
    EXPECT_EQ(ipv6->to, (node_address{"::1", 7005}));

    auto same_host = read_redirect(resp("-MOVED 1 :7005\r\n"), asked);
    ASSERT_TRUE(same_host);
    EXPECT_EQ(same_host->to, (node_address{"127.0.0.1", 7005})) << "an empty host is the node asked";
}

TEST(ClusterRedirect, OtherRepliesAndMalformedRedirectionsAreNotRedirections) {
    const std::string not_redirects[] = {
        "+OK\r\n",
        "$5\r\nMOVED\r\n", // a value, not an error
        "-ERR unknown command\r\n",
        "-MOVED\r\n",
        "-MOVED 3999\r\n",
        "-MOVED x 127.0.0.1:6381\r\n",
        "-MOVED 16384 127.0.0.1:6381\r\n",
        "-MOVED 1 127.0.0.1\r\n",
        "-MOVED 1 127.0.0.1:\r\n",
        "-MOVED 1 127.0.0.1:0\r\n",
        "-MOVED 1 127.0.0.1:65536\r\n",
        "-ASK 1 127.0.0.1:6381x\r\n",
        "-MOVEDX 1 127.0.0.1:6381\r\n",
    };
    for (const auto& bytes : not_redirects)
        EXPECT_FALSE(read_redirect(resp(bytes), asked)) << bytes;
}

TEST(ClusterCommandKey, ScriptsAreRoutedByTheirFirstKeyOtherCommandsByTheirFirstArgument) {
    using args = std::vector<std::string>;
    const auto key = [](const args& a) { return command_key(a); };
    EXPECT_EQ(key({"GET", "k"}), "k");
    EXPECT_EQ(key({"set", "k", "v"}), "k") << "command names in any case";
    EXPECT_EQ(key({"MGET", "a", "b"}), "a");
    EXPECT_EQ(key({"EVALSHA", "sha", "2", "k1", "k2", "arg"}), "k1");
    EXPECT_EQ(key({"eval", "return 1", "1", "k1"}), "k1");
    EXPECT_EQ(key({"EVALSHA_RO", "sha", "1", "k1"}), "k1");
    EXPECT_EQ(key({"FCALL", "f", "1", "k1"}), "k1");
    // Scripts without keys, or with a numkeys that does not read: no key (any master).
    EXPECT_EQ(key({"EVALSHA", "sha", "0", "arg"}), std::nullopt);
    EXPECT_EQ(key({"EVALSHA", "sha", "x", "k1"}), std::nullopt);
    EXPECT_EQ(key({"EVALSHA", "sha", "1"}), std::nullopt);
    EXPECT_EQ(key({"EVAL", "return 1"}), std::nullopt);
    // Commands without keys.
    for (const auto* name :
         {"PUBLISH", "publish", "PING", "ROLE", "WAIT", "SCRIPT", "CLUSTER", "INFO", "TIME"})
        EXPECT_EQ(key({name, "x", "y"}), std::nullopt) << name;
    EXPECT_EQ(key({"PING"}), std::nullopt);
    EXPECT_EQ(key({}), std::nullopt);
}

TEST(ClusterRedirect, TryAgainIsRecognised) {
    EXPECT_TRUE(is_try_again(resp("-TRYAGAIN Multiple keys request during rehashing of slot\r\n")));
    EXPECT_FALSE(is_try_again(resp("+TRYAGAIN\r\n")));
    EXPECT_FALSE(is_try_again(resp("-ERR TRYAGAIN\r\n")));
}

} // namespace
} // namespace token_broker::redis
