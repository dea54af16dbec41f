// Redis refusing what sharing needs (CONTRACT.md section 7, "What Redis may answer"): a permission
// (NOPERM), a read-only replica (READONLY), out of memory (OOM), a refused SUBSCRIBE, scripts
// refused. Redis answers, so it is not down, but nothing is shared: the broker is `degraded`.
// /readyz says so with the reason, token_broker_redis_degraded is 1, one warning is logged when it
// starts and one info line when it ends.
#pragma once

#include "redis/reply.hpp"

#include <spdlog/logger.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {
class metrics;
}

namespace token_broker::redis {

// Whether `r` is an error reply that refuses what sharing needs (NOPERM, READONLY, OOM, and the
// errors of a script Redis will not run), as opposed to a transient or expected one (NOSCRIPT,
// which the script runner answers with EVAL).
bool is_refusal(const reply& r) noexcept;

// The refusals in force, each under the part of the broker that met it ("commands",
// "subscription"). Thread-safe.
class refusals {
public:
    // `log` must not be null; `m`, when given, must outlive this and have had enable_redis() called.
    refusals(std::shared_ptr<spdlog::logger> log, metrics* m);

    // `where` met `reason` (never a secret: a Redis error's text). Logs a warning when the broker
    // was not degraded before.
    void refused(const std::string& where, std::string reason);
    // `where` works again. Logs one info line when that ends the degraded state.
    void accepted(const std::string& where);
    // The reason of a refusal in force ("where: reason"), or nullopt when none is.
    std::optional<std::string> reason() const;

private:
    std::shared_ptr<spdlog::logger> log_;
    metrics* metrics_;
    mutable std::mutex mutex_;
    std::map<std::string, std::string> in_force_; // by where
};

} // namespace token_broker::redis
