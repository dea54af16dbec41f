// What the Redis tests share: an io_context to run a test's coroutine on, captured logs, and polling
// of conditions that have no event to wait on.
#pragma once

#include "core/net.hpp"
#include "redis/connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace token_broker::test {

using namespace std::chrono_literals;

// A command's arguments, cmd("SET", "k", value): GCC 12 cannot compile a braced list inside a
// co_await expression (the initializer_list's array is copied into the frame: "array used as
// initializer"), so the list is made here, outside the coroutine.
template <class... Args>
std::vector<std::string> cmd(Args&&... a) {
    return std::vector<std::string>{std::string(std::forward<Args>(a))...};
}

inline net::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
    net::steady_timer t(co_await net::this_coro::executor, d);
    co_await t.async_wait(net::use_awaitable);
}

// Waits until `condition` holds, checking every 10 ms, for at most `limit`.
inline net::awaitable<bool> eventually(std::function<bool()> condition,
                                       std::chrono::steady_clock::duration limit = 20s) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= give_up)
            co_return false;
        co_await sleep_for(10ms);
    }
    co_return true;
}

// A co_spawn handler for a test's side coroutines: an exception escaping one fails the test.
inline void fail_on_exception(std::exception_ptr e) {
    if (!e)
        return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        ADD_FAILURE() << "a coroutine ended with an exception: " << x.what();
    }
}

struct redis_fixture {
    redis_fixture() : log_text(std::make_shared<std::ostringstream>()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log_text);
        sink->set_level(spdlog::level::trace);
        log = std::make_shared<spdlog::logger>("redis-test", sink);
        log->set_level(spdlog::level::trace);
    }

    // A started connection, stopped when run() ends.
    std::shared_ptr<redis::connection> connect(redis::options o, metrics* m = nullptr) {
        auto c = redis::connection::create(ioc.get_executor(), std::move(o), log, m);
        c->start();
        stops.push_back([c] { c->stop(); });
        return c;
    }

    // Runs `body` on the io_context until it completes (at most `limit`), then stops what was
    // started and lets the io_context drain.
    void run(net::awaitable<void> body, std::chrono::seconds limit = 90s) {
        bool done = false;
        std::exception_ptr failure;
        net::co_spawn(ioc, std::move(body), [&](std::exception_ptr e) {
            done = true;
            failure = e;
            for (auto& s : stops)
                s();
        });
        ioc.run_for(limit);
        EXPECT_TRUE(done) << "the test did not finish within " << limit.count() << " s";
        for (auto& s : stops)
            s();
        ioc.restart();
        ioc.run_for(2s);
        log->flush();
        if (failure)
            std::rethrow_exception(failure);
    }

    std::string logs() const {
        log->flush();
        return log_text->str();
    }

    net::io_context ioc;
    std::shared_ptr<std::ostringstream> log_text;
    std::shared_ptr<spdlog::logger> log;
    std::vector<std::function<void()>> stops;
};

} // namespace token_broker::test
