#include "webhook/signature.hpp"

#include "core/digest.hpp"

#include <openssl/crypto.h>

#include <array>
#include <charconv>
#include <stdexcept>

namespace token_broker::webhook {
namespace {

constexpr std::string_view version_prefix = "v0=";
constexpr std::size_t digest_hex_length = 64;
constexpr std::size_t max_timestamp_digits = 12;

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
    return lower_hex(hmac_sha256(key, message));
}

// Whole seconds: 1 to 12 decimal digits, nothing else (no sign, no space, no fraction).
std::optional<long long> whole_seconds(std::string_view s) noexcept {
    if (s.empty() || s.size() > max_timestamp_digits)
        return std::nullopt;
    long long value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || s.front() == '-' || s.front() == '+')
        return std::nullopt;
    return value;
}

} // namespace

std::string_view describe(refusal r) noexcept {
    switch (r) {
    case refusal::missing_signature:
        return "missing x-zm-signature";
    case refusal::malformed_signature:
        return "malformed x-zm-signature";
    case refusal::missing_timestamp:
        return "missing x-zm-request-timestamp";
    case refusal::malformed_timestamp:
        return "malformed x-zm-request-timestamp";
    case refusal::outside_window:
        return "x-zm-request-timestamp outside the tolerance window";
    case refusal::wrong_signature:
        return "signature does not match the body";
    }
    return "refused";
}

std::string signature(std::string_view secret, std::string_view timestamp, std::string_view body) {
    std::string message;
    message.reserve(3 + timestamp.size() + 1 + body.size());
    message.append("v0:").append(timestamp).append(":").append(body);
    return std::string(version_prefix) + hmac_sha256_hex(secret, message);
}

std::string encrypted_token(std::string_view secret, std::string_view plain_token) {
    return hmac_sha256_hex(secret, plain_token);
}

std::optional<refusal> verify(std::string_view secret, std::string_view signature_header,
                              std::string_view timestamp_header, std::string_view body,
                              std::chrono::seconds now, std::chrono::seconds tolerance) {
    if (signature_header.empty())
        return refusal::missing_signature;
    if (signature_header.size() != version_prefix.size() + digest_hex_length ||
        !signature_header.starts_with(version_prefix) ||
        !is_lower_hex(signature_header.substr(version_prefix.size())))
        return refusal::malformed_signature;
    if (timestamp_header.empty())
        return refusal::missing_timestamp;
    const auto stamp = whole_seconds(timestamp_header);
    if (!stamp)
        return refusal::malformed_timestamp;
    const long long skew = *stamp - static_cast<long long>(now.count());
    if (skew > tolerance.count() || -skew > tolerance.count())
        return refusal::outside_window;
    const std::string expected = signature(secret, timestamp_header, body);
    if (CRYPTO_memcmp(expected.data(), signature_header.data(), expected.size()) != 0)
        return refusal::wrong_signature;
    return std::nullopt;
}

} // namespace token_broker::webhook
