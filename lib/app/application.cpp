#include "app/application.hpp"

#include "auth/auth.hpp"
#include "cache/shared_redis.hpp"
#include "cache/token_service.hpp"
#include "metrics/metrics.hpp"
#include "redis/cluster.hpp"
#include "redis/connection.hpp"
#include "redis/refusals.hpp"
#include "redis/sealed.hpp"
#include "redis/sentinel.hpp"
#include "redis/subscriber.hpp"
#include "server/http_server.hpp"
#include "server/router.hpp"
#include "server/token_endpoint.hpp"
#include "webhook/receiver.hpp"
#include "zoom/zoom_client.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace token_broker {

namespace {

// The connection settings of the redis block (config.hpp) for the Redis client layer.
redis::options redis_options(const redis_config& r) {
    redis::options o;
    o.tls = r.tls;
    o.host = r.host;
    o.port = r.port;
    o.db = r.db;
    o.user = r.user;
    o.password = r.password;
    o.ca_file = r.ca_file;
    o.connect_timeout = r.connect_timeout;
    o.command_timeout = r.command_timeout;
    o.max_reply_bytes = r.max_reply_bytes;
    // The command connection's health check: as often as the subscription proves itself (three
    // times per invalidation lease), when the connection has been idle that long.
    o.health_check = r.invalidation_lease / 3;
    if (r.sentinel()) {
        o.connect_to = redis::target::sentinel_master;
        for (const auto& e : r.sentinels)
            o.sentinels.push_back({e.host, e.port});
        o.master_name = r.master_name;
        o.sentinel_password = r.sentinel_password;
    }
    if (r.cluster()) {
        o.connect_to = redis::target::cluster;
        for (const auto& e : r.cluster_seeds)
            o.cluster_seeds.push_back({e.host, e.port});
    }
    return o;
}

// The webhook listener's settings: its own address, port, TLS and body limit, the token API's
// timeouts and header limit; the body of POST {webhook.path} is kept for the receiver.
server_config webhook_listener(const config& cfg) {
    server_config s = cfg.server;
    s.address = cfg.webhook.address;
    s.port = cfg.webhook.port;
    s.threads = cfg.server.threads;
    s.max_body_bytes = cfg.webhook.max_body_bytes;
    s.max_connections = 1000;
    s.tls = cfg.webhook.tls;
    s.kept_body_path = cfg.webhook.path;
    return s;
}

webhook::receiver::settings receiver_settings(const config& cfg) {
    webhook::receiver::settings s;
    s.path = cfg.webhook.path;
    s.secret_token = cfg.webhook.secret_token;
    s.tolerance = cfg.webhook.tolerance;
    s.account_id = cfg.zoom.account_id;
    s.revoked_for = std::max<std::chrono::seconds>(cfg.cache.negative_ttl, std::chrono::hours(1));
    s.format = cfg.log.format;
    return s;
}

} // namespace

// With redis.url, two Redis users share the replicas' state (CONTRACT.md section 7): the token
// service's shared tier (shared_redis) and the Zoom client's shared budget, 429 block and access
// token. They share one pipelined command connection and one subscription, so a Redis that goes
// away is noticed once, and a request meets at most one command_timeout_ms for it. Without a url,
// none of this exists and each process is alone.
struct application::impl {
    impl(config c, std::shared_ptr<spdlog::logger> l)
        : cfg(std::move(c)), log(std::move(l)), ioc(static_cast<int>(cfg.server.threads)),
          redis_commands(make_redis_commands()), zoom(make_zoom()), shared_tier(make_shared_tier()),
          redis_subscription(make_redis_subscription()), sentinel_watch(make_sentinel_watch()),
          tokens(
              ioc.get_executor(), *zoom, cfg.cache, m, log, [] { return std::chrono::system_clock::now(); },
              shared_tier.get()),
          endpoint(tokens, std::make_shared<const authenticator>(cfg.auth.keys), cfg.log.format, log,
                   cfg.zoom.request_timeout),
          routes(
              m, [this] { return readiness(); }, &endpoint),
          server(ioc, cfg.server, routes, log, m), flush_timer(ioc), signals(ioc), reload_signal(ioc) {
        if (cfg.webhook.enabled()) {
            hooks = std::make_unique<webhook::receiver>(receiver_settings(cfg), tokens, m, log,
                                                        [this] { return zoom->deauthorize(); });
            hook_server = std::make_unique<http_server>(ioc, webhook_listener(cfg), *hooks, log, m);
        }
        if (shared_tier)
            routes.report_redis([this] {
                return router::redis_state{shared_tier->up(), redis_refusals->reason()};
            });
    }

    std::shared_ptr<redis::client> make_redis_commands() {
        if (!cfg.redis.enabled())
            return nullptr;
        m.enable_redis();
        redis_refusals = std::make_shared<redis::refusals>(log, &m);
        std::shared_ptr<redis::client> c;
        if (cfg.redis.cluster())
            c = redis::cluster::create(ioc.get_executor(), redis_options(cfg.redis), log, &m);
        else
            c = redis::connection::create(ioc.get_executor(), redis_options(cfg.redis), log, &m);
        c->report_refusals(redis_refusals);
        return c;
    }

    std::unique_ptr<zoom_client> make_zoom() {
        if (!redis_commands)
            return std::make_unique<zoom_client>(ioc.get_executor(), cfg.zoom, log, m);
        zoom_shared shared;
        shared.connection = redis_commands;
        shared.sealer = std::make_shared<const redis::sealer>(cfg.redis.encryption_key,
                                                              cfg.redis.previous_encryption_key);
        shared.key_prefix = cfg.redis.key_prefix;
        shared.wait_for_redis = cfg.redis.connect_timeout;
        shared.lock_lease = cfg.redis.lock_lease;
        return std::make_unique<zoom_client>(ioc.get_executor(), cfg.zoom, log, m, std::move(shared));
    }

    std::unique_ptr<shared_redis> make_shared_tier() {
        if (!redis_commands)
            return nullptr;
        shared_redis::settings s;
        s.key_prefix = cfg.redis.key_prefix;
        s.encryption_key = cfg.redis.encryption_key;
        s.previous_encryption_key = cfg.redis.previous_encryption_key;
        s.request_timeout = cfg.zoom.request_timeout;
        s.cache = cfg.cache;
        s.wait_for_redis = cfg.redis.connect_timeout;
        s.lock_lease = cfg.redis.lock_lease;
        s.invalidation_lease = cfg.redis.invalidation_lease;
        s.forget_confirm_timeout = cfg.redis.command_timeout + std::chrono::milliseconds{1000};
        return std::make_unique<shared_redis>(ioc.get_executor(), redis_commands, std::move(s), m, log);
    }

    // One subscription for both users: each ignores the other's channels.
    std::shared_ptr<redis::subscriber> make_redis_subscription() {
        if (!redis_commands)
            return nullptr;
        auto channels = shared_tier->channels();
        for (auto& c : zoom->redis_channels())
            channels.push_back(std::move(c));
        zoom_client* z = zoom.get();
        shared_redis* t = shared_tier.get();
        auto s = redis::subscriber::create(
            ioc.get_executor(), redis_options(cfg.redis), log, std::move(channels),
            [z, t](std::string_view channel, std::string_view message) {
                t->on_message(channel, message);
                z->on_redis_message(channel, message);
            },
            [z, t] {
                t->on_subscribed();
                z->on_redis_subscribed();
            },
            t->health_check_interval(),
            [t](std::chrono::steady_clock::time_point sent) { t->on_alive(sent); });
        s->report_refusals(redis_refusals);
        return s;
    }

    // Under Sentinel: a subscription to the sentinels' +switch-master (one sentinel at a time, the
    // next after a failure). A failover of our master drops both data-node connections, which then
    // ask the sentinels where the master is now: the move is at once rather than at the next failed
    // command or health check (CONTRACT.md section 7, "Redis that survives a node").
    std::shared_ptr<redis::subscriber> make_sentinel_watch() {
        if (!redis_commands || !cfg.redis.sentinel())
            return nullptr;
        auto o = redis_options(cfg.redis);
        o.connect_to = redis::target::sentinels;
        std::weak_ptr<redis::client> commands = redis_commands;
        std::weak_ptr<redis::subscriber> subscription = redis_subscription;
        auto s = redis::subscriber::create(
            ioc.get_executor(), std::move(o), log, {std::string(redis::switch_master_channel)},
            [this, commands, subscription](std::string_view, std::string_view message) {
                const auto moved = redis::parse_switch_master(message);
                if (!moved || moved->master_name != cfg.redis.master_name)
                    return;
                log->info("redis sentinel: master {} moved from {}:{} to {}:{}; reconnecting",
                          moved->master_name, moved->from.host, moved->from.port, moved->to.host,
                          moved->to.port);
                if (auto c = commands.lock())
                    c->reconnect_now();
                if (auto sub = subscription.lock())
                    sub->reconnect_now();
            },
            {}, cfg.redis.invalidation_lease / 3);
        return s;
    }

    void start_redis() {
        if (!redis_commands)
            return;
        redis_commands->start();
        redis_subscription->start();
        if (sentinel_watch)
            sentinel_watch->start();
        shared_tier->start();
    }

    void stop_redis() {
        if (!redis_commands)
            return;
        shared_tier->stop();
        if (sentinel_watch)
            sentinel_watch->stop();
        redis_subscription->stop();
        redis_commands->stop();
    }

    std::optional<std::string> readiness() const {
        auto r = zoom->ready();
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
        if (hook_server)
            hook_server->drain([] {});
        server.drain([this] {
            log->info("drained; exiting");
            beast::error_code ignored;
            signals.cancel(ignored);
            reload_signal.cancel(ignored);
            flush_timer.cancel();
            zoom->stop();
            stop_redis();
            ioc.stop();
        });
    }

    const config cfg;
    std::shared_ptr<spdlog::logger> log;
    metrics m;
    net::io_context ioc;
    std::shared_ptr<redis::refusals> redis_refusals; // null without redis.url
    std::shared_ptr<redis::client> redis_commands;   // null without redis.url
    std::unique_ptr<zoom_client> zoom;
    std::unique_ptr<shared_redis> shared_tier;             // null without redis.url
    std::shared_ptr<redis::subscriber> redis_subscription; // null without redis.url
    std::shared_ptr<redis::subscriber> sentinel_watch;     // null but under Sentinel
    token_service tokens;
    token_endpoint endpoint;
    router routes;
    http_server server;
    std::unique_ptr<webhook::receiver> hooks; // null without webhook.port
    std::unique_ptr<http_server> hook_server; // null without webhook.port
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
    if (p.hook_server) {
        p.hook_server->start();
        p.log->info("Zoom event notifications on {}://{}:{}{}",
                    p.cfg.webhook.tls.enabled() ? "https" : "http", p.cfg.webhook.address,
                    p.hook_server->local_endpoint().port(), p.cfg.webhook.path);
    }
    if (p.cfg.auth.keys.empty())
        p.log->warn("no caller keys configured: every caller that can reach {}:{} may ask for tokens",
                    p.cfg.server.address, port());
    p.log->info("token-broker {} listening on {}://{}:{} with {} thread(s) and {} caller key(s); Zoom at {}",
                TOKEN_BROKER_VERSION, p.cfg.server.tls.enabled() ? "https" : "http", p.cfg.server.address,
                port(), p.cfg.server.threads, p.cfg.auth.keys.size(), p.cfg.zoom.api_base_url);
    if (p.cfg.redis.enabled())
        p.log->info("sharing the cache and the Zoom budget through Redis at {} (prefix {})", p.cfg.redis.url,
                    p.cfg.redis.key_prefix);
    p.start_redis();
    p.zoom->start();
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
