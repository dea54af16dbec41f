#include "redis/link.hpp"

#include "core/tls_client.hpp"
#include "redis/sentinel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace token_broker::redis::detail {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

broker_error connection_error(const beast::error_code& ec) {
    if (ec == net::error::eof || ec == ssl::error::stream_truncated)
        return make_error(errc::cache_unavailable, "redis closed the connection");
    if (ec == net::error::operation_aborted)
        return make_error(errc::cache_unavailable, "redis connection closed");
    return make_error(errc::cache_unavailable, "redis connection failed: " + ec.message());
}

} // namespace

std::vector<std::vector<std::string>> handshake_commands(const options& o) {
    std::vector<std::vector<std::string>> out;
    if (!o.password.empty()) {
        if (o.user.empty())
            out.push_back({"AUTH", o.password.reveal()});
        else
            out.push_back({"AUTH", o.user, o.password.reveal()});
    }
    if (o.db != 0)
        out.push_back({"SELECT", std::to_string(o.db)});
    out.push_back({"PING"});
    if (o.connect_to == target::sentinel_master)
        out.push_back({"ROLE"});
    return out;
}

std::optional<std::string> handshake_refusal(const options& o, const std::vector<reply>& replies) {
    std::size_t i = 0;
    auto next_error = [&](const char* what) -> std::optional<std::string> {
        if (i >= replies.size())
            return std::string("no answer to ") + what;
        const reply& r = replies[i++];
        if (r.is_error())
            return std::string(what) + " refused: " + r.text;
        return std::nullopt;
    };
    if (!o.password.empty())
        if (auto e = next_error("AUTH"))
            return e;
    if (o.db != 0)
        if (auto e = next_error("SELECT"))
            return e;
    if (auto e = next_error("PING"))
        return e;
    if (!replies[i - 1].is_status("PONG"))
        return std::string("PING answered with something else than PONG");
    if (o.connect_to == target::sentinel_master) {
        if (i >= replies.size())
            return std::string("no answer to ROLE");
        return role_refusal(replies[i]);
    }
    return std::nullopt;
}

std::chrono::milliseconds retry_delay(unsigned failures) noexcept {
    constexpr std::chrono::milliseconds first{100}, last{5000};
    std::chrono::milliseconds d = first;
    for (unsigned i = 1; i < failures && d < last; ++i)
        d *= 2;
    return std::min(d, last);
}

link::link(net::any_io_executor ex, std::shared_ptr<ssl::context> tls)
    : ex_(ex), tls_context_(std::move(tls)), resolver_(ex), resolve_deadline_(ex) {
    if (tls_context_)
        tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex, *tls_context_);
    else
        plain_ = std::make_unique<beast::tcp_stream>(ex);
}

beast::tcp_stream& link::tcp() {
    return tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
}

net::awaitable<std::optional<std::string>> link::open(const options& o) {
    const auto deadline = clock::now() + o.connect_timeout;
    const std::string where = o.host + ":" + std::to_string(o.port);
    reader_ = reader(o.max_reply_bytes);

    // The resolver has no deadline of its own: a timer cancels it.
    resolve_deadline_.expires_at(deadline);
    resolve_deadline_.async_wait([weak = weak_from_this()](const beast::error_code& ec) {
        if (auto self = weak.lock(); self && !ec)
            self->resolver_.cancel();
    });
    auto [resolve_ec, endpoints] =
        co_await resolver_.async_resolve(o.host, std::to_string(o.port), use_tuple);
    resolve_deadline_.cancel();
    if (closed_)
        co_return "connection closed";
    if (resolve_ec == net::error::operation_aborted)
        co_return "cannot resolve " + o.host + " within connect_timeout_ms";
    if (resolve_ec)
        co_return "cannot resolve " + o.host + ": " + resolve_ec.message();

    tcp().expires_at(deadline);
    auto [connect_ec, endpoint] = co_await tcp().async_connect(endpoints, use_tuple);
    if (connect_ec == beast::error::timeout)
        co_return "cannot connect to " + where + " within connect_timeout_ms";
    if (connect_ec)
        co_return "cannot connect to " + where + ": " + connect_ec.message();
    tcp().socket().set_option(net::ip::tcp::no_delay(true));

    if (tls_) {
        if (!expect_peer(tls_->native_handle(), o.host))
            co_return std::string("cannot set the TLS server name");
        tls_->set_verify_mode(ssl::verify_peer);
        tcp().expires_at(deadline);
        auto [handshake_ec] = co_await tls_->async_handshake(ssl::stream_base::client, use_tuple);
        if (handshake_ec == beast::error::timeout)
            co_return "no TLS handshake with " + where + " within connect_timeout_ms";
        if (handshake_ec)
            co_return "TLS handshake with " + where +
                " failed: " + handshake_failure(tls_->native_handle(), handshake_ec);
    }

    const auto commands = handshake_commands(o);
    std::string bytes;
    for (const auto& c : commands)
        bytes += format_command(std::span<const std::string>(c));
    tcp().expires_at(deadline);
    if (auto ec = co_await write(bytes))
        co_return ec == beast::error::timeout ? "cannot write to " + where + " within connect_timeout_ms"
                                              : "cannot write to " + where + ": " + ec.message();
    std::vector<reply> replies;
    while (replies.size() < commands.size()) {
        auto r = co_await read_reply();
        if (!r) {
            if (clock::now() >= deadline)
                co_return std::string("no answer to AUTH/SELECT/PING within connect_timeout_ms");
            co_return r.error().message;
        }
        replies.push_back(std::move(*r));
    }
    if (auto refused = handshake_refusal(o, replies))
        co_return *refused;
    // Redis sends nothing unasked, but whatever came is the next reader's to judge.
    after_handshake_ = reader_.unparsed();
    reader_ = reader(o.max_reply_bytes);
    tcp().expires_never();
    co_return std::nullopt;
}

net::awaitable<result<reply>> link::read_reply() {
    for (;;) {
        auto next = reader_.take();
        if (!next)
            co_return next.error();
        if (next->has_value())
            co_return std::move(**next);
        auto [ec, n] = tls_ ? co_await tls_->async_read_some(net::buffer(buffer_), use_tuple)
                            : co_await plain_->async_read_some(net::buffer(buffer_), use_tuple);
        if (ec)
            co_return connection_error(ec);
        reader_.feed(std::string_view(buffer_.data(), n));
    }
}

net::awaitable<result<std::string_view>> link::read_some() {
    if (!after_handshake_.empty()) {
        handed_ = std::exchange(after_handshake_, std::string());
        co_return std::string_view(handed_);
    }
    auto [ec, n] = tls_ ? co_await tls_->async_read_some(net::buffer(buffer_), use_tuple)
                        : co_await plain_->async_read_some(net::buffer(buffer_), use_tuple);
    if (ec)
        co_return connection_error(ec);
    co_return std::string_view(buffer_.data(), n);
}

net::awaitable<beast::error_code> link::write(std::string_view bytes) {
    auto [ec, n] = tls_ ? co_await net::async_write(*tls_, net::buffer(bytes), use_tuple)
                        : co_await net::async_write(*plain_, net::buffer(bytes), use_tuple);
    co_return ec;
}

void link::close() {
    if (closed_)
        return;
    closed_ = true;
    resolver_.cancel();
    resolve_deadline_.cancel();
    beast::error_code ignored;
    tcp().socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    tcp().close();
}

} // namespace token_broker::redis::detail
