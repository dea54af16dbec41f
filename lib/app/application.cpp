#include "app/application.hpp"

#include "auth/auth.hpp"
#include "cache/token_service.hpp"
#include "metrics/metrics.hpp"
#include "server/http_server.hpp"
#include "server/router.hpp"
#include "server/token_endpoint.hpp"
#include "zoom/zoom_client.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace token_broker {

struct application::impl {
    impl(config c, std::shared_ptr<spdlog::logger> l)
        : cfg(std::move(c)), log(std::move(l)), ioc(static_cast<int>(cfg.server.threads)),
          zoom(ioc.get_executor(), cfg.zoom, log, m), tokens(ioc.get_executor(), zoom, cfg.cache, m, log),
          endpoint(tokens, std::make_shared<const authenticator>(cfg.auth.keys), cfg.log.format, log,
                   cfg.zoom.request_timeout),
          routes(
              m, [this] { return readiness(); }, &endpoint),
          server(ioc, cfg.server, routes, log, m), flush_timer(ioc), signals(ioc), reload_signal(ioc) {}

    std::optional<std::string> readiness() const {
        auto r = zoom.ready();
        if (r.ready)
            return std::nullopt;
        return r.reason;
    }

    // Flushes the buffered log sink a few times a second, so lines reach stdout promptly.
    void schedule_log_flush() {
        flush_timer.expires_after(std::chrono::milliseconds(200));
        flush_timer.async_wait([this](beast::error_code ec) {
            log->flush();
            if (!ec)
                schedule_log_flush();
        });
    }

    void wait_for_reload() {
        reload_signal.async_wait([this](beast::error_code ec, int) {
            if (ec)
                return;
            reload_keys();
            wait_for_reload();
        });
    }

    bool reload_keys() {
        if (cfg.auth.keys_file.empty()) {
            log->info("SIGHUP: no auth.keys_file to reload");
            return false;
        }
        try {
            auto keys = reload_caller_keys(cfg.auth);
            const auto count = keys.size();
            endpoint.replace_keys(std::make_shared<const authenticator>(std::move(keys)));
            log->info("reloaded caller keys from {}: {} key(s) in all", cfg.auth.keys_file, count);
            return true;
        } catch (const std::exception& e) {
            log->error("keeping the current caller keys: {}", e.what());
            return false;
        }
    }

    void drain() {
        if (draining.exchange(true))
            return;
        log->info("draining connections for up to {} ms", cfg.server.drain_timeout.count());
        server.drain([this] {
            log->info("drained; exiting");
            beast::error_code ignored;
            signals.cancel(ignored);
            reload_signal.cancel(ignored);
            flush_timer.cancel();
            zoom.stop();
            ioc.stop();
        });
    }

    const config cfg;
    std::shared_ptr<spdlog::logger> log;
    metrics m;
    net::io_context ioc;
    zoom_client zoom;
    token_service tokens;
    token_endpoint endpoint;
    router routes;
    http_server server;
    net::steady_timer flush_timer;
    net::signal_set signals;
    net::signal_set reload_signal;
    std::atomic<bool> draining{false};
};

application::application(config cfg, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<impl>(std::move(cfg), std::move(log))) {}

application::~application() = default;

void application::start() {
    auto& p = *impl_;
    p.server.start();
    if (p.cfg.auth.keys.empty())
        p.log->warn("no caller keys configured: every caller that can reach {}:{} may ask for tokens",
                    p.cfg.server.address, port());
    p.log->info("token-broker {} listening on {}://{}:{} with {} thread(s) and {} caller key(s); Zoom at {}",
                TOKEN_BROKER_VERSION, p.cfg.server.tls.enabled() ? "https" : "http", p.cfg.server.address,
                port(), p.cfg.server.threads, p.cfg.auth.keys.size(), p.cfg.zoom.api_base_url);
    p.zoom.start();
    p.schedule_log_flush();
}

std::uint16_t application::port() const {
    return impl_->server.local_endpoint().port();
}

void application::run(bool handle_signals) {
    auto& p = *impl_;
    if (handle_signals) {
        p.signals.add(SIGTERM);
        p.signals.add(SIGINT);
        p.reload_signal.add(SIGHUP);
        p.signals.async_wait([&p](beast::error_code ec, int signal) {
            if (ec)
                return;
            p.log->info("received signal {}", signal);
            p.drain();
        });
        p.wait_for_reload();
    }
    std::vector<std::thread> workers;
    for (unsigned i = 1; i < p.cfg.server.threads; ++i)
        workers.emplace_back([&p] { p.ioc.run(); });
    p.ioc.run();
    for (auto& t : workers)
        t.join();
    p.log->flush();
}

void application::stop() {
    net::post(impl_->ioc, [p = impl_.get()] { p->drain(); });
}

bool application::reload_keys() {
    return impl_->reload_keys();
}

metrics& application::service_metrics() {
    return impl_->m;
}

int run_application(const config& cfg, std::shared_ptr<spdlog::logger> log, std::ostream& errors) {
    // The line that explains an exit goes to `errors` whatever the log level (even "off"), and to
    // the log as well, for whoever reads only the log. On stderr it reads as main's own errors do:
    // "config: <key>: ..." for a configuration error, "token-broker: ..." for anything else.
    auto fail = [&](int status, const std::string& line) {
        log->critical("{}", line);
        log->flush();
        errors << (status == 2 ? "" : "token-broker: ") << line << '\n' << std::flush;
        return status;
    };
    try {
        application app(cfg, log);
        try {
            app.start();
        } catch (const config_error& e) {
            return fail(2, e.what());
        } catch (const std::exception& e) {
            return fail(1, "cannot listen on " + cfg.server.address + ":" + std::to_string(cfg.server.port) +
                               ": " + e.what());
        }
        app.run();
        return 0;
    } catch (const std::exception& e) {
        return fail(1, std::string("stopped by an unexpected error: ") + e.what());
    }
}

} // namespace token_broker
