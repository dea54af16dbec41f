// The running service: the HTTP listener, the Zoom client, the token cache and the signal handling,
// wired together from a validated configuration.
#pragma once

#include "config/config.hpp"

#include <memory>
#include <spdlog/logger.h>

namespace token_broker {

// Runs the broker until SIGTERM or SIGINT, then drains requests in flight for up to
// server.drain_timeout_ms. SIGHUP reloads auth.keys_file.
// Returns the process exit status: 0 after a clean shutdown, 1 for a runtime failure (such as a
// port that cannot be bound), which is logged.
int run_application(const config& cfg, std::shared_ptr<spdlog::logger> logger);

} // namespace token_broker
