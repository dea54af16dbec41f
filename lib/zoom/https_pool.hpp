// Kept-alive TLS connections to one origin (CONTRACT.md section 5): TLS 1.2 or later, SNI, the chain
// and the host name verified against the system store plus an optional extra CA bundle, at most
// `max_connections` in use at once, one HTTP/1.1 request/response exchange at a time on each.
#pragma once

#include "core/net.hpp"
#include "zoom/wait_queue.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace token_broker {

class metrics;

// Where the connections go.
struct origin {
    std::string host; // a DNS name or an IP literal: used to connect, for SNI, verification and Host
    std::string port; // "443"
    friend bool operator==(const origin&, const origin&) = default;
};

struct https_pool_options {
    std::size_t max_connections = 16;
    std::chrono::milliseconds connect_timeout{3000}; // resolve + TCP connect + TLS handshake
    std::size_t header_limit = 16 * 1024;            // of a response's headers
    std::size_t body_limit = 64 * 1024;              // of a response's body
    std::chrono::milliseconds idle_timeout{50000};   // a connection idle longer is closed, not reused
};

// Why an exchange produced no response.
enum class transport_failure {
    unreachable, // resolve or TCP connect failed, or did not finish within connect_timeout
    timeout,     // the exchange's deadline passed (waiting for a connection, connecting or exchanging)
    tls,         // the TLS handshake failed: certificate chain, host name, protocol version...
    closed,      // the server closed or reset the connection before the response was complete
    protocol,    // the response was not valid HTTP, or over the header or body limit
    cancelled,   // the pool was shut down
};

struct transport_error {
    transport_failure kind = transport_failure::protocol;
    std::string message; // for a person; never holds request headers
};

// Used by boost::system::result<T, transport_error>::value() when it holds an error.
[[noreturn]] void throw_exception_from_error(const transport_error& e, const boost::source_location& loc);

using https_request = http::request<http::string_body>;
using https_response = http::response<http::string_body>;
using exchange_result = boost::system::result<https_response, transport_error>;

// Not thread-safe: every member function is called on the strand given to the constructor, where the
// connections' handlers also run. Always owned by a std::shared_ptr (exchanges keep the pool alive).
class https_pool : public std::enable_shared_from_this<https_pool> {
public:
    // Does no I/O. `tls` is shared by the pool's connections; `m` counts connections opened and must
    // outlive the pool.
    https_pool(net::any_io_executor strand, std::shared_ptr<ssl::context> tls, origin where,
               https_pool_options opts, metrics& m);
    ~https_pool();
    https_pool(const https_pool&) = delete;
    https_pool& operator=(const https_pool&) = delete;

    // Sends `req` (its Host header is set here) and reads the response, all by `deadline`.
    // Waits first, in FIFO order, for one of the max_connections slots; then reuses the most
    // recently pooled connection or opens a new one. When a reused connection turns out to have
    // been closed by the server (the write fails, or the connection ends before the first byte of
    // the response), it is replaced and the request sent once more on a new connection: this is not
    // a retry of the request, only of a dead connection. After a complete response the connection
    // is pooled again unless the server asked to close it.
    // Errors: transport_error of every kind above. Runs on, and completes on, the pool's strand.
    net::awaitable<exchange_result> exchange(https_request req,
                                             std::chrono::steady_clock::time_point deadline);

    // Closes every connection (idle or in use: exchanges in progress end with `cancelled`), wakes the
    // waiters with `cancelled` and refuses later exchanges. Idempotent.
    void shutdown();

private:
    struct connection;
    struct outcome;
    class slot;

    net::awaitable<bool> acquire_slot(std::chrono::steady_clock::time_point deadline);
    void release_slot();
    std::unique_ptr<connection> take_idle();
    // Resolves, connects and handshakes; the failure, if any.
    net::awaitable<std::optional<transport_error>> connect(connection& c,
                                                           std::chrono::steady_clock::time_point deadline);
    net::awaitable<outcome> send_receive(connection& c, https_request& req,
                                         std::chrono::steady_clock::time_point deadline);

    net::any_io_executor strand_;
    std::shared_ptr<ssl::context> tls_;
    origin origin_;
    std::string host_header_;
    https_pool_options opts_;
    metrics& metrics_;

    bool closed_ = false;
    std::size_t in_use_ = 0;
    std::vector<std::unique_ptr<connection>> idle_; // the most recently used last
    std::set<connection*> busy_;                    // connecting or exchanging
    std::set<net::steady_timer*> resolve_waits_;
    wait_queue waiters_; // exchanges waiting for a slot, first come first served
};

} // namespace token_broker
