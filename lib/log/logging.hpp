// Log sinks and formats (CONTRACT.md sections 1 and 6). Logs go to stdout, as text or as one JSON
// object a line. The stdout sink buffers and is flushed periodically and on warnings, so that the
// audit line of a cache hit does not cost a write(2) per request.
#pragma once

#include "config/config.hpp"

#include <spdlog/logger.h>

#include <memory>

namespace token_broker {

// A logger named "token-broker" writing to `sink` (stdout when null) with the level and format of
// `cfg`. The caller owns it; the library never reaches for a global logger.
std::shared_ptr<spdlog::logger> make_logger(const log_config& cfg, spdlog::sink_ptr sink = nullptr);

// Sets the format of `logger`'s sinks: text or one JSON object a line.
void set_log_format(spdlog::logger& logger, log_format format);

} // namespace token_broker
