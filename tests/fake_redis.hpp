// A stand-in for Redis that answers what a test tells it to, for hostile replies only (where a real
// Redis serves, tests use redis_server.hpp): a TCP server on loopback (port 0, its acceptor kept
// open) that reads each command with the broker's own RESP reader, answers the handshake (AUTH,
// SELECT, the first PING of a connection) as Redis does, and every other command with what the test's
// responder returns. Runs on a thread of its own; what it saw is counted for assertions.
#pragma once

#include "core/net.hpp"
#include "redis/protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace token_broker::test {

class fake_redis {
public:
    // What to send for one command: `bytes`, then `stream` more bytes of filler (64 KiB at a time)
    // unless the client closes the connection first.
    struct answer {
        std::string bytes;
        std::size_t stream = 0;
    };
    // Called on the fake's thread with a command's arguments (its name upper-cased).
    using responder = std::function<answer(const std::vector<std::string>& command)>;

    explicit fake_redis(responder r)
        : respond_(std::move(r)), acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
        net::co_spawn(ioc_, accept_loop(), net::detached);
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~fake_redis() {
        ioc_.stop();
        thread_.join();
    }
    fake_redis(const fake_redis&) = delete;
    fake_redis& operator=(const fake_redis&) = delete;

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port()); }

    // Connections accepted, and those the client closed (end of stream, a reset, or a write refused).
    std::size_t connections() const { return connections_.load(); }
    std::size_t closed_by_client() const { return closed_.load(); }
    // The most filler bytes sent on one connection before its client closed it.
    std::size_t streamed_before_close() const { return streamed_.load(); }
    // Commands received with this name (upper case), the handshake's included.
    std::size_t commands(const std::string& name) const {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(std::count(seen_.begin(), seen_.end(), name));
    }

private:
    net::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(net::as_tuple(net::use_awaitable));
            if (ec)
                co_return;
            ++connections_;
            net::co_spawn(ioc_, serve(std::move(socket)), net::detached);
        }
    }

    net::awaitable<void> serve(net::ip::tcp::socket socket) {
        redis::reader commands;
        bool greeted = false;
        char buffer[16 * 1024];
        for (;;) {
            auto [ec, n] =
                co_await socket.async_read_some(net::buffer(buffer), net::as_tuple(net::use_awaitable));
            if (ec) {
                ++closed_;
                co_return;
            }
            commands.feed(std::string_view(buffer, n));
            for (;;) {
                auto next = commands.take();
                if (!next || !next->has_value())
                    break;
                std::vector<std::string> args;
                for (const auto& e : (*next)->elements)
                    args.push_back(e.text);
                if (args.empty())
                    continue;
                std::transform(args[0].begin(), args[0].end(), args[0].begin(),
                               [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
                {
                    std::lock_guard lock(mutex_);
                    seen_.push_back(args[0]);
                }
                answer a;
                if (args[0] == "AUTH" || args[0] == "SELECT") {
                    a.bytes = "+OK\r\n";
                } else if (args[0] == "PING" && !greeted) {
                    greeted = true;
                    a.bytes = "+PONG\r\n";
                } else {
                    a = respond_(args);
                }
                if (!co_await send(socket, a))
                    co_return;
            }
        }
    }

    // False when the client closed the connection meanwhile.
    net::awaitable<bool> send(net::ip::tcp::socket& socket, const answer& a) {
        auto [ec, n] =
            co_await net::async_write(socket, net::buffer(a.bytes), net::as_tuple(net::use_awaitable));
        const std::string filler(64 * 1024, 'x');
        std::size_t streamed = 0;
        while (!ec && streamed < a.stream) {
            std::tie(ec, n) =
                co_await net::async_write(socket, net::buffer(filler), net::as_tuple(net::use_awaitable));
            streamed += n;
        }
        if (!ec)
            co_return true;
        streamed_ = std::max(streamed_.load(), streamed);
        ++closed_;
        co_return false;
    }

    responder respond_;
    net::io_context ioc_;
    net::ip::tcp::acceptor acceptor_;
    std::thread thread_;
    std::atomic<std::size_t> connections_{0};
    std::atomic<std::size_t> closed_{0};
    std::atomic<std::size_t> streamed_{0};
    mutable std::mutex mutex_;
    std::vector<std::string> seen_;
};

} // namespace token_broker::test
