// Sentinel without sockets (lib/redis/sentinel.*, and the handshake's ROLE check in link.cpp): what a
// sentinel's answers and messages mean, read from the bytes Redis and Sentinel 7 send.
#include "redis/link.hpp"
#include "redis/protocol.hpp"
#include "redis/sentinel.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace token_broker::redis {
namespace {

// The one reply `bytes` hold.
reply sentinel_reply(std::string_view bytes) {
    reader r;
    r.feed(bytes);
    auto taken = r.take();
    if (!taken || !taken->has_value())
        throw std::runtime_error("not one whole reply");
    return std::move(**taken);
}

options sentinel_setup() {
    options o;
    o.connect_to = target::sentinel_master;
    o.sentinels = {{"10.0.0.1", 26379}, {"10.0.0.2", 26380}, {"10.0.0.3", 26381}};
    o.master_name = "mymaster";
    o.user = "broker";
    o.password = secret("data-password");
    o.sentinel_password = secret("sentinel-password");
    o.db = 2;
    return o;
}

TEST(SentinelLogic, TheMasterAddressIsReadFromTheSentinelsAnswer) {
    EXPECT_EQ(master_address_query("mymaster"),
              (std::vector<std::string>{"SENTINEL", "get-master-addr-by-name", "mymaster"}));
    const auto found = master_address_of(sentinel_reply("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"));
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_EQ(*found, (address{"127.0.0.1", 6380}));

    const std::vector<std::pair<std::string, std::string>> refused = {
        {"*-1\r\n", "the sentinel does not know the master"},
        {"$-1\r\n", "the sentinel does not know the master"},
        {"-NOAUTH Authentication required.\r\n", "the sentinel refused: NOAUTH Authentication required."},
        {"*1\r\n$9\r\n127.0.0.1\r\n", "the sentinel answered something else than an address"},
        {"*2\r\n$0\r\n\r\n$4\r\n6380\r\n", "the sentinel answered something else than an address"},
        {"*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n", "the sentinel answered an invalid port"},
        {"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n", "the sentinel answered an invalid port"},
        {"*2\r\n$9\r\n127.0.0.1\r\n:6380\r\n", "the sentinel answered something else than an address"},
        {"+OK\r\n", "the sentinel answered something else than an address"},
    };
    for (const auto& [bytes, why] : refused) {
        SCOPED_TRACE(bytes);
        const auto r = master_address_of(sentinel_reply(bytes));
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().message, why);
    }
}

TEST(SentinelLogic, OnlyAMasterPassesTheRoleCheck) {
    EXPECT_EQ(role_refusal(sentinel_reply("*3\r\n$6\r\nmaster\r\n:3129659\r\n*0\r\n")), std::nullopt);
    EXPECT_EQ(
        role_refusal(sentinel_reply("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n"
                                    ":3167038\r\n")),
        "the server is not the master (ROLE says slave)");
    EXPECT_EQ(role_refusal(sentinel_reply("*2\r\n$8\r\nsentinel\r\n*0\r\n")),
              "the server is not the master (ROLE says sentinel)");
    EXPECT_EQ(role_refusal(sentinel_reply("-NOPERM no ROLE for you\r\n")),
              "ROLE refused: NOPERM no ROLE for you");
    EXPECT_EQ(role_refusal(sentinel_reply("+master\r\n")), "ROLE answered something else than a role");
    EXPECT_EQ(role_refusal(sentinel_reply("*0\r\n")), "ROLE answered something else than a role");
}

// A link to a master the sentinels named ends its handshake with ROLE; one to a sentinel, or to a
// server named directly, does not.
TEST(SentinelLogic, TheHandshakeChecksTheRoleOfWhatTheSentinelsNamed) {
    const options o = sentinel_setup();
    const options master = master_link_options(o, {"127.0.0.1", 7000});
    EXPECT_EQ(master.host, "127.0.0.1");
    EXPECT_EQ(master.port, 7000);
    EXPECT_EQ(detail::handshake_commands(master),
              (std::vector<std::vector<std::string>>{
                  {"AUTH", "broker", "data-password"}, {"SELECT", "2"}, {"PING"}, {"ROLE"}}));
    const reply ok = sentinel_reply("+OK\r\n");
    const reply pong = sentinel_reply("+PONG\r\n");
    const reply as_master = sentinel_reply("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
    const reply as_replica =
        sentinel_reply("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9000\r\n$9\r\nconnected\r\n:1\r\n");
    EXPECT_EQ(detail::handshake_refusal(master, {ok, ok, pong, as_master}), std::nullopt);
    EXPECT_EQ(detail::handshake_refusal(master, {ok, ok, pong, as_replica}),
              "the server is not the master (ROLE says slave)");
    EXPECT_EQ(detail::handshake_refusal(master, {ok, ok, pong}), "no answer to ROLE");

    const options to_sentinel = sentinel_link_options(o, {"10.0.0.2", 26380});
    EXPECT_EQ(to_sentinel.host, "10.0.0.2");
    EXPECT_EQ(to_sentinel.port, 26380);
    EXPECT_EQ(detail::handshake_commands(to_sentinel),
              (std::vector<std::vector<std::string>>{{"AUTH", "sentinel-password"}, {"PING"}}))
        << "the sentinels get their own password, no user and no SELECT";
    options no_password = o;
    no_password.sentinel_password = {};
    EXPECT_EQ(detail::handshake_commands(sentinel_link_options(no_password, {"h", 1})),
              (std::vector<std::vector<std::string>>{{"PING"}}));

    options direct = o;
    direct.connect_to = target::server;
    EXPECT_EQ(detail::handshake_commands(direct).back(), std::vector<std::string>{"PING"});
}

TEST(SentinelLogic, SwitchMasterMessagesAreRead) {
    const auto m = parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.1 6380");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->master_name, "mymaster");
    EXPECT_EQ(m->from, (address{"127.0.0.1", 6379}));
    EXPECT_EQ(m->to, (address{"127.0.0.1", 6380}));
    EXPECT_EQ(parse_switch_master("other ::1 1 ::1 2")->to, (address{"::1", 2}));
    for (const char* bad : {"", "mymaster", "mymaster 127.0.0.1 6379 127.0.0.1", "mymaster a 1 b 0",
                            "mymaster a x b 2", "mymaster a 1 b 2 extra", "mymaster  a 1 b 2"}) {
        SCOPED_TRACE(bad);
        EXPECT_FALSE(parse_switch_master(bad));
    }
}

TEST(SentinelLogic, ASentinelThatAnsweredIsAskedFirstNextTime) {
    sentinel_list l(sentinel_setup().sentinels);
    const address a{"10.0.0.1", 26379}, b{"10.0.0.2", 26380}, c{"10.0.0.3", 26381};
    EXPECT_EQ(l.in_order(), (std::vector<address>{a, b, c}));
    l.answered(2);
    EXPECT_EQ(l.in_order(), (std::vector<address>{c, a, b}));
    l.answered(0);
    EXPECT_EQ(l.in_order(), (std::vector<address>{c, a, b}));
    l.answered(2);
    EXPECT_EQ(l.in_order(), (std::vector<address>{b, c, a}));
    l.answered(7);
    EXPECT_EQ(l.in_order(), (std::vector<address>{b, c, a}));
}

} // namespace
} // namespace token_broker::redis
