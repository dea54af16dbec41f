// The routes requests are counted under (the `route` label of token_broker_requests_total).
#pragma once

#include <cstddef>

namespace token_broker {

enum class route { token, tokens, healthz, readyz, metrics, other };
inline constexpr std::size_t route_count = 6;

} // namespace token_broker
