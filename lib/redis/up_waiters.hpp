// Coroutines waiting for a connection (or a cluster) to come up, each on a timer of its own that
// wake() cancels: a wait ends when the state changes or at its own deadline, whichever comes first.
// Not a public interface of the module. Used on one strand.
#pragma once

#include "core/net.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <list>
#include <memory>

namespace token_broker::redis::detail {

class up_waiters {
public:
    // Completes at `until` or at the next wake(), on `strand` (the one every call is made on).
    net::awaitable<void> wait(net::any_io_executor strand, std::chrono::steady_clock::time_point until);
    // Ends every wait under way.
    void wake();

private:
    std::list<std::shared_ptr<net::steady_timer>> timers_;
};

} // namespace token_broker::redis::detail
