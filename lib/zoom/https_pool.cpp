#include "zoom/https_pool.hpp"

#include "core/tls_client.hpp"
#include "metrics/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/throw_exception.hpp>

#include <stdexcept>

namespace token_broker {

using clock = std::chrono::steady_clock;
using tcp = net::ip::tcp;

void throw_exception_from_error(const transport_error& e, const boost::source_location& loc) {
    boost::throw_exception(std::runtime_error(e.message), loc);
}

struct https_pool::connection {
    connection(net::any_io_executor ex, ssl::context& ctx) : stream(ex, ctx) {}

    void close() {
        beast::error_code ec;
        beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
        beast::get_lowest_layer(stream).close();
    }

    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    clock::time_point idle_since;
};

struct https_pool::outcome {
    exchange_result result;
    bool nothing_received = false; // the connection ended before the first byte of a response
    bool reusable = false;
};

// A slot held by one exchange; handed back (to the next waiter, if any) when it goes out of scope.
class https_pool::slot {
public:
    explicit slot(std::shared_ptr<https_pool> pool) : pool_(std::move(pool)) {}
    ~slot() { pool_->release_slot(); }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;

private:
    std::shared_ptr<https_pool> pool_;
};

namespace {

transport_error make_transport_error(transport_failure kind, std::string message) {
    return transport_error{kind, std::move(message)};
}

// The ways a peer ends a connection: with close_notify (eof), without it (stream_truncated), or
// with a reset.
bool is_connection_end(const beast::error_code& ec) {
    return ec == net::error::eof || ec == http::error::end_of_stream || ec == http::error::partial_message ||
           ec == ssl::error::stream_truncated || ec == net::error::connection_reset ||
           ec == net::error::connection_aborted || ec == net::error::broken_pipe ||
           ec == net::error::not_connected;
}

} // namespace

https_pool::https_pool(net::any_io_executor strand, std::shared_ptr<ssl::context> tls, origin where,
                       https_pool_options opts, metrics& m)
    : strand_(std::move(strand)), tls_(std::move(tls)), origin_(std::move(where)), opts_(opts), metrics_(m) {
    host_header_ = origin_.host.find(':') != std::string::npos ? "[" + origin_.host + "]" : origin_.host;
    if (origin_.port != "443")
        host_header_ += ":" + origin_.port;
    if (opts_.max_connections == 0)
        opts_.max_connections = 1;
}

https_pool::~https_pool() = default;

void https_pool::shutdown() {
    closed_ = true;
    for (auto& c : idle_)
        c->close();
    idle_.clear();
    for (auto* c : busy_)
        c->close();
    for (auto* t : resolve_waits_)
        t->cancel();
    waiters_.cancel_all();
}

net::awaitable<bool> https_pool::acquire_slot(clock::time_point deadline) {
    if (in_use_ < opts_.max_connections && waiters_.empty()) {
        ++in_use_;
        co_return true;
    }
    // A waiter that is picked has been handed the slot of the exchange that finished.
    const bool picked = co_await waiters_.wait_until(deadline);
    if (picked && closed_) {
        release_slot();
        co_return false;
    }
    co_return picked;
}

void https_pool::release_slot() {
    if (closed_ || !waiters_.notify_one())
        --in_use_;
}

std::unique_ptr<https_pool::connection> https_pool::take_idle() {
    const auto now = clock::now();
    while (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        if (now - c->idle_since < opts_.idle_timeout)
            return c;
        c->close();
    }
    return nullptr;
}

net::awaitable<exchange_result> https_pool::exchange(https_request req, clock::time_point deadline) {
    auto self = shared_from_this();
    const auto cancelled = [] { return make_transport_error(transport_failure::cancelled, "shutting down"); };
    if (closed_)
        co_return cancelled();
    if (!co_await acquire_slot(deadline)) {
        if (closed_)
            co_return cancelled();
        co_return make_transport_error(transport_failure::timeout,
                                       "no connection to " + host_header_ + " became free in time");
    }
    const slot held(self);

    req.set(http::field::host, host_header_);
    req.keep_alive(true);

    auto conn = take_idle();
    bool reused = conn != nullptr;
    for (;;) {
        if (!conn) {
            conn = std::make_unique<connection>(strand_, *tls_);
            busy_.insert(conn.get());
            auto failure = co_await connect(*conn, deadline);
            busy_.erase(conn.get());
            if (closed_)
                co_return cancelled();
            if (failure) {
                conn->close();
                co_return std::move(*failure);
            }
        }
        busy_.insert(conn.get());
        auto out = co_await send_receive(*conn, req, deadline);
        busy_.erase(conn.get());
        if (closed_) {
            conn->close();
            co_return cancelled();
        }
        if (!out.result && out.nothing_received && reused) {
            // The server had closed the pooled connection: a new one, and the request once more.
            conn->close();
            conn.reset();
            reused = false;
            continue;
        }
        if (out.result && out.reusable) {
            conn->idle_since = clock::now();
            idle_.push_back(std::move(conn));
        } else {
            conn->close();
        }
        co_return std::move(out.result);
    }
}

net::awaitable<std::optional<transport_error>> https_pool::connect(connection& c,
                                                                   clock::time_point deadline) {
    const auto connect_deadline = std::min(deadline, clock::now() + opts_.connect_timeout);
    const auto expired = [&](const std::string& what) {
        if (connect_deadline == deadline)
            return make_transport_error(transport_failure::timeout, what + " " + host_header_ + " timed out");
        return make_transport_error(transport_failure::unreachable,
                                    what + " " + host_header_ + " did not finish within the connect timeout");
    };
    const auto executor = co_await net::this_coro::executor;

    // getaddrinfo cannot be interrupted, so the resolve is waited for with a timer instead of cancelled.
    struct resolve_state {
        explicit resolve_state(net::any_io_executor ex) : timer(ex) {}
        net::steady_timer timer;
        bool done = false;
        beast::error_code ec;
        tcp::resolver::results_type endpoints;
    };
    auto state = std::make_shared<resolve_state>(executor);
    state->timer.expires_at(connect_deadline);
    auto resolver = std::make_shared<tcp::resolver>(executor);
    resolver->async_resolve(origin_.host, origin_.port,
                            [state, resolver](beast::error_code ec, tcp::resolver::results_type endpoints) {
                                state->done = true;
                                state->ec = ec;
                                state->endpoints = std::move(endpoints);
                                state->timer.cancel();
                            });
    resolve_waits_.insert(&state->timer);
    co_await state->timer.async_wait(net::as_tuple(net::use_awaitable));
    resolve_waits_.erase(&state->timer);
    if (closed_)
        co_return make_transport_error(transport_failure::cancelled, "shutting down");
    if (!state->done) {
        resolver->cancel();
        co_return expired("resolving");
    }
    if (state->ec)
        co_return make_transport_error(transport_failure::unreachable,
                                       "cannot resolve " + origin_.host + ": " + state->ec.message());

    auto& tcp_layer = beast::get_lowest_layer(c.stream);
    tcp_layer.expires_at(connect_deadline);
    auto [connect_ec, peer] =
        co_await tcp_layer.async_connect(state->endpoints, net::as_tuple(net::use_awaitable));
    if (connect_ec == beast::error::timeout)
        co_return expired("connecting to");
    if (connect_ec)
        co_return make_transport_error(transport_failure::unreachable,
                                       "cannot connect to " + host_header_ + ": " + connect_ec.message());
    metrics_.upstream_connection_opened();

    if (!expect_peer(c.stream.native_handle(), origin_.host))
        co_return make_transport_error(transport_failure::tls, "cannot set the TLS server name");
    c.stream.set_verify_mode(ssl::verify_peer);

    tcp_layer.expires_at(connect_deadline);
    auto [handshake_ec] =
        co_await c.stream.async_handshake(ssl::stream_base::client, net::as_tuple(net::use_awaitable));
    if (handshake_ec == beast::error::timeout)
        co_return expired("the TLS handshake with");
    if (handshake_ec && is_connection_end(handshake_ec))
        co_return make_transport_error(transport_failure::closed,
                                       host_header_ + " closed the connection during the TLS handshake");
    if (handshake_ec)
        co_return make_transport_error(transport_failure::tls,
                                       "TLS handshake with " + host_header_ + " failed: " +
                                           handshake_failure(c.stream.native_handle(), handshake_ec));
    co_return std::nullopt;
}

net::awaitable<https_pool::outcome> https_pool::send_receive(connection& c, https_request& req,
                                                             clock::time_point deadline) {
    auto& tcp_layer = beast::get_lowest_layer(c.stream);
    if (clock::now() >= deadline)
        co_return outcome{
            make_transport_error(transport_failure::timeout, "no time left to ask " + host_header_)};

    tcp_layer.expires_at(deadline);
    auto [write_ec, written] = co_await http::async_write(c.stream, req, net::as_tuple(net::use_awaitable));
    if (write_ec == beast::error::timeout)
        co_return outcome{make_transport_error(transport_failure::timeout,
                                               host_header_ + " did not take the request in time")};
    if (write_ec)
        co_return outcome{
            make_transport_error(transport_failure::closed,
                                 "sending to " + host_header_ + " failed: " + write_ec.message()),
            true};

    http::response_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opts_.header_limit));
    parser.body_limit(opts_.body_limit);
    tcp_layer.expires_at(deadline);
    auto [read_ec, read] =
        co_await http::async_read(c.stream, c.buffer, parser, net::as_tuple(net::use_awaitable));
    if (read_ec == beast::error::timeout)
        co_return outcome{
            make_transport_error(transport_failure::timeout, host_header_ + " did not answer in time")};
    if (read_ec && is_connection_end(read_ec))
        co_return outcome{make_transport_error(transport_failure::closed,
                                               host_header_ +
                                                   " closed the connection before the answer was complete (" +
                                                   read_ec.message() + ")"),
                          !parser.got_some() && c.buffer.size() == 0};
    if (read_ec)
        co_return outcome{
            make_transport_error(transport_failure::protocol,
                                 "unreadable answer from " + host_header_ + ": " + read_ec.message())};
    const bool reusable = parser.get().keep_alive();
    co_return outcome{parser.release(), false, reusable};
}

} // namespace token_broker
