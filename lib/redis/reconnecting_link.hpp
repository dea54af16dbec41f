// The lifecycle every connection to Redis has, the command connection's and the subscription's
// alike (CONTRACT.md section 7): open a link (TCP or TLS, then AUTH, SELECT, PING), hand it to its
// user until it fails, wait (100 ms doubling to 5 s, back to 100 ms after a link that worked) and open
// another, until stopped; and while a link is in use, an optional health check that closes it when it
// fails. What the link's bytes mean is its user's (connection's pipeline, subscriber's subscription).
// Not a public interface of the module.
//
// Under Sentinel (options::connect_to is target::sentinel_master) every link, the first and each
// after a break, starts by asking the sentinels in turn for the master's address and opening a link
// there, whose handshake checks ROLE: the first sentinel whose answer is the master wins and is asked
// first next time; a sentinel that names a server that is not the master (or none) is passed over
// for the next. When none does, the attempt failed like any other (backoff, then the sentinels
// again). With
// target::sentinels the links go to the sentinels themselves, the next one after each failure.
#pragma once

#include "core/net.hpp"
#include "redis/link.hpp"
#include "redis/options.hpp"
#include "redis/reply.hpp"
#include "redis/sentinel.hpp"

#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

    // Closes the link in use (or being opened) and opens another without waiting for the backoff:
    // under Sentinel, after asking the sentinels again (a +switch-master was heard). Any thread.
    void reconnect_now();

    // Calls `check` every `interval` while `l` is the link in use, and closes `l` when a check
    // fails (its user then sees it fail). On the strand; at most once per link.
    void keep_checking(const std::shared_ptr<link>& l, std::chrono::milliseconds interval,
                       health_check check);

    bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
    // redis://host:port or rediss://host:port, for log lines; under Sentinel the master last found
    // and the master's name. On the strand.
    const std::string& where() const noexcept { return where_; }

private:
    struct attempt;

    static net::awaitable<void> run(std::shared_ptr<reconnecting_link> self, user use,
                                    refused_handler refused);
    // Opens a->l where the next link goes: opts_ itself, the next sentinel, or under Sentinel the
    // master that the first sentinel whose answer passes the handshake (ROLE included) names; why
    // not, for the log.
    net::awaitable<std::optional<std::string>> open_next(std::shared_ptr<attempt> a);
    // One command to the sentinel `so` describes, on a link of its own, within so.connect_timeout
    // and then so.command_timeout.
    net::awaitable<result<reply>> ask(const options& so, std::vector<std::string> command);
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
    std::shared_ptr<attempt> current_;       // the link being opened or in use
    std::shared_ptr<link> asking_;           // the link to a sentinel being asked, if any
    std::optional<sentinel_list> sentinels_; // under Sentinel (either target)
    std::size_t next_sentinel_ = 0;          // target::sentinels and cluster: where the next link goes
    bool skip_backoff_ = false;              // reconnect_now() was called
};

} // namespace token_broker::redis::detail
