// The running service: the HTTP listener, the Zoom client, the token cache and the signal handling,
// wired together from a validated configuration.
#pragma once

#include "config/config.hpp"
#include "core/net.hpp"

#include <spdlog/logger.h>

#include <iosfwd>
#include <memory>

namespace token_broker {

class application {
public:
    // Builds every part; no I/O yet. `log` is shared with the parts.
    application(config cfg, std::shared_ptr<spdlog::logger> log);
    ~application();
    application(const application&) = delete;
    application& operator=(const application&) = delete;

    // Binds the listener and starts the Zoom client (the first OAuth fetch). Throws config_error when
    // the listener's TLS files cannot be used, std::system_error when the address cannot be bound.
    void start();

    // The port listened on (useful with server.port 0).
    std::uint16_t port() const;

    // Serves on server.threads threads (this one included) until stop() or SIGTERM/SIGINT, then
    // drains. Handles SIGHUP (reloads auth.keys_file) when `handle_signals`.
    void run(bool handle_signals = true);

    // Starts the drain: stop accepting, finish requests in flight for up to server.drain_timeout_ms,
    // then make run() return. Thread-safe.
    void stop();

    // Re-reads auth.keys_file; on error keeps the current keys and logs why. Returns whether it
    // replaced them. Thread-safe.
    bool reload_keys();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Runs the broker until SIGTERM or SIGINT, then drains requests in flight for up to
// server.drain_timeout_ms. SIGHUP reloads auth.keys_file.
// Returns the process exit status: 0 after a clean shutdown, 1 for a runtime failure (such as a
// port that cannot be bound), 2 for a configuration error found only at start (a TLS file changed
// since the configuration was loaded). The one line that explains a failure is logged and written
// to `errors` (stderr), whatever the log level.
int run_application(const config& cfg, std::shared_ptr<spdlog::logger> logger, std::ostream& errors);

} // namespace token_broker
