// The completion handler every detached coroutine is spawned with: a coroutine that ends normally
// needs nothing, one that lets an exception escape is a bug or broken infrastructure, and that must
// reach the log rather than vanish (CONTRACT.md section 6; STYLE.md: never `detached` alone).
#pragma once

#include <spdlog/logger.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace token_broker {

// A handler for net::co_spawn that logs an escaped exception as "<what>: <exception's what()>" at
// `level` on `log` and swallows it. `log` is kept alive by the handler; it must not be null. The
// coroutine's result, if it has one, is ignored.
inline auto log_escaped_exception(std::shared_ptr<spdlog::logger> log, std::string what,
                                  spdlog::level::level_enum level = spdlog::level::err) {
    return [log = std::move(log), what = std::move(what), level](std::exception_ptr e, auto&&...) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            log->log(level, "{}: {}", what, x.what());
        } catch (...) {
            log->log(level, "{}: an exception of unknown type", what);
        }
    };
}

} // namespace token_broker
