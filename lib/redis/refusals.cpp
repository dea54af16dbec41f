#include "redis/refusals.hpp"

#include "metrics/metrics.hpp"

#include <array>

namespace token_broker::redis {

bool is_refusal(const reply& r) noexcept {
    if (!r.is_error())
        return false;
    static constexpr std::array<std::string_view, 3> prefixes{"NOPERM", "READONLY", "OOM"};
    for (auto p : prefixes)
        if (r.text.starts_with(p))
            return true;
    // A script Redis will not run: scripting disabled or its commands denied inside it.
    return r.text.starts_with("ERR") &&
           (r.text.find("script") != std::string::npos || r.text.find("NOPERM") != std::string::npos);
}

refusals::refusals(std::shared_ptr<spdlog::logger> log, metrics* m) : log_(std::move(log)), metrics_(m) {
    if (metrics_)
        metrics_->redis_degraded(false);
}

void refusals::refused(const std::string& where, std::string reason) {
    // One line of Redis's text is enough, and keeps a log line a line.
    if (auto eol = reason.find_first_of("\r\n"); eol != std::string::npos)
        reason.resize(eol);
    std::lock_guard lock(mutex_);
    const bool was = !in_force_.empty();
    const bool known = in_force_.contains(where);
    in_force_[where] = reason;
    if (!was) {
        log_->warn("redis refuses what sharing needs ({}: {}): degraded, carrying on without sharing that",
                   where, reason);
        if (metrics_)
            metrics_->redis_degraded(true);
    } else if (!known) {
        log_->debug("redis also refuses {}: {}", where, reason);
    }
}

void refusals::accepted(const std::string& where) {
    std::lock_guard lock(mutex_);
    if (in_force_.erase(where) == 0 || !in_force_.empty())
        return;
    log_->info("redis accepts what sharing needs again ({}): no longer degraded", where);
    if (metrics_)
        metrics_->redis_degraded(false);
}

std::optional<std::string> refusals::reason() const {
    std::lock_guard lock(mutex_);
    if (in_force_.empty())
        return std::nullopt;
    const auto& [where, why] = *in_force_.begin();
    return where + ": " + why;
}

} // namespace token_broker::redis
