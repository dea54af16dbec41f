// The token-broker executable as operators run it: signals (SIGHUP reloads caller keys, SIGTERM
// drains requests in flight and exits 0) and its exit status for a port it cannot bind.
#include "broker_process.hpp"
#include "redis_server.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <future>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::broker_process;
using testing::client;
using testing::eventually;

int status_with_key(std::uint16_t port, const std::string& key) {
    client c(port);
    return static_cast<int>(c.get("/token/p", "Authorization: Bearer " + key + "\r\n").result_int());
}

TEST(Process, SighupReloadsTheKeysFileAndABadFileKeepsTheOldKeys) {
    zoom_sim::simulator sim;
    auto started = broker_process::start(sim);
    auto& broker = *started;
    const auto port = broker.wait_port();
    EXPECT_EQ(status_with_key(port, "first-key-0123456789"), 200);
    EXPECT_EQ(status_with_key(port, "second-key-0123456789"), 401);

    broker.write_keys("second", "second-key-0123456789");
    broker.signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return status_with_key(port, "second-key-0123456789") == 200; }));
    EXPECT_EQ(status_with_key(port, "first-key-0123456789"), 401);

    broker.write_raw_keys("[{\"name\": \"broken\"");
    broker.signal(SIGHUP);
    EXPECT_TRUE(eventually(
        [&] { return broker.output().find("keeping the current caller keys") != std::string::npos; }));
    EXPECT_EQ(status_with_key(port, "second-key-0123456789"), 200);

    broker.signal(SIGTERM);
    EXPECT_EQ(broker.wait_exit(5s), 0);
}

TEST(Process, SigtermLetsTheRequestInFlightFinishThenExitsZero) {
    zoom_sim::simulator sim;
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 800ms, .times = -1}, "slow");
    auto started = broker_process::start(sim);
    auto& broker = *started;
    const auto port = broker.wait_port();
    auto in_flight = std::async(std::launch::async, [&] {
        client c(port);
        return c.get("/token/slow", "Authorization: Bearer first-key-0123456789\r\n");
    });
    ASSERT_TRUE(eventually([&] { return sim.token_calls("slow") == 1; }));
    broker.signal(SIGTERM);
    auto res = in_flight.get();
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res[http::field::connection], "close");
    EXPECT_EQ(broker.wait_exit(5s), 0) << broker.output();
    EXPECT_NE(broker.output().find("drained"), std::string::npos);
}

TEST(Process, APortThatCannotBeBoundExitsOne) {
    zoom_sim::simulator sim;
    net::io_context ioc;
    net::ip::tcp::acceptor taken(ioc, {net::ip::make_address("127.0.0.1"), 0});
    broker_process broker(sim, taken.local_endpoint().port());
    EXPECT_EQ(broker.wait_exit(5s), 1);
    EXPECT_NE(broker.output().find("cannot listen"), std::string::npos) << broker.output();
}

// Two broker processes naming one Redis (CONTRACT.md section 7) behave as one broker: one OAuth
// call for both, a token fetched by one is served by the other as cached without a Zoom call, and a
// DELETE on one makes the other fetch anew. The wiring of the process, not only the library.
TEST(Process, TwoReplicasShareOneRedis) {
    zoom_sim::simulator sim;
    test::redis_server redis;
    const boost::json::object extra{{"redis",
                                     {{"url", "redis://127.0.0.1:" + std::to_string(redis.port())},
                                      {"password", redis.password()},
                                      {"encryption_key", std::string(64, 'a')}}}};
    auto a = broker_process::start(sim, extra);
    auto b = broker_process::start(sim, extra);
    ASSERT_TRUE(a && b);
    const std::uint16_t ports[] = {a->wait_port(), b->wait_port()};
    for (auto port : ports) {
        EXPECT_TRUE(eventually([&] {
            return client(port).get("/readyz").body() == R"({"status":"ready","redis":"up"})";
        })) << client(port).get("/readyz").body();
    }
    EXPECT_EQ(sim.oauth_calls(), 1u) << "the second replica takes the access token the first put in Redis";

    const std::string auth = "Authorization: Bearer first-key-0123456789\r\n";
    const auto first = client(ports[0]).get("/token/alice@example.com", auth);
    ASSERT_EQ(first.result_int(), 200) << first.body();
    EXPECT_NE(first.body().find(R"("cached":false)"), std::string::npos) << first.body();
    const auto second = client(ports[1]).get("/token/alice@example.com", auth);
    ASSERT_EQ(second.result_int(), 200) << second.body();
    EXPECT_NE(second.body().find(R"("cached":true)"), std::string::npos) << second.body();
    EXPECT_EQ(sim.token_calls("alice@example.com"), 1u);

    client del(ports[1]);
    del.send("DELETE /token/alice@example.com HTTP/1.1\r\nHost: localhost\r\n" + auth + "\r\n");
    EXPECT_EQ(del.read().result_int(), 204);
    // The other replica hears of the DELETE through Redis and drops its own copy.
    EXPECT_TRUE(eventually([&] {
        const auto r = client(ports[0]).get("/token/alice@example.com", auth);
        return r.result_int() == 200 && sim.token_calls("alice@example.com") == 2;
    }));
    EXPECT_EQ(sim.oauth_calls(), 1u);
}

} // namespace
} // namespace token_broker
