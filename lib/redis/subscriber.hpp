// A second connection to Redis, in SUBSCRIBE mode (CONTRACT.md section 7: waiters on another
// replica's fetch are woken by a publication; forgetting a user reaches every replica). It connects,
// subscribes and re-subscribes after every break by itself, like connection (backoff 100 ms doubling
// to 5 s). Publications are at-most-once: one sent while the subscription was down is lost, which is
// why on_subscribed is called after every (re)subscription, so that callers check the state again.
//
// A half-open connection looks alive until something is sent on it: with a health check the
// subscriber PINGs on the subscribed connection every `health_check` and drops the connection when a
// PING is still unanswered at the next one. Each answer is reported (on_alive, with the time the
// PING was sent): the subscription was alive then, so every publication made before that moment has
// been delivered.
#pragma once

#include "core/net.hpp"
#include "redis/options.hpp"
#include "redis/subscription.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {

namespace detail {
class link;
class reconnecting_link;
struct link_ended;
} // namespace detail
class refusals;

// Owned by a std::shared_ptr; its state lives on a strand of its own, where the callbacks are called
// (callers that share state with other threads must synchronise). start() and stop() may be called
// from any thread.
class subscriber : public std::enable_shared_from_this<subscriber> {
public:
    using message_handler = std::function<void(std::string_view channel, std::string_view message)>;
    using alive_handler = std::function<void(std::chrono::steady_clock::time_point sent)>;

    // Does no I/O. `channels` must not be empty; `log` must not be null. Throws std::runtime_error
    // naming redis.ca_file when o.tls and it cannot be loaded.
    static std::shared_ptr<subscriber>
    create(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log,
           std::vector<std::string> channels, message_handler on_message, std::function<void()> on_subscribed,
           std::chrono::milliseconds health_check = {}, alive_handler on_alive = {});
    ~subscriber();
    subscriber(const subscriber&) = delete;
    subscriber& operator=(const subscriber&) = delete;

    // Connects and subscribes in the background; on_subscribed() once Redis confirmed every channel,
    // again after every reconnection. Its state changes are logged at debug level only: the command
    // connection logs the warning that Redis went (one warning, not two). Call once.
    void start();
    // Closes the subscription and stops reconnecting; no callback is called after it has run on the
    // strand. Call before the last shared_ptr is dropped. Idempotent.
    void stop();
    // Drops the subscription's connection and connects again without the backoff (under Sentinel,
    // asking the sentinels first). Any thread.
    void reconnect_now();
    // Subscribed to every channel now. A hint.
    bool up() const noexcept { return up_.load(std::memory_order_acquire); }
    // Where a refused SUBSCRIBE is reported (as "subscription"), and its end; null for nowhere.
    // Set it before start().
    void report_refusals(std::shared_ptr<refusals> r) { refusals_ = std::move(r); }

private:
    subscriber(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log,
               std::vector<std::string> channels, message_handler on_message,
               std::function<void()> on_subscribed, std::chrono::milliseconds health_check,
               alive_handler on_alive);
    // Subscribes on `l`, an opened link, and listens until it fails.
    static net::awaitable<detail::link_ended> use(std::shared_ptr<subscriber> self,
                                                  std::shared_ptr<detail::link> l);
    // Subscribes on `l` and delivers messages until the link fails; the reason. `subscribed` is set
    // once Redis confirmed every channel.
    net::awaitable<std::string> listen(std::shared_ptr<detail::link> l, bool& subscribed);
    // Acts on what Redis sent on `l`: calls back, and once subscribed starts the health check.
    void handle(const subscription::event& e, const std::shared_ptr<detail::link>& l,
                const std::shared_ptr<subscription>& state, bool& subscribed);
    // One health check: a PING on `l`; false when the previous one is still unanswered or the write
    // failed.
    static net::awaitable<bool> ping(std::shared_ptr<subscriber> self, std::shared_ptr<detail::link> l,
                                     std::shared_ptr<subscription> state);

    net::any_io_executor strand_;
    options opts_;
    std::shared_ptr<spdlog::logger> log_;
    std::vector<std::string> channels_;
    message_handler on_message_;
    std::function<void()> on_subscribed_;
    std::chrono::milliseconds health_check_;
    alive_handler on_alive_;
    std::shared_ptr<refusals> refusals_;
    std::shared_ptr<detail::reconnecting_link> links_;
    std::atomic<bool> up_{false};
    std::atomic<bool> stopped_{false};
};

} // namespace token_broker::redis
