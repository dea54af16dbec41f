// One socket to Redis, plain TCP or TLS, with the handshake every connection starts with (AUTH,
// SELECT, PING). After the handshake it carries bytes only: what they mean is for the state machine
// that reads them (pipeline for connection, subscription for subscriber). Not a public interface of
// the module. Not thread-safe: used on one strand.
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "redis/options.hpp"
#include "redis/protocol.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace token_broker::redis::detail {

// The commands a new connection sends before it is used: AUTH [user] password when a password is
// set, SELECT db when db is not 0, and PING (so that a server wanting a password it was not given
// says NOAUTH now rather than on the first real command); then, to a master the sentinels named
// (o.connect_to is target::sentinel_master), ROLE: a server that is not the master is refused.
std::vector<std::vector<std::string>> handshake_commands(const options& o);

// Why the handshake's replies (one per handshake command, in order) refuse the connection, or
// nullopt when they accept it. Never quotes the password.
std::optional<std::string> handshake_refusal(const options& o, const std::vector<reply>& replies);

// The wait before reconnecting after `failures` consecutive failures (1 for the first): 100 ms,
// doubling to at most 5 s (CONTRACT.md section 7).
std::chrono::milliseconds retry_delay(unsigned failures) noexcept;

class link : public std::enable_shared_from_this<link> {
public:
    // `tls` null: plain TCP. Does no I/O.
    link(net::any_io_executor ex, std::shared_ptr<ssl::context> tls);

    // Resolves, connects, handshakes TLS and sends the handshake commands, all within
    // o.connect_timeout; their replies are read within o.max_reply_bytes each. nullopt when the
    // connection is ready for commands, else why not (for a log line; never holds the password).
    net::awaitable<std::optional<std::string>> open(const options& o);

    // The next bytes from Redis, valid until the next call: first any that came after the
    // handshake's replies, then what each read of the socket brings (at most 16 KiB). An error
    // (errc::cache_unavailable) when the connection ended or failed; the link is unusable then.
    net::awaitable<result<std::string_view>> read_some();

    // Writes all of `bytes`; the error, if any.
    net::awaitable<beast::error_code> write(std::string_view bytes);

    // Closes the socket: operations in progress end with an error. Idempotent.
    void close();
    // close() was called.
    bool closed() const noexcept { return closed_; }

private:
    beast::tcp_stream& tcp();
    // The next reply of the handshake; an error when the connection failed or sent bytes that are not
    // RESP or a reply over o.max_reply_bytes. Takes every reply buffered before it reads more, so that
    // the reader holds at most one reply's budget and one read.
    net::awaitable<result<reply>> read_reply();

    net::any_io_executor ex_;
    std::shared_ptr<ssl::context> tls_context_;
    net::ip::tcp::resolver resolver_;
    net::steady_timer resolve_deadline_;
    std::unique_ptr<beast::tcp_stream> plain_;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
    reader reader_;               // the handshake's
    std::string after_handshake_; // bytes received with the handshake's replies but not part of them
    std::string handed_;          // after_handshake_ as handed out by read_some()
    std::array<char, 16 * 1024> buffer_{};
    bool closed_ = false;
};

} // namespace token_broker::redis::detail
