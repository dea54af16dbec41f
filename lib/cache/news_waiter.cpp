#include "cache/news_waiter.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <vector>

namespace token_broker {

news_waiter::news_waiter(const net::any_io_executor& ex) : strand_(net::make_strand(ex)), timer_(strand_) {}

void news_waiter::wake(const std::shared_ptr<news_waiter>& w) {
    net::post(w->strand_, [w] {
        w->woken_ = true;
        w->timer_.cancel();
    });
}

net::awaitable<void> news_waiter::sleep(std::shared_ptr<news_waiter> w, std::chrono::milliseconds d) {
    auto strand = w->strand_;
    co_await net::co_spawn(strand, sleep_on_strand(std::move(w), d), net::use_awaitable);
}

net::awaitable<void> news_waiter::sleep_on_strand(std::shared_ptr<news_waiter> w,
                                                  std::chrono::milliseconds d) {
    if (!std::exchange(w->woken_, false)) {
        w->timer_.expires_after(d);
        co_await w->timer_.async_wait(net::as_tuple(net::use_awaitable));
        w->woken_ = false;
    }
}

news_board::registration::registration(news_board& board, const std::string& name)
    : board_(board), waiter_(std::make_shared<news_waiter>(board.executor_)) {
    std::lock_guard lock(board_.mutex_);
    it_ = board_.waiters_.emplace(name, waiter_);
}

news_board::registration::~registration() {
    std::lock_guard lock(board_.mutex_);
    board_.waiters_.erase(it_);
}

void news_board::wake(std::string_view name) {
    std::vector<std::shared_ptr<news_waiter>> woken;
    {
        std::lock_guard lock(mutex_);
        auto [from, to] = waiters_.equal_range(std::string(name));
        for (auto it = from; it != to; ++it)
            woken.push_back(it->second);
    }
    for (auto& w : woken)
        news_waiter::wake(w);
}

void news_board::wake_all() {
    std::vector<std::shared_ptr<news_waiter>> all;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, w] : waiters_)
            all.push_back(w);
    }
    for (auto& w : all)
        news_waiter::wake(w);
}

} // namespace token_broker
