// The completion handler for net::co_spawn of work that nobody awaits: an exception that escapes the
// coroutine is a bug, logged rather than lost (never `detached` without one, STYLE.md).
#pragma once

#include <exception>
#include <memory>
#include <spdlog/logger.h>
#include <string_view>

namespace token_broker {

// A handler that logs an escaped exception as "<what> failed unexpectedly: <exception text>" at
// error level. Accepts the coroutine's result, if any, and ignores it. `what` is kept as a view: pass
// a string literal.
inline auto log_escaped_exception(std::shared_ptr<spdlog::logger> log, std::string_view what) {
    return [log = std::move(log), what](std::exception_ptr e, auto&&...) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log->error("{} failed unexpectedly: {}", what, ex.what());
        } catch (...) {
            log->error("{} failed unexpectedly", what);
        }
    };
}

} // namespace token_broker
