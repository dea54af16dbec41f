#include "server/http_server.hpp"

#include "config/tls_files.hpp"
#include "server/session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace token_broker {
namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

// The per-connection state the drain and the deadlines need.
struct connection {
    net::any_io_executor executor;
    std::function<void()> close; // set and cleared by the session, on `executor`
    bool idle = true;            // on `executor` only
    bool draining = false;       // on `executor` only
    // When the operation under way must have completed (steady_clock ticks); checked by the
    // server's deadline sweep, which closes the connection once it has passed.
    std::atomic<std::int64_t> deadline{std::numeric_limits<std::int64_t>::max()};
};

} // namespace

struct http_server::impl : std::enable_shared_from_this<http_server::impl> {
    impl(net::io_context& io, server_config c, request_handler& h, std::shared_ptr<spdlog::logger> l,
         metrics& mt)
        : ioc(io), cfg(std::move(c)), handler(h), log(std::move(l)), m(mt), acceptor(net::make_strand(io)),
          drain_timer(acceptor.get_executor()), sweep_timer(acceptor.get_executor()) {}

    net::io_context& ioc;
    const server_config cfg;
    request_handler& handler;
    std::shared_ptr<spdlog::logger> log;
    metrics& m;
    net::ip::tcp::acceptor acceptor;
    std::optional<ssl::context> tls;
    net::steady_timer drain_timer;
    net::steady_timer sweep_timer;
    std::atomic<std::size_t> open{0};
    // steady_clock::now() as of the last sweep: deadlines are set from it, so that setting one costs
    // no clock reading; they are at most one sweep period late.
    std::atomic<std::int64_t> coarse_now{std::chrono::steady_clock::now().time_since_epoch().count()};

    std::mutex mutex; // guards the members below
    std::unordered_map<std::uint64_t, std::shared_ptr<connection>> connections;
    std::uint64_t next_id = 0;
    bool draining = false;
    std::function<void()> on_drained;

    std::pair<std::uint64_t, std::shared_ptr<connection>> add_connection(net::any_io_executor ex) {
        auto conn = std::make_shared<connection>();
        conn->executor = std::move(ex);
        std::lock_guard lock(mutex);
        conn->draining = draining;
        auto id = next_id++;
        connections.emplace(id, conn);
        return {id, conn};
    }

    void remove_connection(std::uint64_t id) {
        bool last = false;
        {
            std::lock_guard lock(mutex);
            connections.erase(id);
            last = draining && connections.empty();
        }
        if (last)
            net::post(acceptor.get_executor(), [self = shared_from_this()] { self->finish_drain(); });
    }

    // Asks every connection to close: all of them, or only those waiting for a request.
    void close_connections(bool idle_only) {
        std::lock_guard lock(mutex);
        // An init-capture, not [conn]: clang before 16 cannot capture a structured binding.
        for (auto& [id, entry] : connections)
            net::post(entry->executor, [conn = entry, idle_only] {
                conn->draining = true;
                if ((conn->idle || !idle_only) && conn->close)
                    conn->close();
            });
    }

    // Sets the deadline of the operation `conn` is about to start.
    void arm(connection& conn, std::chrono::milliseconds timeout) const {
        conn.deadline.store(
            coarse_now.load(std::memory_order_relaxed) +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout).count(),
            std::memory_order_relaxed);
    }

    // Lifts the deadline: `conn` is answering a request, which has deadlines of its own.
    static void disarm(connection& conn) {
        conn.deadline.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed);
    }

    // How often deadlines are checked: a quarter of the shortest timeout, within 10..250 ms.
    std::chrono::milliseconds sweep_period() const {
        auto shortest = std::min(cfg.header_timeout, cfg.idle_timeout);
        return std::clamp<std::chrono::milliseconds>(shortest / 4, std::chrono::milliseconds(10),
                                                     std::chrono::milliseconds(250));
    }

    // Closes every connection whose operation has overrun its deadline. A per-connection timer
    // (beast::tcp_stream's) would cost a timer operation per read and write, more than the whole
    // cache-hit answer; one sweep a few times a second costs next to nothing.
    void sweep() {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        coarse_now.store(now, std::memory_order_relaxed);
        {
            std::lock_guard lock(mutex);
            // An init-capture, not [conn]: clang before 16 cannot capture a structured binding.
            for (auto& [id, entry] : connections)
                if (entry->deadline.load(std::memory_order_relaxed) <= now)
                    net::post(entry->executor, [conn = entry, now] {
                        if (conn->deadline.load(std::memory_order_relaxed) <= now && conn->close)
                            conn->close();
                    });
        }
        sweep_timer.expires_after(sweep_period());
        sweep_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (!ec)
                self->sweep();
        });
    }

    void finish_drain() {
        std::function<void()> done;
        {
            std::lock_guard lock(mutex);
            done = std::exchange(on_drained, nullptr);
        }
        drain_timer.cancel();
        sweep_timer.cancel();
        if (done)
            done();
    }
};

namespace {

using impl_ptr = std::shared_ptr<http_server::impl>;

// Answers requests on one connection until it closes, the peer goes quiet or the server drains.
template <class Stream>
net::awaitable<void> serve_requests(http_server::impl& srv, Stream& stream, connection& conn) {
    const auto& cfg = srv.cfg;
    session s(cfg, srv.handler, srv.m, *srv.log);
    bool first = true;

    for (;;) {
        conn.idle = true;
        if (conn.draining)
            break;
        // A new connection gets header_timeout for its first request; a kept-alive one may wait
        // idle_timeout for the next.
        srv.arm(conn, first ? cfg.header_timeout : cfg.idle_timeout);
        auto step = s.parse();
        while (step == session::step::read) {
            auto [ec, n] = co_await stream.async_read_some(s.read_space(), use_tuple);
            if (conn.idle && !ec && n > 0) {
                conn.idle = false;
                srv.arm(conn, cfg.header_timeout);
            }
            if (ec) {
                // The error codes are compared only after a failed read, not after every read.
                const bool ended = ec == net::error::eof || ec == ssl::error::stream_truncated;
                step = ended ? s.end_of_input() : session::step::close;
                break;
            }
            s.received(n);
            step = s.parse();
        }
        if (step == session::step::close)
            break;
        conn.idle = false;
        first = false;

        // The request is read: header_timeout no longer applies. Its answer comes within the
        // answer's own deadlines (the token service's and the batch's), and the caller gets it.
        srv.disarm(conn);
        if (!s.answer())
            co_await s.complete();

        const auto out = s.output(conn.draining);
        // A caller that takes none of its answer for as long as it had to send a request's head is
        // gone; between requests idle_timeout applies again.
        srv.arm(conn, cfg.header_timeout);
        beast::error_code wec;
        for (std::size_t sent = 0; sent < out.size() && !wec;) {
            auto [e, n] = co_await stream.async_write_some(net::buffer(out.data() + sent, out.size() - sent),
                                                           use_tuple);
            wec = e;
            sent += n;
        }
        if (!s.sent() || wec)
            break;
    }
}

template <class Stream>
net::awaitable<void> close_gracefully(http_server::impl& srv, Stream& stream, connection& conn) {
    auto& socket = beast::get_lowest_layer(stream);
    if constexpr (!std::is_same_v<Stream, net::ip::tcp::socket>) {
        srv.arm(conn, std::chrono::seconds(1));
        co_await stream.async_shutdown(use_tuple);
    }
    beast::error_code ignored;
    socket.shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    if constexpr (std::is_same_v<Stream, net::ip::tcp::socket>) {
        // Lingering close: read what the peer still sends (the rest of a refused body, say) for a
        // moment, so that closing does not reset the connection before it has read our answer.
        char scratch[4096];
        std::size_t discarded = 0;
        srv.arm(conn, std::chrono::milliseconds(500));
        while (discarded < 1024 * 1024) {
            auto [ec, n] = co_await socket.async_read_some(net::buffer(scratch), use_tuple);
            if (ec)
                break;
            discarded += n;
        }
    }
    socket.close(ignored);
}

net::awaitable<void> run_connection(impl_ptr srv, net::ip::tcp::socket socket) {
    auto [id, conn] = srv->add_connection(socket.get_executor());
    srv->m.connection_opened();
    if (srv->tls) {
        ssl::stream<net::ip::tcp::socket> stream(std::move(socket), *srv->tls);
        conn->close = [&stream] {
            beast::error_code ignored;
            beast::get_lowest_layer(stream).close(ignored);
        };
        srv->arm(*conn, srv->cfg.header_timeout);
        auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
        if (!ec) {
            co_await serve_requests(*srv, stream, *conn);
            co_await close_gracefully(*srv, stream, *conn);
        } else {
            srv->log->debug("TLS handshake failed: {}", ec.message());
        }
        conn->close = nullptr;
    } else {
        conn->close = [&socket] {
            beast::error_code ignored;
            socket.close(ignored);
        };
        co_await serve_requests(*srv, socket, *conn);
        co_await close_gracefully(*srv, socket, *conn);
        conn->close = nullptr;
    }
    srv->m.connection_closed();
    srv->open.fetch_sub(1, std::memory_order_relaxed);
    srv->remove_connection(id);
}

net::awaitable<void> accept_loop(impl_ptr srv) {
    net::steady_timer backoff(srv->acceptor.get_executor());
    for (;;) {
        net::any_io_executor ex = srv->cfg.threads > 1 ? net::any_io_executor(net::make_strand(srv->ioc))
                                                       : net::any_io_executor(srv->ioc.get_executor());
        auto [ec, socket] = co_await srv->acceptor.async_accept(ex, use_tuple);
        if (!srv->acceptor.is_open() || ec == net::error::operation_aborted)
            co_return;
        if (ec) {
            // Out of file descriptors, usually: wait a little rather than spin.
            srv->log->warn("accept failed: {}", ec.message());
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        if (srv->open.load(std::memory_order_relaxed) >= srv->cfg.max_connections) {
            srv->m.connection_rejected();
            beast::error_code ignored;
            socket.close(ignored);
            continue;
        }
        srv->open.fetch_add(1, std::memory_order_relaxed);
        beast::error_code ignored;
        socket.set_option(net::ip::tcp::no_delay(true), ignored);
        auto socket_ex = socket.get_executor();
        net::co_spawn(socket_ex, run_connection(srv, std::move(socket)), [srv](std::exception_ptr e) {
            if (!e)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                srv->log->error("connection ended by an unexpected error: {}", ex.what());
            }
        });
    }
}

} // namespace

http_server::http_server(net::io_context& ioc, server_config cfg, request_handler& handler,
                         std::shared_ptr<spdlog::logger> log, metrics& m)
    : impl_(std::make_shared<impl>(ioc, std::move(cfg), handler, std::move(log), m)) {}

http_server::~http_server() {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
}

void http_server::start() {
    auto& s = *impl_;
    if (s.cfg.tls.enabled()) {
        s.tls.emplace(make_listener_tls_context(s.cfg.tls));
    }
    const auto address = s.cfg.address == "localhost" ? net::ip::make_address("127.0.0.1")
                                                      : net::ip::make_address(s.cfg.address);
    const net::ip::tcp::endpoint ep(address, s.cfg.port);
    s.acceptor.open(ep.protocol());
    s.acceptor.set_option(net::socket_base::reuse_address(true));
    s.acceptor.bind(ep);
    s.acceptor.listen(net::socket_base::max_listen_connections);
    s.sweep();
    net::co_spawn(s.acceptor.get_executor(), accept_loop(impl_), [st = impl_](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            st->log->critical("the listener stopped: {}", ex.what());
        }
    });
}

net::ip::tcp::endpoint http_server::local_endpoint() const {
    return impl_->acceptor.local_endpoint();
}

std::size_t http_server::open_connections() const noexcept {
    return impl_->open.load(std::memory_order_relaxed);
}

void http_server::drain(std::function<void()> done) {
    net::post(impl_->acceptor.get_executor(), [s = impl_, done = std::move(done)]() mutable {
        bool empty = false;
        {
            std::lock_guard lock(s->mutex);
            s->draining = true;
            s->on_drained = std::move(done);
            empty = s->connections.empty();
        }
        beast::error_code ignored;
        s->acceptor.close(ignored);
        if (empty) {
            s->finish_drain();
            return;
        }
        s->close_connections(true);
        s->drain_timer.expires_after(s->cfg.drain_timeout);
        s->drain_timer.async_wait([s](beast::error_code ec) {
            if (ec)
                return;
            s->log->warn("drain timeout: closing {} connections still busy", s->open.load());
            s->close_connections(false);
            s->finish_drain();
        });
    });
}

} // namespace token_broker
