#include "zoom/rate_limit_block.hpp"

#include "zoom/rate_limiter.hpp"

namespace token_broker {

void local_rate_limit_block::block_until(clock::time_point until) {
    if (!blocked_until_ || until > *blocked_until_)
        blocked_until_ = until;
}

std::optional<std::chrono::seconds> local_rate_limit_block::blocked_for(clock::time_point now) const {
    if (!blocked_until_ || now >= *blocked_until_)
        return std::nullopt;
    return rate_limiter::retry_after(*blocked_until_ - now);
}

} // namespace token_broker
