// Coroutines of one strand waiting, each up to its own deadline, to be woken by another coroutine
// of that strand. The building block of the pool's FIFO queue, the OAuth single flight and the
// cancellable sleeps of the Zoom client.
#pragma once

#include "core/net.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <list>

namespace token_broker {

// Not thread-safe: every member is called on the strand the waiting coroutines run on. Must outlive
// its waiters (owners keep it alive from the waiting coroutines, e.g. through a shared_ptr).
class wait_queue {
public:
    using clock = std::chrono::steady_clock;

    // Suspends the calling coroutine (on its own executor) until notify_one() or notify_all()
    // picks it: true; or until `deadline` passes or cancel_all() is called: false.
    net::awaitable<bool> wait_until(clock::time_point deadline);

    // Wakes the waiter that has waited longest and was not yet picked. False when there is none.
    // A waiter picked is told true even if its deadline passes before it resumes, so a resource
    // handed over this way is never lost.
    bool notify_one();

    // Wakes every waiter not yet picked, with true.
    void notify_all();

    // Wakes every waiter not yet picked, with false.
    void cancel_all();

    // True when no waiter is waiting to be picked.
    bool empty() const;

private:
    struct waiter {
        net::steady_timer* timer;
        bool picked = false;
    };
    std::list<waiter> waiters_;
};

} // namespace token_broker
