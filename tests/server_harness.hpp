// Test support: runs an http_server on a loopback port of its own, on a background thread, and a
// blocking client with a receive timeout so that no test can hang.
#pragma once

#include "log/logging.hpp"
#include "metrics/metrics.hpp"
#include "server/http_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <future>
#include <sstream>
#include <thread>

namespace token_broker::testing {

// Captures everything logged, at every level, for assertions.
struct captured_log {
    std::ostringstream stream;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink =
        std::make_shared<spdlog::sinks::ostream_sink_mt>(stream);
    std::shared_ptr<spdlog::logger> logger = [this] {
        auto l = std::make_shared<spdlog::logger>("test", sink);
        l->set_level(spdlog::level::trace);
        return l;
    }();
    std::string text() {
        logger->flush();
        return stream.str();
    }
};

class running_server {
public:
    running_server(server_config cfg, request_handler& handler, std::shared_ptr<spdlog::logger> log,
                   metrics& m)
        : server_(ioc_, with_any_port(std::move(cfg)), handler, std::move(log), m) {
        server_.start();
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~running_server() {
        ioc_.stop();
        thread_.join();
    }
    std::uint16_t port() const { return server_.local_endpoint().port(); }
    http_server& server() { return server_; }
    net::io_context& ioc() { return ioc_; }

    // Drains the server and waits until it reports that it is done.
    void drain_and_wait() {
        std::promise<void> done;
        server_.drain([&] { done.set_value(); });
        done.get_future().wait();
    }

private:
    static server_config with_any_port(server_config cfg) {
        cfg.port = 0;
        return cfg;
    }
    net::io_context ioc_;
    net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
    http_server server_;
    std::thread thread_;
};

// A blocking client connection with a receive timeout.
class client {
public:
    explicit client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5))
        : socket_(ioc_) {
        socket_.connect({net::ip::make_address("127.0.0.1"), port});
        timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    void send(std::string_view bytes) { net::write(socket_, net::buffer(bytes)); }

    // Reads one response; throws on timeout or close.
    http::response<http::string_body> read() {
        http::response_parser<http::string_body> p;
        p.body_limit(16 * 1024 * 1024);
        http::read(socket_, buffer_, p);
        return p.release();
    }

    // Reads the header of one answer to HEAD: no body follows, whatever Content-Length says.
    http::response<http::empty_body> read_head() {
        http::response_parser<http::empty_body> p;
        p.skip(true);
        http::read(socket_, buffer_, p);
        return p.release();
    }

    // Everything the server sends until it closes the connection (or the timeout passes).
    std::string read_to_end() {
        std::string all(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        buffer_.consume(buffer_.size());
        char chunk[4096];
        for (;;) {
            beast::error_code ec;
            const auto n = socket_.read_some(net::buffer(chunk), ec);
            all.append(chunk, n);
            if (ec)
                return all;
        }
    }

    http::response<http::string_body> get(std::string_view target, std::string_view extra_headers = "") {
        send("GET " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n" + std::string(extra_headers) +
             "\r\n");
        return read();
    }

    // True when the server closed the connection (reads EOF) before the timeout.
    bool closed_by_server() {
        char c;
        beast::error_code ec;
        socket_.read_some(net::buffer(&c, 1), ec);
        return ec == net::error::eof || ec == net::error::connection_reset;
    }

    net::ip::tcp::socket& socket() { return socket_; }

private:
    net::io_context ioc_;
    net::ip::tcp::socket socket_;
    beast::flat_buffer buffer_;
};

namespace detail {
inline net::awaitable<void> one_get(std::uint16_t port, std::string request,
                                    http::response<http::string_body>& out) {
    beast::tcp_stream stream(co_await net::this_coro::executor);
    stream.expires_after(std::chrono::seconds(10));
    co_await stream.async_connect({net::ip::make_address("127.0.0.1"), port}, net::use_awaitable);
    co_await net::async_write(stream, net::buffer(request), net::use_awaitable);
    beast::flat_buffer buffer;
    co_await http::async_read(stream, buffer, out, net::use_awaitable);
}
} // namespace detail

// Sends `n` requests at once, each on its own connection, and returns the answers in order.
// Throws when any of them fails.
inline std::vector<http::response<http::string_body>>
concurrent_gets(std::uint16_t port, std::string_view target, int n, std::string_view headers = "") {
    net::io_context ioc;
    std::vector<http::response<http::string_body>> answers(static_cast<std::size_t>(n));
    const std::string request =
        "GET " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n" + std::string(headers) + "\r\n";
    std::exception_ptr failure;
    for (auto& a : answers)
        net::co_spawn(ioc, detail::one_get(port, request, a), [&](std::exception_ptr e) {
            if (e && !failure)
                failure = e;
        });
    ioc.run();
    if (failure)
        std::rethrow_exception(failure);
    return answers;
}

} // namespace token_broker::testing
