// redis::connection against real redis-server processes (tests/redis_server.hpp), each test with
// its own server on loopback: commands, pipelining, AUTH, SELECT, the command deadline, outages and
// reconnection, and rediss:// with a test CA.
#include "metrics/metrics.hpp"
#include "redis/connection.hpp"
#include "redis_server.hpp"
#include "redis_test_support.hpp"
#include "test_certs.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace token_broker::test {
namespace {

using namespace std::string_literals;
using clock = std::chrono::steady_clock;
using redis::reply;

net::awaitable<void> round_trip(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));

    const std::string value = "binary\0value\r\n\xff\x01"s;
    auto set = co_await c->exec(cmd("SET", "k\0ey"s, value));
    EXPECT_TRUE(set.has_value() && set->is_status("OK"));
    auto get = co_await c->exec(cmd("GET", "k\0ey"s));
    EXPECT_TRUE(get.has_value());
    if (get) {
        EXPECT_EQ(get->type, reply::kind::string);
        EXPECT_EQ(get->text, value);
    }
    auto missing = co_await c->exec(cmd("GET", "nobody"));
    EXPECT_TRUE(missing.has_value() && missing->is_nil());

    // A Redis error is a reply, and the connection goes on.
    auto wrong = co_await c->exec(cmd("INCR", "k\0ey"s));
    EXPECT_TRUE(wrong.has_value());
    if (wrong) {
        EXPECT_TRUE(wrong->is_error()) << wrong->text;
    }
    // An empty command is refused here: Redis would answer nothing and the connection would be dropped.
    auto empty = co_await c->exec(std::vector<std::string>());
    EXPECT_FALSE(empty.has_value());
    auto ping = co_await c->exec(cmd("PING"));
    EXPECT_TRUE(ping.has_value() && ping->is_status("PONG"));
    EXPECT_TRUE(c->up());
}

TEST(RedisConnection, RoundTripIncludingBinaryValues) {
    redis_server server;
    redis_fixture f;
    f.run(round_trip(f, server));
    // What the other side stored is what was sent.
    EXPECT_EQ(server.command({"GET", "k\0ey"s}).text, "binary\0value\r\n\xff\x01"s);
    EXPECT_EQ(f.logs().find(server.password()), std::string::npos) << "the password must never be logged";
}

net::awaitable<void> echo_one(std::shared_ptr<redis::connection> c, int i, std::vector<std::string>& got,
                              int& done) {
    auto r = co_await c->exec(cmd("ECHO", "value-" + std::to_string(i)));
    got[static_cast<std::size_t>(i)] = r ? r->text : "error: " + r.error().message;
    ++done;
}

net::awaitable<void> pipelining(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    constexpr int n = 500;
    std::vector<std::string> got(n);
    int done = 0;
    auto ex = co_await net::this_coro::executor;
    for (int i = 0; i < n; ++i)
        net::co_spawn(ex, echo_one(c, i, got, done), fail_on_exception);
    EXPECT_TRUE(co_await eventually([&] { return done == n; }));
    for (int i = 0; i < n; ++i)
        EXPECT_EQ(got[static_cast<std::size_t>(i)], "value-" + std::to_string(i));
}

TEST(RedisConnection, ConcurrentCommandsAnswerTheirOwnCallers) {
    redis_server server;
    redis_fixture f;
    f.run(pipelining(f, server));
}

// Callers on several threads (server.threads > 1), each on a strand of its own, share one connection.
net::awaitable<void> echo_many(std::shared_ptr<redis::connection> c, int caller, std::atomic<int>& wrong,
                               std::atomic<int>& done) {
    for (int i = 0; i < 200; ++i) {
        const std::string value = std::to_string(caller) + "/" + std::to_string(i);
        auto r = co_await c->exec(cmd("ECHO", value));
        if (!r || r->text != value)
            ++wrong;
    }
    ++done;
}

TEST(RedisConnection, CallersOnSeveralThreads) {
    redis_server server;
    redis_fixture f;
    auto c = redis::connection::create(f.ioc.get_executor(), server.client_options(), f.log);
    c->start();
    std::atomic<int> wrong{0};
    std::atomic<int> done{0};
    constexpr int callers = 8;
    std::vector<std::thread> threads;
    {
        auto work = net::make_work_guard(f.ioc);
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] { f.ioc.run_for(60s); });
        const auto give_up = clock::now() + 30s;
        while (!c->up() && clock::now() < give_up)
            std::this_thread::sleep_for(10ms);
        ASSERT_TRUE(c->up());
        for (int i = 0; i < callers; ++i)
            net::co_spawn(net::make_strand(f.ioc), echo_many(c, i, wrong, done), fail_on_exception);
        while (done < callers && clock::now() < give_up + 30s)
            std::this_thread::sleep_for(10ms);
        c->stop();
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(done.load(), callers);
    EXPECT_EQ(wrong.load(), 0);
}

net::awaitable<void> refused(redis_fixture& f, redis::options o, std::string expect_in_log) {
    auto c = f.connect(o);
    EXPECT_TRUE(co_await eventually([&] { return f.logs().find(expect_in_log) != std::string::npos; }))
        << f.logs();
    EXPECT_FALSE(c->up());
    const auto started = clock::now();
    auto r = co_await c->exec(cmd("PING"));
    EXPECT_FALSE(r.has_value());
    if (!r) {
        EXPECT_EQ(r.error().code, errc::cache_unavailable);
    }
    // "At once": far below the command timeout the options give (5 s).
    EXPECT_LT(clock::now() - started, 2s);
}

TEST(RedisConnection, WrongPasswordIsNotUpAndCommandsFailAtOnce) {
    redis_server server;
    redis_fixture f;
    auto o = server.client_options();
    o.password = secret("not-the-password");
    f.run(refused(f, o, "AUTH refused"));
    EXPECT_EQ(f.logs().find("not-the-password"), std::string::npos) << f.logs();
}

TEST(RedisConnection, MissingPasswordIsNotUp) {
    redis_server server;
    redis_fixture f;
    auto o = server.client_options();
    o.password = secret();
    f.run(refused(f, o, "NOAUTH"));
}

net::awaitable<void> select_db(redis_fixture& f, redis_server& server) {
    auto o3 = server.client_options();
    o3.db = 3;
    auto in3 = f.connect(o3);
    auto in0 = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return in3->up() && in0->up(); }));
    auto set = co_await in3->exec(cmd("SET", "where", "db3"));
    EXPECT_TRUE(set.has_value() && set->is_status("OK"));
    auto from0 = co_await in0->exec(cmd("GET", "where"));
    EXPECT_TRUE(from0.has_value() && from0->is_nil());
    auto from3 = co_await in3->exec(cmd("GET", "where"));
    EXPECT_TRUE(from3.has_value() && from3->text == "db3");
}

TEST(RedisConnection, SelectsTheConfiguredDatabase) {
    redis_server server;
    redis_fixture f;
    f.run(select_db(f, server));
}

net::awaitable<void> command_timeout(redis_fixture& f, redis_server& server, metrics& m) {
    auto o = server.client_options();
    o.command_timeout = 300ms;
    auto c = f.connect(o, &m);
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));

    const auto started = clock::now();
    auto slow = co_await c->exec(cmd("DEBUG", "SLEEP", "5"));
    EXPECT_FALSE(slow.has_value());
    if (!slow) {
        EXPECT_NE(slow.error().message.find("command_timeout_ms"), std::string::npos) << slow.error().message;
    }
    EXPECT_LT(clock::now() - started, 4s) << "the command should have ended at its deadline, not the reply";

    // The connection was dropped and is made again by itself once Redis answers.
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }, 30s));
    auto after = co_await c->exec(cmd("PING"));
    EXPECT_TRUE(after.has_value() && after->is_status("PONG"));
}

TEST(RedisConnection, CommandTimeoutDropsTheConnectionWhichRecovers) {
    redis_server server;
    redis_fixture f;
    metrics m;
    m.enable_redis();
    f.run(command_timeout(f, server, m));
    const std::string text = m.serialize();
    EXPECT_NE(text.find("token_broker_redis_commands_total{result=\"timeout\"} 1"), std::string::npos)
        << text;
    EXPECT_NE(text.find("token_broker_redis_commands_total{result=\"ok\"} 1"), std::string::npos) << text;
}

net::awaitable<void> outage(redis_fixture& f, redis_server& server, std::vector<bool>& states) {
    auto c = f.connect(server.client_options());
    c->on_state([&](bool up) { states.push_back(up); });
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));

    server.stop();
    EXPECT_TRUE(co_await eventually([&] { return !c->up(); }));
    for (int i = 0; i < 3; ++i) {
        const auto started = clock::now();
        auto r = co_await c->exec(cmd("PING"));
        EXPECT_FALSE(r.has_value());
        EXPECT_LT(clock::now() - started, 2s) << "while Redis is down a command fails at once";
    }

    server.restart();
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }, 30s)) << f.logs();
    auto r = co_await c->exec(cmd("SET", "back", "yes"));
    EXPECT_TRUE(r.has_value() && r->is_status("OK"));
    EXPECT_EQ(states, (std::vector<bool>{true, false, true})) << "on_state: up, down, up again";
}

TEST(RedisConnection, ServerStoppedThenRestartedOnTheSamePort) {
    redis_server server;
    redis_fixture f;
    std::vector<bool> states;
    f.run(outage(f, server, states));
    EXPECT_EQ(states.back(), false) << "stop() is a change too";
    const std::string logs = f.logs();
    EXPECT_NE(logs.find("is down"), std::string::npos) << logs;
}

net::awaitable<void> starts_before_server(redis_fixture& f, redis_server& server) {
    server.stop();
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return f.logs().find("is down") != std::string::npos; }));
    auto r = co_await c->exec(cmd("PING"));
    EXPECT_FALSE(r.has_value());
    server.restart();
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }, 30s));
}

TEST(RedisConnection, StartsWithoutRedisAndConnectsWhenItAppears) {
    redis_server server;
    redis_fixture f;
    f.run(starts_before_server(f, server));
}

net::awaitable<void> stop_fails_pending(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    auto ex = co_await net::this_coro::executor;
    bool finished = false;
    bool failed = false;
    net::co_spawn(
        ex,
        [](std::shared_ptr<redis::connection> c, bool& finished, bool& failed) -> net::awaitable<void> {
            auto r = co_await c->exec(cmd("BLPOP", "never-pushed", "0"));
            failed = !r.has_value();
            finished = true;
        }(c, finished, failed),
        fail_on_exception);
    co_await sleep_for(50ms);
    c->stop();
    EXPECT_TRUE(co_await eventually([&] { return finished; }));
    EXPECT_TRUE(failed);
    auto later = co_await c->exec(cmd("PING"));
    EXPECT_FALSE(later.has_value());
}

TEST(RedisConnection, StopCompletesWaitingCommandsWithAnError) {
    redis_server server;
    redis_fixture f;
    f.run(stop_fails_pending(f, server));
}

// A "server" that answers the handshake's PING, then sends bytes that are not RESP.
net::awaitable<void> nonsense_server(net::ip::tcp::acceptor& acceptor) {
    auto socket = co_await acceptor.async_accept(net::use_awaitable);
    char buf[256];
    co_await socket.async_read_some(net::buffer(buf), net::use_awaitable);
    co_await net::async_write(socket, net::buffer(std::string("+PONG\r\n")), net::use_awaitable);
    co_await socket.async_read_some(net::buffer(buf), net::use_awaitable);
    co_await net::async_write(socket, net::buffer(std::string("<html>nonsense</html>\r\n")),
                              net::use_awaitable);
    co_await sleep_for(10s);
}

net::awaitable<void> nonsense(redis_fixture& f, net::ip::tcp::acceptor& acceptor) {
    redis::options o;
    o.port = acceptor.local_endpoint().port();
    o.connect_timeout = 5000ms;
    o.command_timeout = 5000ms;
    auto c = f.connect(o);
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    auto r = co_await c->exec(cmd("GET", "k"));
    EXPECT_FALSE(r.has_value());
    if (!r) {
        EXPECT_NE(r.error().message.find("protocol error"), std::string::npos) << r.error().message;
    }
    EXPECT_FALSE(c->up()) << "a reader error closes the connection";
}

TEST(RedisConnection, NonsenseFromTheServerClosesTheConnection) {
    redis_fixture f;
    net::ip::tcp::acceptor acceptor(f.ioc, {net::ip::make_address("127.0.0.1"), 0});
    net::co_spawn(f.ioc, nonsense_server(acceptor), [](std::exception_ptr) {});
    f.stops.push_back([&] { acceptor.close(); });
    f.run(nonsense(f, acceptor));
}

// A "server" that sends a reply nobody asked for in the same write as its answer to the handshake's
// PING, then answers every later read with "real"; every connection alike.
net::awaitable<void> one_reply_too_many(net::ip::tcp::socket socket) {
    char buf[256];
    auto [ec, n] = co_await socket.async_read_some(net::buffer(buf), net::as_tuple(net::use_awaitable));
    if (ec)
        co_return;
    std::tie(ec, n) = co_await net::async_write(socket, net::buffer(std::string("+PONG\r\n+EXTRA\r\n")),
                                                net::as_tuple(net::use_awaitable));
    while (!ec) {
        std::tie(ec, n) =
            co_await socket.async_read_some(net::buffer(buf), net::as_tuple(net::use_awaitable));
        if (!ec)
            std::tie(ec, n) = co_await net::async_write(socket, net::buffer(std::string("$4\r\nreal\r\n")),
                                                        net::as_tuple(net::use_awaitable));
    }
}

net::awaitable<void> one_reply_too_many_server(net::ip::tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (ec)
            co_return;
        net::co_spawn(acceptor.get_executor(), one_reply_too_many(std::move(socket)),
                      [](std::exception_ptr) {});
    }
}

net::awaitable<void> bytes_after_the_handshake(redis_fixture& f, net::ip::tcp::acceptor& acceptor) {
    redis::options o;
    o.port = acceptor.local_endpoint().port();
    auto c = f.connect(o);
    EXPECT_TRUE(co_await eventually(
        [&] { return f.logs().find("redis sent a reply to no command") != std::string::npos; }, 5s))
        << f.logs();
    for (int i = 0; i < 20; ++i) {
        auto r = co_await c->exec(cmd("GET", "k"));
        if (r) {
            EXPECT_EQ(r->text, "real") << "a reply sent with the handshake's was taken for a command's";
        }
        co_await sleep_for(10ms);
    }
}

// The reply that came in the same read as the handshake's last one is judged by the pipeline, not
// lost, and never taken for the next command's reply.
TEST(RedisConnection, AReplySentWithTheHandshakesIsAReplyToNoCommand) {
    redis_fixture f;
    net::ip::tcp::acceptor acceptor(f.ioc, {net::ip::make_address("127.0.0.1"), 0});
    net::co_spawn(f.ioc, one_reply_too_many_server(acceptor), [](std::exception_ptr) {});
    f.stops.push_back([&] { acceptor.close(); });
    f.run(bytes_after_the_handshake(f, acceptor));
}

net::awaitable<void> tls_works(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); })) << f.logs();
    auto set = co_await c->exec(cmd("SET", "over", "tls"));
    EXPECT_TRUE(set.has_value() && set->is_status("OK"));
    auto get = co_await c->exec(cmd("GET", "over"));
    EXPECT_TRUE(get.has_value() && get->text == "tls");
}

TEST(RedisTls, WorksWithTheTestCa) {
    redis_tls_setup tls;
    redis_server server(tls.files);
    redis_fixture f;
    f.run(tls_works(f, server));
}

TEST(RedisTls, WrongHostNameIsRefusedNamingTheMismatch) {
    redis_tls_setup tls;
    redis_server server(tls.files);
    redis_fixture f;
    auto o = server.client_options();
    o.host = "localhost"; // reaches the server, but its certificate names 127.0.0.1 and redis.test
    f.run(refused(f, o, "TLS handshake"));
    // OpenSSL's own reason, not the "unspecified certificate verification error" of a callback.
    EXPECT_NE(f.logs().find("hostname mismatch"), std::string::npos) << f.logs();
    EXPECT_EQ(f.logs().find("unspecified"), std::string::npos) << f.logs();
}

TEST(RedisTls, UnknownCaIsRefused) {
    redis_tls_setup tls;
    redis_server server(tls.files);
    redis_fixture f;
    auto o = server.client_options();
    o.ca_file = tls.dir + "/other-ca.pem";
    f.run(refused(f, o, "TLS handshake"));
}

TEST(RedisTls, PlainClientOnATlsPortIsNotUp) {
    redis_tls_setup tls;
    redis_server server(tls.files);
    redis_fixture f;
    auto o = server.client_options();
    o.tls = false;
    o.connect_timeout = 1000ms;
    f.run(refused(f, o, "is down"));
}

TEST(RedisTls, UnreadableCaFileIsAClearError) {
    redis::options o;
    o.tls = true;
    o.ca_file = "/nonexistent/ca.pem";
    net::io_context ioc;
    try {
        redis::connection::create(ioc.get_executor(), o, spdlog::default_logger());
        ADD_FAILURE() << "expected an error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("redis.ca_file"), std::string::npos) << e.what();
    }
}

TEST(RedisMetrics, AbsentUntilEnabled) {
    metrics m;
    EXPECT_EQ(m.serialize().find("token_broker_redis"), std::string::npos);
    m.redis_up(true); // no effect before enable_redis()
    m.enable_redis();
    m.redis_up(true);
    m.redis_undecryptable();
    const std::string text = m.serialize();
    EXPECT_NE(text.find("token_broker_redis_up 1"), std::string::npos) << text;
    EXPECT_NE(text.find("token_broker_redis_undecryptable_values_total 1"), std::string::npos) << text;
    EXPECT_NE(text.find("token_broker_redis_command_duration_seconds"), std::string::npos) << text;
    EXPECT_NE(text.find("token_broker_shared_cache_hits_total 0"), std::string::npos) << text;
    EXPECT_NE(text.find("token_broker_replica_waits_total 0"), std::string::npos) << text;
}

} // namespace
} // namespace token_broker::test
