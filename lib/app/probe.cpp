#include "app/probe.hpp"

#include "core/net.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>

namespace token_broker {
namespace {

using tcp = net::ip::tcp;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
// A health answer is a few bytes; this only bounds what a wrong server could make us read.
constexpr std::uint64_t max_body_bytes = 64 * 1024;

// What the exchange is doing, for the message when the deadline passes.
struct progress {
    const char* step = "resolving the host";
};

// HOST:PORT, with an IPv6 address in brackets: for the Host header and the URL.
std::string authority(const probe_target& target) {
    const bool ipv6 = target.host.find(':') != std::string::npos;
    return (ipv6 ? "[" + target.host + "]" : target.host) + ":" + std::to_string(target.port);
}

std::string failed(const probe_target& target, std::string_view what) {
    return "GET " + probe_url(target) + ": " + std::string(what);
}

net::awaitable<probe_result> exchange(tcp::resolver& resolver, beast::tcp_stream& stream,
                                      const probe_target& target, progress& now) {
    auto [resolve_ec, endpoints] = co_await resolver.async_resolve(target.host, std::to_string(target.port),
                                                                   tcp::resolver::numeric_service, use_tuple);
    if (resolve_ec)
        co_return probe_result{false, failed(target, "cannot resolve the host: " + resolve_ec.message())};

    now.step = "connecting";
    auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, use_tuple);
    if (connect_ec)
        co_return probe_result{false, failed(target, "cannot connect: " + connect_ec.message())};

    now.step = "sending the request";
    http::request<http::empty_body> request(http::verb::get, target.target, 11);
    request.set(http::field::host, authority(target));
    request.set(http::field::user_agent, "token-broker-probe/" TOKEN_BROKER_VERSION);
    request.set(http::field::connection, "close");
    auto [write_ec, written] = co_await http::async_write(stream, request, use_tuple);
    if (write_ec)
        co_return probe_result{false, failed(target, "cannot send the request: " + write_ec.message())};

    now.step = "waiting for the answer";
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_body_bytes);
    auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (read_ec)
        co_return probe_result{false, failed(target, "no valid answer: " + read_ec.message())};

    const auto& response = parser.get();
    if (response.result() == http::status::ok)
        co_return probe_result{true, {}};
    co_return probe_result{false, failed(target, "answered " + std::to_string(response.result_int()) + " " +
                                                     std::string(response.reason()))};
}

} // namespace

std::string probe_url(const probe_target& target) {
    return "http://" + authority(target) + target.target;
}

probe_result run_probe(const probe_target& target, std::chrono::milliseconds timeout) {
    net::io_context ioc(1);
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    progress now;
    std::optional<probe_result> result;
    net::co_spawn(
        ioc, exchange(resolver, stream, target, now),
        [&result, &target](std::exception_ptr error, probe_result r) {
            result = error ? probe_result{false, failed(target, "unexpected failure")} : std::move(r);
        });
    ioc.run_for(timeout);
    if (result)
        return *result;

    // The deadline passed: cancel what is under way and let the exchange finish before returning.
    const std::string step = now.step;
    resolver.cancel();
    stream.close();
    ioc.restart();
    ioc.run();
    return {false,
            failed(target, "no answer within " + std::to_string(timeout.count()) + " ms (" + step + ")")};
}

} // namespace token_broker
