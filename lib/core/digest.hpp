// Hex digits and HMAC-SHA256, written once for the webhook signatures, the sealed Redis values and
// key names, the Redis scripts' SHA-1 names and the trace ids.
#pragma once

#include <string>
#include <string_view>

namespace token_broker {

// Two lower-case hex digits for each byte of `bytes`.
std::string lower_hex(std::string_view bytes);

// Appends the lower-case hex digits of `bytes` to `out`.
void append_lower_hex(std::string& out, std::string_view bytes);

// True when every character of `s` is 0-9 or a-f (an empty `s` too).
bool is_lower_hex(std::string_view s) noexcept;

// The 32 bytes of HMAC-SHA256(key, message) (OpenSSL). Throws std::runtime_error when OpenSSL fails.
std::string hmac_sha256(std::string_view key, std::string_view message);

} // namespace token_broker
