// Parsing Zoom's Retry-After header (CONTRACT.md section 5). Zoom has been seen sending it as an
// ISO 8601 time; HTTP allows delta-seconds or an HTTP date. Pure code, no clock of its own.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace token_broker {

// The longest wait the parser returns: Zoom's longest limit is a daily one. (The Zoom client blocks
// for at most max_rate_limit_block, 600 s, whatever the header says: rate_limit_block.hpp.)
inline constexpr std::chrono::hours max_retry_after{24};

// The time a Retry-After `value` says to wait until, received at `now`. Accepted forms:
//   - delta-seconds: "120" (digits only, no sign);
//   - an HTTP date: IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and leniently the obsolete
//     RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994" forms;
//   - an ISO 8601 / RFC 3339 time: "2020-05-31T00:00:00Z", with optional fractional seconds and a
//     "Z", "+hh:mm", "+hhmm" or "+hh" offset (none: UTC); 'T', 't' or ' ' between date and time.
// Surrounding spaces and tabs are ignored. A time in the past gives `now`; the result is never later
// than now + max_retry_after. Anything else (empty, negative, malformed, an impossible date) gives
// std::nullopt, and the caller picks its own default. Never throws; safe on arbitrary bytes.
std::optional<std::chrono::system_clock::time_point>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) noexcept;

} // namespace token_broker
