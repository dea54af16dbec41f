// The HTTP listener: accepts connections (plain or TLS, mTLS with a client CA), reads requests with
// the header, idle and body limits of the configuration, hands each to a request_handler (through a
// session, server/session.hpp), and writes its answer. HTTP/1.1 keep-alive; pipelined requests are answered
// in order.
#pragma once

#include "config/config.hpp"
#include "core/net.hpp"
#include "metrics/metrics.hpp"
#include "server/request_handler.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include <functional>
#include <memory>

namespace token_broker {

class http_server {
public:
    struct impl; // its state, defined in http_server.cpp alone

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

private:
    std::shared_ptr<impl> impl_;
};

} // namespace token_broker
