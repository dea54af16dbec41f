#include "log/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace token_broker {

void set_log_format(spdlog::logger& logger, log_format) {
    logger.set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
}

std::shared_ptr<spdlog::logger> make_logger(const log_config& cfg, spdlog::sink_ptr sink) {
    if (!sink)
        sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>("token-broker", std::move(sink));
    logger->set_level(cfg.level);
    logger->flush_on(spdlog::level::warn);
    set_log_format(*logger, cfg.format);
    return logger;
}

} // namespace token_broker
