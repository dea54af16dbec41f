// Load and fault tests (ctest label "stress"): many idle connections, slow-header clients, and a
// Zoom that cuts, hangs and fails under concurrent load. Loopback only; each test bounded in time.
#include "broker_harness.hpp"

#include <boost/asio/as_tuple.hpp>
#include <gtest/gtest.h>

#include <sys/resource.h>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::client;
using testing::json_body;
using testing::running_broker;

// Raises the open-file limit to the hard limit; returns the limit now in force.
rlim_t raise_fd_limit() {
    rlimit r{};
    ::getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
    ::getrlimit(RLIMIT_NOFILE, &r);
    return r.rlim_cur;
}

// Parses one value of the metrics text, e.g. "token_broker_connections_open".
double metric(const std::string& text, const std::string& name) {
    auto at = text.find("\n" + name + " ");
    if (at == std::string::npos)
        return -1;
    return std::stod(text.substr(at + name.size() + 2));
}

TEST(Stress, ThousandsOfIdleConnectionsDoNotStopTheService) {
    const auto limit = raise_fd_limit();
    // The broker is in this process: each idle connection costs two descriptors here.
    const int idle = static_cast<int>(std::min<rlim_t>(10000, (limit - 500) / 2));
    ASSERT_GE(idle, 1000) << "open-file limit too low: " << limit;
    running_broker b([&](config& c) {
        c.server.max_connections = static_cast<std::size_t>(idle) + 100;
        c.server.header_timeout = 60s;
        c.server.threads = 2;
    });
    net::io_context ioc;
    std::vector<net::ip::tcp::socket> held;
    held.reserve(static_cast<std::size_t>(idle));
    const net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), b.port());
    for (int i = 0; i < idle; ++i) {
        held.emplace_back(ioc);
        held.back().connect(ep);
    }
    // Wait until the broker has accepted them all.
    client probe(b.port());
    double open = 0;
    for (int i = 0; i < 500 && open < idle + 1; ++i) {
        open = metric(probe.get("/metrics").body(), "token_broker_connections_open");
        if (open < idle + 1)
            std::this_thread::sleep_for(10ms);
    }
    EXPECT_GE(open, idle + 1);
    // Normal traffic is still answered, at once.
    const auto start = std::chrono::steady_clock::now();
    int ok = 0;
    for (int i = 0; i < 500; ++i)
        ok += probe.get("/token/user-" + std::to_string(i % 20)).result_int() == 200;
    EXPECT_EQ(ok, 500);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
    auto fresh = testing::concurrent_gets(b.port(), "/token/user-1", 50);
    for (auto& r : fresh)
        EXPECT_EQ(r.result_int(), 200);
}

TEST(Stress, SlowHeaderClientsDoNotStarveNormalClients) {
    raise_fd_limit();
    running_broker b([](config& c) { c.server.header_timeout = 1500ms; });
    net::io_context ioc;
    std::vector<net::ip::tcp::socket> slow;
    const net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), b.port());
    for (int i = 0; i < 1000; ++i) {
        slow.emplace_back(ioc);
        slow.back().connect(ep);
        net::write(slow.back(),
                   net::buffer(std::string_view("GET /token/slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")));
    }
    client normal(b.port());
    int ok = 0;
    for (int i = 0; i < 300; ++i)
        ok += normal.get("/token/normal").result_int() == 200;
    EXPECT_EQ(ok, 300);
    // After the header timeout every slow client is closed: polled until all are, within a bound far
    // above the timeout, rather than slept for.
    std::vector<bool> seen_closed(slow.size(), false);
    int closed = 0;
    for (auto& s : slow)
        s.non_blocking(true);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (closed < 1000 && std::chrono::steady_clock::now() < deadline) {
        for (std::size_t i = 0; i < slow.size(); ++i) {
            if (seen_closed[i])
                continue;
            char c;
            beast::error_code ec;
            slow[i].read_some(net::buffer(&c, 1), ec);
            if (ec == net::error::eof || ec == net::error::connection_reset) {
                seen_closed[i] = true;
                ++closed;
            }
        }
        if (closed < 1000)
            std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(closed, 1000);
    EXPECT_EQ(b.sim.token_calls("slow"), 0u);
}

// Sends `total` requests over `parallel` connections, each to one of `users` users, and returns
// the status of every answer (0 when a connection failed).
std::vector<int> hammer(std::uint16_t port, int total, int parallel, int users) {
    net::io_context ioc;
    std::vector<int> statuses;
    std::mutex m;
    std::atomic<int> next{0};
    auto worker = [&]() -> net::awaitable<void> {
        beast::tcp_stream stream(co_await net::this_coro::executor);
        beast::flat_buffer buffer;
        bool connected = false;
        for (int i = next++; i < total; i = next++) {
            int status = 0;
            try {
                if (!connected) {
                    stream.expires_after(20s);
                    co_await stream.async_connect({net::ip::make_address("127.0.0.1"), port},
                                                  net::use_awaitable);
                    connected = true;
                }
                http::request<http::empty_body> req{http::verb::get,
                                                    "/token/storm-" + std::to_string(i % users), 11};
                req.set(http::field::host, "localhost");
                stream.expires_after(20s);
                co_await http::async_write(stream, req, net::use_awaitable);
                http::response<http::string_body> res;
                co_await http::async_read(stream, buffer, res, net::use_awaitable);
                status = static_cast<int>(res.result_int());
                if (!res.keep_alive()) {
                    stream.close();
                    connected = false;
                }
            } catch (const std::exception&) {
                stream.close();
                connected = false;
            }
            std::lock_guard lock(m);
            statuses.push_back(status);
        }
    };
    for (int i = 0; i < parallel; ++i)
        net::co_spawn(ioc, worker(), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    ioc.run();
    return statuses;
}

TEST(Stress, AFailingZoomUnderLoadLeavesEveryCallerAnsweredAndNoConnectionLeaked) {
    running_broker b([](config& c) {
        c.zoom.request_timeout = 800ms;
        c.zoom.max_connections = 8;
        c.zoom.requests_per_second = 10000;
        c.cache.negative_ttl = 0s;
    });
    ASSERT_TRUE(b.wait_ready());
    using kind = zoom_sim::fault::kind;
    for (int u = 0; u < 200; ++u) {
        const auto user = "storm-" + std::to_string(u);
        switch (u % 6) {
        case 0:
            b.sim.inject({.what = kind::cut_mid_answer, .times = -1}, user);
            break;
        case 1:
            b.sim.inject({.what = kind::hang, .times = -1}, user);
            break;
        case 2:
            b.sim.inject({.what = kind::server_error, .status = 503, .times = -1}, user);
            break;
        case 3:
            b.sim.inject({.what = kind::close_at_once, .times = 3}, user);
            break;
        case 4:
            b.sim.inject({.what = kind::delay, .delay = 50ms, .times = -1}, user);
            break;
        default:
            break; // answers normally
        }
    }
    const auto statuses = hammer(b.port(), 3000, 64, 200);
    ASSERT_EQ(statuses.size(), 3000u);
    std::map<int, int> by_status;
    for (int s : statuses)
        ++by_status[s];
    EXPECT_EQ(by_status.count(0), 0u)
        << "requests without an answer: " << (by_status.count(0) ? by_status[0] : 0);
    EXPECT_GT(by_status[200], 0);
    EXPECT_GT(by_status[502] + by_status[503] + by_status[504], 0);
    std::erase_if(by_status, [](const auto& entry) { return entry.second == 0; });
    for (auto& [status, count] : by_status)
        EXPECT_TRUE(status == 200 || status == 429 || status == 502 || status == 503 || status == 504)
            << status << " x" << count;

    // A 429 storm: every caller is answered 429 with Retry-After, and Zoom is not called meanwhile.
    b.sim.clear_faults();
    b.sim.inject({.what = kind::rate_limited, .retry_after = "30", .times = 1});
    client c(b.port());
    EXPECT_EQ(c.get("/token/storm-429-first").result_int(), 429);
    const auto calls_before = b.sim.token_calls();
    const auto limited = hammer(b.port(), 500, 32, 500);
    EXPECT_EQ(std::count(limited.begin(), limited.end(), 429) +
                  std::count(limited.begin(), limited.end(), 200),
              500);
    EXPECT_EQ(b.sim.token_calls(), calls_before);

    // No upstream connection leaked: within the pool's bound once the storm is over (the simulator
    // notices closed connections of hung requests a moment later, so allow it that moment).
    for (int i = 0; i < 300 && b.sim.open_connections() > 8; ++i)
        std::this_thread::sleep_for(10ms);
    EXPECT_LE(b.sim.open_connections(), 8u);
    // And every client connection the storm opened is closed once its client is gone.
    double open = -1;
    for (int i = 0; i < 300 && open != 1; ++i) {
        open = metric(c.get("/metrics").body(), "token_broker_connections_open");
        if (open != 1)
            std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(open, 1); // this client only
}

} // namespace
} // namespace token_broker
