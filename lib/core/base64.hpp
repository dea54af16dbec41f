// Base64 (RFC 4648): the standard alphabet with padding, as HTTP Basic authentication uses it, and
// the URL alphabet without padding, as JWTs use it. The encoding and decoding are OpenSSL's; this
// file only translates the alphabet and the padding.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// Standard base64 with '=' padding.
std::string base64_encode(std::string_view bytes);

// base64url without padding.
std::string base64url_encode(std::string_view bytes);

// True when `s` is unpadded base64url: the characters A-Z a-z 0-9 '-' '_' only and a length that is
// not 1 modulo 4 (a lone final character carries 6 bits, never a whole byte).
bool is_base64url(std::string_view s) noexcept;

// Decodes unpadded base64url as is_base64url() defines it. Returns the decoded bytes, or
// std::nullopt when `encoded` is not such a string or would decode to more than `max_decoded` bytes
// (checked before decoding, so no input allocates more than about that much). An empty input
// decodes to an empty string. Throws only std::bad_alloc.
std::optional<std::string> base64url_decode(std::string_view encoded, std::size_t max_decoded);

} // namespace token_broker
