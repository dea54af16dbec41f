#include "app/application.hpp"

#include "metrics/metrics.hpp"
#include "server/http_server.hpp"
#include "server/router.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <thread>
#include <vector>

namespace token_broker {
namespace {

// Flushes the buffered log sink a few times a second, so lines reach stdout promptly.
void schedule_log_flush(net::steady_timer& timer, spdlog::logger& log) {
    timer.expires_after(std::chrono::milliseconds(200));
    timer.async_wait([&timer, &log](beast::error_code ec) {
        log.flush();
        if (!ec)
            schedule_log_flush(timer, log);
    });
}

} // namespace

int run_application(const config& cfg, std::shared_ptr<spdlog::logger> log) {
    net::io_context ioc(static_cast<int>(cfg.server.threads));
    metrics m;

    router routes(
        m, [] { return std::optional<std::string>("no Zoom client configured"); }, nullptr);
    http_server server(ioc, cfg.server, routes, log, m);
    try {
        server.start();
    } catch (const config_error& e) {
        log->critical("{}", e.what());
        log->flush();
        return 2;
    } catch (const std::exception& e) {
        log->critical("cannot listen on {}:{}: {}", cfg.server.address, cfg.server.port, e.what());
        log->flush();
        return 1;
    }
    if (cfg.auth.keys.empty())
        log->warn("no caller keys configured: every caller that can reach {}:{} may ask for tokens",
                  cfg.server.address, cfg.server.port);
    const auto ep = server.local_endpoint();
    log->info("token-broker {} listening on {}://{}:{} with {} thread(s)", TOKEN_BROKER_VERSION,
              cfg.server.tls.enabled() ? "https" : "http", ep.address().to_string(), ep.port(),
              cfg.server.threads);

    net::steady_timer flush_timer(ioc);
    schedule_log_flush(flush_timer, *log);

    net::signal_set stop_signals(ioc, SIGTERM, SIGINT);
    net::signal_set reload_signal(ioc, SIGHUP);
    std::function<void()> wait_reload = [&] {
        reload_signal.async_wait([&](beast::error_code ec, int) {
            if (ec)
                return;
            log->info("SIGHUP: nothing to reload yet");
            wait_reload();
        });
    };
    wait_reload();
    stop_signals.async_wait([&](beast::error_code ec, int signal) {
        if (ec)
            return;
        log->info("signal {}: draining connections for up to {} ms", signal,
                  cfg.server.drain_timeout.count());
        server.drain([&] {
            log->info("drained; exiting");
            beast::error_code ignored;
            reload_signal.cancel(ignored);
            flush_timer.cancel();
            ioc.stop();
        });
    });

    std::vector<std::thread> workers;
    for (unsigned i = 1; i < cfg.server.threads; ++i)
        workers.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : workers)
        t.join();
    log->flush();
    return 0;
}

} // namespace token_broker
