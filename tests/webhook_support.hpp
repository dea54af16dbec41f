// Zoom event bodies for the webhook tests, shaped as ZOOM-FACTS.md shows Zoom's.
#pragma once

#include <string>
#include <string_view>

namespace token_broker::testing {

// A user event (user.deactivated, user.signed_out, ...) for the user `id` with `email`, in `account`.
inline std::string user_event(std::string_view name, std::string_view id, std::string_view email,
                              std::string_view account) {
    return R"({"event":")" + std::string(name) + R"(","event_ts":1700000000000,"payload":{"account_id":")" +
           std::string(account) + R"(","object":{"id":")" + std::string(id) + R"(","email":")" +
           std::string(email) + R"("}}})";
}

} // namespace token_broker::testing
