// redis::subscriber and redis::script against real redis-server processes.
#include "metrics/metrics.hpp"
#include "redis/script.hpp"
#include "redis/subscriber.hpp"
#include "redis_server.hpp"
#include "redis_test_support.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace token_broker::test {
namespace {

using redis::reply;

struct received {
    std::vector<std::pair<std::string, std::string>> messages;
    int subscribed = 0;
};

std::shared_ptr<redis::subscriber> subscribe(redis_fixture& f, const redis_server& server, received& got) {
    auto s = redis::subscriber::create(
        f.ioc.get_executor(), server.client_options(), f.log, {"chan-a", "chan-b"},
        [&got](std::string_view channel, std::string_view message) {
            got.messages.emplace_back(std::string(channel), std::string(message));
        },
        [&got] { ++got.subscribed; });
    s->start();
    f.stops.push_back([s] { s->stop(); });
    return s;
}

net::awaitable<void> publications(redis_fixture& f, redis_server& server, received& got) {
    auto s = subscribe(f, server, got);
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return s->up() && c->up() && got.subscribed == 1; }));
    auto n = co_await c->exec(cmd("PUBLISH", "chan-a", std::string("hello\0there", 11)));
    EXPECT_TRUE(n.has_value() && n->integer == 1);
    co_await c->exec(cmd("PUBLISH", "chan-b", "second"));
    co_await c->exec(cmd("PUBLISH", "not-subscribed", "ignored"));
    EXPECT_TRUE(co_await eventually([&] { return got.messages.size() >= 2; }));

    server.restart();
    EXPECT_TRUE(co_await eventually([&] { return got.subscribed == 2 && s->up() && c->up(); }, 30s))
        << f.logs();
    co_await c->exec(cmd("PUBLISH", "chan-b", "after the restart"));
    EXPECT_TRUE(co_await eventually([&] { return got.messages.size() >= 3; }));
}

TEST(RedisSubscriber, ReceivesPublicationsAndResubscribesAfterARestart) {
    redis_server server;
    redis_fixture f;
    received got;
    f.run(publications(f, server, got));
    ASSERT_EQ(got.messages.size(), 3u);
    EXPECT_EQ(got.messages[0],
              (std::pair<std::string, std::string>{"chan-a", std::string("hello\0there", 11)}));
    EXPECT_EQ(got.messages[1], (std::pair<std::string, std::string>{"chan-b", "second"}));
    EXPECT_EQ(got.messages[2], (std::pair<std::string, std::string>{"chan-b", "after the restart"}));
    EXPECT_EQ(got.subscribed, 2);
}

net::awaitable<void> wrong_password(redis_fixture& f, redis_server& server, received& got) {
    auto o = server.client_options();
    o.password = secret("wrong");
    auto s = redis::subscriber::create(
        f.ioc.get_executor(), o, f.log, {"chan"}, [](std::string_view, std::string_view) {},
        [&got] { ++got.subscribed; });
    s->start();
    f.stops.push_back([s] { s->stop(); });
    EXPECT_TRUE(co_await eventually([&] { return f.logs().find("AUTH refused") != std::string::npos; }));
    EXPECT_FALSE(s->up());
    EXPECT_EQ(got.subscribed, 0);
}

TEST(RedisSubscriber, WrongPasswordNeverSubscribes) {
    redis_server server;
    redis_fixture f;
    received got;
    f.run(wrong_password(f, server, got));
}

// The health check: every answered PING reports the link alive as of when it was sent; a PING left
// unanswered (the server frozen) drops the subscription, which comes back once the server does.
net::awaitable<void> health_check(redis_fixture& f, redis_server& server, received& got,
                                  std::vector<std::chrono::steady_clock::time_point>& alive) {
    auto o = server.client_options();
    o.connect_timeout = 300ms;
    auto s = redis::subscriber::create(
        f.ioc.get_executor(), o, f.log, {"chan"}, [](std::string_view, std::string_view) {},
        [&got] { ++got.subscribed; }, 100ms,
        [&alive](std::chrono::steady_clock::time_point sent) { alive.push_back(sent); });
    s->start();
    f.stops.push_back([s] { s->stop(); });
    EXPECT_TRUE(co_await eventually([&] { return alive.size() >= 4; }, 5s)) << "SUBSCRIBE and three PINGs";

    server.pause();
    EXPECT_TRUE(co_await eventually([&] { return !s->up(); }, 5s)) << f.logs();
    EXPECT_NE(f.logs().find("did not answer a PING within 100 ms"), std::string::npos) << f.logs();
    const auto while_frozen = alive.size();
    co_await sleep_for(300ms);
    EXPECT_EQ(alive.size(), while_frozen) << "nothing proves a frozen server alive";

    server.resume();
    EXPECT_TRUE(
        co_await eventually([&] { return got.subscribed == 2 && alive.size() >= while_frozen + 2; }, 10s))
        << f.logs();
}

TEST(RedisSubscriber, HealthCheckProvesTheLinkAliveAndDropsAFrozenOne) {
    redis_server server;
    redis_fixture f;
    received got;
    std::vector<std::chrono::steady_clock::time_point> alive;
    f.run(health_check(f, server, got, alive));
    for (std::size_t i = 1; i < alive.size(); ++i)
        EXPECT_LT(alive[i - 1], alive[i]) << "each answer is for a later PING";
}

TEST(RedisSubscriber, NeedsAChannel) {
    net::io_context ioc;
    EXPECT_THROW(redis::subscriber::create(ioc.get_executor(), {}, spdlog::default_logger(), {}, {}, {}),
                 std::invalid_argument);
}

const redis::script compare_and_delete(R"(if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
else
    return 0
end)");

net::awaitable<void> scripts(redis_fixture& f, redis_server& server) {
    auto c = f.connect(server.client_options());
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));

    co_await c->exec(cmd("SET", "lock", "mine"));
    // The first run meets an empty script cache: EVALSHA answers NOSCRIPT, EVAL runs it.
    auto other = co_await compare_and_delete.run(*c, cmd("lock"), cmd("not-mine"));
    EXPECT_TRUE(other.has_value() && other->type == reply::kind::integer && other->integer == 0);
    auto loaded = co_await c->exec(cmd("SCRIPT", "EXISTS", compare_and_delete.sha1()));
    EXPECT_TRUE(loaded.has_value() && loaded->elements.size() == 1 && loaded->elements[0].integer == 1)
        << "EVAL loads the script, so later runs are EVALSHA";

    auto mine = co_await compare_and_delete.run(*c, cmd("lock"), cmd("mine"));
    EXPECT_TRUE(mine.has_value() && mine->integer == 1);

    // After SCRIPT FLUSH (as after a restart) EVALSHA fails with NOSCRIPT and the fallback runs it.
    auto flushed = co_await c->exec(cmd("SCRIPT", "FLUSH"));
    EXPECT_TRUE(flushed.has_value() && flushed->is_status("OK"));
    co_await c->exec(cmd("SET", "lock", "again"));
    auto after_flush = co_await compare_and_delete.run(*c, cmd("lock"), cmd("again"));
    EXPECT_TRUE(after_flush.has_value() && after_flush->integer == 1);
    auto gone = co_await c->exec(cmd("EXISTS", "lock"));
    EXPECT_TRUE(gone.has_value() && gone->integer == 0);

    // A script's own error is a reply.
    const redis::script failing("return redis.error_reply('NOPE from the script')");
    auto e = co_await failing.run(*c, cmd(), cmd());
    EXPECT_TRUE(e.has_value() && e->is_error() && e->text.find("NOPE") != std::string::npos);
}

TEST(RedisScript, EvalshaThenEvalAfterScriptFlush) {
    redis_server server;
    redis_fixture f;
    f.run(scripts(f, server));
    // The server saw EVALSHA and EVAL: its command statistics count both.
    const auto stats = server.command({"INFO", "commandstats"}).text;
    EXPECT_NE(stats.find("cmdstat_evalsha:calls="), std::string::npos) << stats;
    EXPECT_NE(stats.find("cmdstat_eval:calls=3"), std::string::npos) << stats;
}

// A value of the metrics text, e.g. `name{labels}`; 0 when the series is absent.
double series_value(const metrics& m, const std::string& series) {
    const std::string text = m.serialize();
    const auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size() + 2));
}

net::awaitable<void> noscript_then_eval(redis_fixture& f, redis_server& server, metrics& m) {
    auto c = f.connect(server.client_options(), &m);
    EXPECT_TRUE(co_await eventually([&] { return c->up(); }));
    // Redis knows no script yet: EVALSHA answers NOSCRIPT, then EVAL runs it; twice, after a flush.
    const redis::script fresh("return 7");
    for (int i = 0; i < 2; ++i) {
        auto flushed = co_await c->exec(cmd("SCRIPT", "FLUSH"));
        EXPECT_TRUE(flushed.has_value() && flushed->is_status("OK"));
        auto r = co_await fresh.run(*c, cmd(), cmd());
        EXPECT_TRUE(r.has_value() && r->type == reply::kind::integer && r->integer == 7);
    }
}

// NOSCRIPT is how EVALSHA asks for the script's text, not a failure: token_broker_redis_commands_total
// counts it as ok, so that its `error` series means what it says.
TEST(RedisScript, NoscriptBeforeEvalIsNotCountedAsAnError) {
    redis_server server;
    redis_fixture f;
    metrics m;
    m.enable_redis();
    f.run(noscript_then_eval(f, server, m));
    EXPECT_EQ(series_value(m, R"(token_broker_redis_commands_total{result="error"})"), 0) << m.serialize();
    // Two SCRIPT FLUSH, two EVALSHA answered NOSCRIPT, two EVAL.
    EXPECT_EQ(series_value(m, R"(token_broker_redis_commands_total{result="ok"})"), 6) << m.serialize();
}

TEST(RedisScript, Sha1IsRedisOwn) {
    // SHA-1 of "return 1", as SCRIPT LOAD answers it.
    EXPECT_EQ(redis::script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

} // namespace
} // namespace token_broker::test
