#include "zoom/access_token.hpp"

namespace token_broker {

fixed_access_token::fixed_access_token(secret token) : token_(std::move(token)) {}

void fixed_access_token::start() {}

void fixed_access_token::stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
}

net::awaitable<result<secret>> fixed_access_token::current(std::chrono::steady_clock::time_point) {
    {
        std::lock_guard lock(mutex_);
        if (stopped_)
            co_return make_error(errc::not_ready, "the Zoom client is stopped");
    }
    co_return token_;
}

void fixed_access_token::rejected(const secret& token, std::string_view why) {
    if (token != token_)
        return;
    std::lock_guard lock(mutex_);
    rejection_ = "Zoom rejected the configured access token (zoom.access_token): " + std::string(why);
}

void fixed_access_token::accepted(const secret& token) {
    if (token != token_)
        return;
    std::lock_guard lock(mutex_);
    rejection_.clear();
}

void fixed_access_token::deauthorized() {
    std::lock_guard lock(mutex_);
    rejection_ = "app deauthorized: zoom.access_token is still sent, and counts again once Zoom accepts it";
}

readiness fixed_access_token::ready() const {
    std::lock_guard lock(mutex_);
    if (stopped_)
        return {false, "the Zoom client is stopped"};
    if (!rejection_.empty())
        return {false, rejection_};
    return {true, {}};
}

} // namespace token_broker
