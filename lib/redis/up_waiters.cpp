#include "redis/up_waiters.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace token_broker::redis::detail {

net::awaitable<void> up_waiters::wait(net::any_io_executor strand,
                                      std::chrono::steady_clock::time_point until) {
    auto timer = std::make_shared<net::steady_timer>(strand, until);
    auto it = timers_.insert(timers_.end(), timer);
    co_await timer->async_wait(net::as_tuple(net::use_awaitable));
    timers_.erase(it);
}

void up_waiters::wake() {
    for (auto& t : timers_)
        t->cancel();
}

} // namespace token_broker::redis::detail
