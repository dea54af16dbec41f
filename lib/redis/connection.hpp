// One pipelined connection to Redis (CONTRACT.md section 7): commands are written as they come and
// Redis answers them in order, each within options::command_timeout. It connects and reconnects in
// the background (backoff 100 ms doubling to 5 s) and never makes a caller wait for that: while it is
// down, commands fail at once, and the broker carries on as a lone replica.
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "redis/client.hpp"
#include "redis/options.hpp"
#include "redis/reply.hpp"

#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

namespace token_broker {
class metrics;
enum class redis_command_result;
} // namespace token_broker

namespace token_broker::redis {

namespace detail {
class link;
class reconnecting_link;
struct link_ended;

// The start of the error of a command that had no reply within its timeout.
inline constexpr std::string_view no_answer = "redis did not answer within";
// errc::cache_unavailable with `message`.
result<reply> unavailable(std::string message);
// How token_broker_redis_commands_total counts a command that ended with `r`.
redis_command_result outcome_of(const result<reply>& r);
} // namespace detail

// Owned by a std::shared_ptr. Its state lives on a strand of its own, so exec() may be awaited from
// any executor, and completes on the awaiting coroutine's executor. The other members may be called
// from any thread.
class connection : public client, public std::enable_shared_from_this<connection> {
public:
    // Does no I/O. `log` must not be null. `m`, when given, counts commands (outcome and duration)
    // and shows token_broker_redis_up; it must have had enable_redis() called and outlive the
    // connection. Throws std::runtime_error naming redis.ca_file when o.tls and it cannot be loaded.
    static std::shared_ptr<connection> create(net::any_io_executor ex, options o,
                                              std::shared_ptr<spdlog::logger> log, metrics* m = nullptr);
    ~connection() override;

    // Starts connecting in the background: TCP or TLS (system store plus ca_file, host name verified),
    // AUTH [user] password, SELECT db, PING; on any failure it retries with backoff (100 ms doubling
    // to 5 s, back to 100 ms after a success). Logs one warning when Redis goes (with the reason, never
    // the password) and one info line when it is back; retries in between are logged at debug.
    // Call once.
    void start() override;

    // Closes the connection and stops reconnecting: commands waiting for a reply complete with an
    // error, later ones fail at once. Call it before the last shared_ptr is dropped (the background
    // loop keeps the connection alive until then). Idempotent.
    void stop() override;

    // Connected and the handshake accepted.
    bool up() const noexcept override { return up_.load(std::memory_order_acquire); }
    net::awaitable<bool> wait_up(std::chrono::steady_clock::time_point until) override;
    // `f` is called on the connection's strand.
    void on_state(std::function<void(bool up)> f) override;

    // A command without a reply within its timeout drops the connection, which is made again.
    net::awaitable<result<reply>> exec(std::vector<std::string> args) override;
    net::awaitable<result<reply>> exec(std::vector<std::string> args,
                                       std::chrono::milliseconds timeout) override;
    // ASKING, then `args` right behind it on this connection with nothing in between (a cluster
    // node importing the slot of an -ASK answer); completes with the command's reply.
    net::awaitable<result<reply>> exec_asking(std::vector<std::string> args);

    // Under Sentinel, wait_for_replica(); at once otherwise (the single server is all there is).
    net::awaitable<result<void>> confirm_replicated(std::string_view key) override;
    // WAIT 1 on this connection, for half of command_timeout (the commands pipelined behind it wait
    // for it, and must keep within their own command_timeout): every write this connection carried
    // before the call is on at least one Redis replica; errc::cache_unavailable when none confirmed.
    net::awaitable<result<void>> wait_for_replica();

    // Under Sentinel it asks the sentinels for the master first.
    void reconnect_now() override;

private:
    struct pending;
    struct session;

    connection(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log, metrics* m);

    // Carries commands on `l`, an opened link, until it fails or is dropped.
    static net::awaitable<detail::link_ended> use(std::shared_ptr<connection> self,
                                                  std::shared_ptr<detail::link> l);
    net::awaitable<void> read_replies(std::shared_ptr<session> s);
    net::awaitable<void> write_queued(std::shared_ptr<session> s);
    // With `asking`, ASKING goes right before the command.
    net::awaitable<result<reply>> exec_on_strand(std::vector<std::string> args,
                                                 std::chrono::milliseconds timeout, bool asking = false);
    // The health check of options::health_check, on the strand: true when a reply came within the
    // interval, else when PING (ROLE under Sentinel) is answered as it should be.
    net::awaitable<bool> check_health(std::shared_ptr<session> s);
    net::awaitable<bool> wait_up_on_strand(std::chrono::steady_clock::time_point until);
    void wake_up_waiters();
    void flush(const std::shared_ptr<session>& s);
    void drop(session& s, const std::string& reason);
    void set_state(bool up, const std::string& reason);

    net::any_io_executor strand_;
    options opts_;
    std::shared_ptr<spdlog::logger> log_;
    metrics* metrics_;
    std::shared_ptr<detail::reconnecting_link> links_;
    std::function<void(bool)> on_state_;
    std::atomic<bool> up_{false};
    std::atomic<bool> stopped_{false};
    bool reported_ = false;            // a state was logged at warning/info level already
    std::shared_ptr<session> current_; // the session in use
    std::list<std::shared_ptr<net::steady_timer>> up_waiters_; // wait_up() calls, on the strand
};

} // namespace token_broker::redis
