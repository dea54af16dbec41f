// Coroutines waiting for news that the subscription's thread brings: another replica's fetch of a key
// ended (P done), a replica confirmed a forget (P forgotten). No polling: a waiter sleeps until it is
// woken or until its own deadline.
#pragma once

#include "core/net.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace token_broker {

// One waiting coroutine. Its timer lives on a strand of its own, where both the wait and the wake
// run, so it is never touched from two threads.
class news_waiter {
public:
    explicit news_waiter(const net::any_io_executor& ex);

    // Any thread: the next sleep() (or the one under way) completes at once.
    static void wake(const std::shared_ptr<news_waiter>& w);

    // Completes when woken (at once when news came since the last sleep) or after `d`, whichever comes
    // first; on the caller's executor.
    static net::awaitable<void> sleep(std::shared_ptr<news_waiter> w, std::chrono::milliseconds d);

private:
    static net::awaitable<void> sleep_on_strand(std::shared_ptr<news_waiter> w, std::chrono::milliseconds d);

    net::strand<net::any_io_executor> strand_;
    net::steady_timer timer_;
    bool woken_ = false; // on the strand: news came since the last sleep
};

// Waiters by name (a cache entry's key name), each entered for as long as its registration lives.
// Thread-safe.
class news_board {
public:
    explicit news_board(net::any_io_executor ex) : executor_(std::move(ex)) {}

    // A waiter entered under `name` until this is destroyed. Enter it before the look whose outcome
    // it waits to change, so that news between that look and the sleep still wakes it.
    class registration {
    public:
        registration(news_board& board, const std::string& name);
        ~registration();
        registration(const registration&) = delete;
        registration& operator=(const registration&) = delete;

        net::awaitable<void> sleep(std::chrono::milliseconds d) const {
            return news_waiter::sleep(waiter_, d);
        }

    private:
        news_board& board_;
        std::shared_ptr<news_waiter> waiter_;
        std::unordered_multimap<std::string, std::shared_ptr<news_waiter>>::iterator it_;
    };

    // Wakes the waiters entered under `name`; any thread.
    void wake(std::string_view name);
    // Wakes every waiter (news may have been missed); any thread.
    void wake_all();

private:
    net::any_io_executor executor_;
    std::mutex mutex_; // guards waiters_
    std::unordered_multimap<std::string, std::shared_ptr<news_waiter>> waiters_;
};

} // namespace token_broker
