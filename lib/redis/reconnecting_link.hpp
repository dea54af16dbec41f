// The lifecycle every connection to Redis has, the command connection's and the subscription's
// alike (CONTRACT.md section 7): open a link (TCP or TLS, then AUTH, SELECT, PING), hand it to its
// user until it fails, wait (100 ms doubling to 5 s, back to 100 ms after a link that worked) and open
// another, until stopped; and while a link is in use, an optional health check that closes it when it
// fails. What the link's bytes mean is its user's (connection's pipeline, subscriber's subscription).
// Not a public interface of the module.
#pragma once

#include "core/net.hpp"
#include "redis/link.hpp"
#include "redis/options.hpp"

#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace token_broker::redis::detail {

// How the use of one link ended.
struct link_ended {
    std::string reason; // why, for a log line
    bool worked;        // the link did what it was opened for: the next wait is the first delay again
};

// Owned by a std::shared_ptr; lives on the strand it is given, where its user and callbacks run.
// start() and stop() may be called from any thread.
class reconnecting_link : public std::enable_shared_from_this<reconnecting_link> {
public:
    // Uses an opened link until it fails or is closed.
    using user = std::function<net::awaitable<link_ended>(std::shared_ptr<link>)>;
    // A link could not be opened: why (never the password).
    using refused_handler = std::function<void(const std::string& reason)>;
    // One health check of the link in use: false when it failed.
    using health_check = std::function<net::awaitable<bool>()>;

    // Does no I/O. Throws std::runtime_error naming redis.ca_file when o.tls and it cannot be loaded.
    reconnecting_link(net::any_io_executor strand, options o, std::shared_ptr<spdlog::logger> log);

    // Opens links in the background, one at a time, until stop(). Call once; `use` and `refused` are
    // called on the strand, and hold what they capture until the loop ends.
    void start(user use, refused_handler refused);

    // Closes the link in use and stops opening new ones. Idempotent.
    void stop();

    // Calls `check` every `interval` while `l` is the link in use, and closes `l` when a check
    // fails (its user then sees it fail). On the strand; at most once per link.
    void keep_checking(const std::shared_ptr<link>& l, std::chrono::milliseconds interval,
                       health_check check);

    bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
    // redis://host:port or rediss://host:port, for log lines.
    const std::string& where() const noexcept { return where_; }

private:
    struct attempt;

    static net::awaitable<void> run(std::shared_ptr<reconnecting_link> self, user use,
                                    refused_handler refused);
    static net::awaitable<void> check_while_current(std::shared_ptr<reconnecting_link> self,
                                                    std::shared_ptr<attempt> a,
                                                    std::chrono::milliseconds interval, health_check check);

    net::any_io_executor strand_;
    options opts_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<ssl::context> tls_;
    std::string where_;
    net::steady_timer backoff_;
    std::atomic<bool> stopped_{false};
    bool started_ = false;
    std::shared_ptr<attempt> current_; // the link being opened or in use
};

} // namespace token_broker::redis::detail
