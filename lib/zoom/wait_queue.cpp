#include "zoom/wait_queue.hpp"

#include <algorithm>

namespace token_broker {

net::awaitable<bool> wait_queue::wait_until(clock::time_point deadline) {
    net::steady_timer timer(co_await net::this_coro::executor, deadline);
    const auto it = waiters_.insert(waiters_.end(), waiter{&timer});
    co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    const bool picked = it->picked;
    waiters_.erase(it);
    co_return picked;
}

bool wait_queue::notify_one() {
    for (auto& w : waiters_) {
        if (!w.picked) {
            w.picked = true;
            w.timer->cancel();
            return true;
        }
    }
    return false;
}

void wait_queue::notify_all() {
    for (auto& w : waiters_) {
        if (!w.picked) {
            w.picked = true;
            w.timer->cancel();
        }
    }
}

void wait_queue::cancel_all() {
    for (auto& w : waiters_)
        if (!w.picked)
            w.timer->cancel();
}

bool wait_queue::empty() const {
    return std::none_of(waiters_.begin(), waiters_.end(), [](const waiter& w) { return !w.picked; });
}

} // namespace token_broker
