// The HTTP listener: accepts connections (plain or TLS, mTLS with a client CA), reads requests with
// the header, idle and body limits of the configuration, hands each to a request_handler, and writes
// its answer. HTTP/1.1 keep-alive; pipelined requests are answered in order.
#pragma once

#include "config/config.hpp"
#include "core/net.hpp"
#include "metrics/metrics.hpp"
#include "server/message.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace token_broker {

// Answers requests. handle() runs on the connection's executor (a strand when server.threads > 1)
// and fills `res`; expected failures are answers (set_error), not exceptions. An exception that
// escapes is logged and answered 500.
class request_handler {
public:
    virtual ~request_handler() = default;

    // Answers at once when that needs no waiting (a probe, a cache hit): fills `res` and returns true.
    // Returns false, leaving `res` untouched, when the answer has to wait; handle() is called then.
    // Saves the coroutine frames of handle() on the hot path.
    virtual bool handle_now(const request&, response&) { return false; }

    virtual net::awaitable<void> handle(const request& req, response& res) = 0;
};

class http_server {
public:
    // Nothing happens until start(). `handler`, `log` and `m` must outlive the server.
    http_server(net::io_context& ioc, server_config cfg, request_handler& handler,
                std::shared_ptr<spdlog::logger> log, metrics& m);
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Binds, listens and starts accepting on the io_context.
    // Throws config_error when the TLS files cannot be used, std::system_error when the address
    // cannot be bound.
    void start();

    // The address it listens on (useful with port 0).
    net::ip::tcp::endpoint local_endpoint() const;

    // Stops accepting, closes idle connections at once and each busy one after its answer, and calls
    // `done` (on the io_context) when no connection is left, or when server.drain_timeout_ms has
    // passed, after closing those that remain. Thread-safe; call once.
    void drain(std::function<void()> done);

    // Connections open now. Thread-safe.
    std::size_t open_connections() const noexcept;

    // The per-connection state the drain and the deadlines need; internal, public for the session
    // code.
    struct connection {
        net::any_io_executor executor;
        std::function<void()> close; // set and cleared by the session, on `executor`
        bool idle = true;            // on `executor` only
        bool draining = false;       // on `executor` only
        // When the operation under way must have completed (steady_clock ticks); checked by the
        // server's deadline sweep, which closes the connection once it has passed.
        std::atomic<std::int64_t> deadline{std::numeric_limits<std::int64_t>::max()};
    };

    struct shared_state; // internal

private:
    std::shared_ptr<shared_state> state_;
};

} // namespace token_broker
