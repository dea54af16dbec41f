#include "app/application.hpp"

namespace token_broker {

int run_application(const config&, std::shared_ptr<spdlog::logger> logger) {
    logger->error("the HTTP server is not built yet");
    return 1;
}

} // namespace token_broker
