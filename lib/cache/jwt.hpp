// Reading the expiry of a JWT (a ZAK is one: `header.payload.signature`, each part base64url).
// The signature is Zoom's and cannot be checked here; only the payload's `exp` claim is read, to know
// how long the token may be cached (CONTRACT.md section 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// The largest decoded JWT payload that is looked at; a longer one is not a ZAK and is rejected
// before decoding, so no input makes this code allocate more than about this much.
inline constexpr std::size_t max_jwt_payload_bytes = 8 * 1024;

// The largest `exp` accepted: 9999-12-31T23:59:59Z. Anything later is not a date but junk.
inline constexpr std::int64_t max_jwt_exp = 253402300799;

// The `exp` claim of `token`, in Unix seconds, when `token` is a well-formed JWT:
// - exactly three non-empty parts separated by '.', each unpadded base64url (is_base64url, core/base64.hpp;
// header and
//   signature are only checked for their alphabet, not decoded);
// - the payload decodes to at most max_jwt_payload_bytes bytes of JSON whose top level is an object;
// - that object has a member `exp` that is a number with an integral value in 0..max_jwt_exp
//   (an integer, or a double such as 1.7e9 with no fractional part).
// Otherwise std::nullopt: not a JWT, no `exp`, `exp` not a number, fractional, negative, too large,
// NaN or infinite. When a payload repeats `exp`, the JSON parser's choice (the last) is used.
// Never throws and never reads outside `token`, whatever bytes it holds; linear in its size.
std::optional<std::int64_t> jwt_expiry(std::string_view token) noexcept;

} // namespace token_broker
