// The request target of the token route, `/token/{userId}?type=...&ttl=...&meeting_id=...`
// (CONTRACT.md section 3): which targets belong to the route, and what a valid one asks for.
// Pure functions: no I/O, no allocation beyond the strings they return.
#pragma once

#include "core/error.hpp"
#include "core/token_query.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

inline constexpr std::size_t max_user_id_bytes = 254;
inline constexpr std::uint32_t min_ttl_seconds = 60;
inline constexpr std::uint32_t max_ttl_seconds = 31536000; // one year, Zoom's maximum

// True when `decoded` (a user id after percent-decoding) is one the broker accepts: 1 to 254 bytes,
// each visible ASCII (0x21 to 0x7E) other than / \ ? # %, and neither "." nor "..". Such an id can
// never change the path of the upstream request. Exact bytes: no case folding, no trimming.
bool is_valid_user_id(std::string_view decoded) noexcept;

// An invalid_request error (400) with `message`.
broker_error invalid_request(std::string message);

// A caller's text as an error message may show it: in double quotes, at most 64 bytes, anything but
// printable ASCII as '?'.
std::string quoted_for_message(std::string_view text);

// True when the router should hand `target` (an HTTP request-target as received) to the token route:
// its path, the part before any '?' or '#', starts with "/token/". Everything else under that prefix,
// however malformed, is the token route's to answer (400 from parse_token_target), so that
// `/token/a/b` is a bad request rather than an unknown route. "/token" alone, "/tokens/x" or a
// percent-encoded "/%74oken/x" are not the token route. Never throws.
bool is_token_route(std::string_view target) noexcept;

// Parses the request-target of GET /token/{userId} (is_delete false) or DELETE /token/{userId}
// (is_delete true) with Boost.URL.
//
// Path: exactly "/token/" followed by one segment, the user id, percent-decoded once (so "%2540"
// is the id "%40", which is then refused for its '%'; "%2F" decodes to '/', which is refused; an
// unencoded '/' makes more than one segment, refused), and then is_valid_user_id. The path is taken
// as sent: no dot-segment removal, no case folding.
// Query, GET only (DELETE takes none; a bare '?' with nothing after it is accepted for both):
// parameters are '&'-separated key=value pairs, keys and values percent-decoded once ('+' decodes to
// a space, which no valid value contains). Each parameter at most once, each with '=' and a
// non-empty value; no parameters other than:
// - type: zak (default when absent), token or onbehalf (exact, lower case);
// - ttl: ASCII digits only (no sign, exponent or spaces), whose value is 60 to 31536000; leading
//   zeros are allowed ("060" is 60); for zak and onbehalf only;
// - meeting_id: 9 to 12 ASCII digits, kept as given; for onbehalf only.
//
// Result: the query, with user_id decoded (for DELETE only user_id is set; type keeps its default).
// Errors: always errc::invalid_request, with a message for a person naming the part at fault, e.g.
// "ttl must be a whole number of seconds from 60 to 31536000". A message quotes at most 64 bytes of
// the caller's input, non-printable bytes replaced by '?', and never the user id itself.
// Never crashes on any bytes; throws only std::bad_alloc.
result<token_query> parse_token_target(std::string_view target, bool is_delete);

// The same rules for a query whose parts come from elsewhere (an item of POST /tokens): `user_id`
// as is (not percent-decoded), then type, ttl and meeting_id, each when present, as the text the
// query string would have held. The errors are those of parse_token_target, word for word.
result<token_query> make_token_query(std::string user_id, const std::optional<std::string>& type,
                                     const std::optional<std::string>& ttl,
                                     const std::optional<std::string>& meeting_id);

} // namespace token_broker
