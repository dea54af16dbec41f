#include "cache/jwt.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <openssl/evp.h>

#include <climits>
#include <cmath>

namespace token_broker {
namespace {

bool is_base64url_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Valid unpadded base64url: the alphabet only, and no lone final character.
bool is_base64url(std::string_view s) noexcept {
    if (s.size() % 4 == 1)
        return false;
    for (char c : s)
        if (!is_base64url_char(c))
            return false;
    return true;
}

std::optional<std::int64_t> integral_exp(const boost::json::value& exp) noexcept {
    if (exp.is_int64()) {
        const std::int64_t v = exp.get_int64();
        if (v >= 0 && v <= max_jwt_exp)
            return v;
    } else if (exp.is_uint64()) {
        const std::uint64_t v = exp.get_uint64();
        if (v <= static_cast<std::uint64_t>(max_jwt_exp))
            return static_cast<std::int64_t>(v);
    } else if (exp.is_double()) {
        const double v = exp.get_double();
        // The range check comes first so that the conversion below is always defined.
        if (std::isfinite(v) && v >= 0 && v <= static_cast<double>(max_jwt_exp) && std::floor(v) == v)
            return static_cast<std::int64_t>(v);
    }
    return std::nullopt;
}

} // namespace

std::optional<std::string> base64url_decode(std::string_view encoded, std::size_t max_decoded) {
    // A lone final character carries only 6 bits, never a whole byte; 2 and 3 carry 1 and 2 bytes.
    const std::size_t tail = encoded.size() % 4;
    const std::size_t decoded_size = encoded.size() / 4 * 3 + (tail == 0 ? 0 : tail - 1);
    if (tail == 1 || decoded_size > max_decoded || encoded.size() > static_cast<std::size_t>(INT_MAX) - 4 ||
        !is_base64url(encoded))
        return std::nullopt;

    // OpenSSL decodes standard, padded base64: translate the alphabet and restore the padding.
    const std::size_t padding = tail == 0 ? 0 : 4 - tail;
    std::string standard(encoded);
    for (char& c : standard) {
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
    }
    standard.append(padding, '=');

    // EVP_DecodeBlock writes 3 bytes per 4 characters, padding included, and returns that count.
    std::string decoded(standard.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                  reinterpret_cast<const unsigned char*>(standard.data()),
                                  static_cast<int>(standard.size()));
    if (n < 0 || static_cast<std::size_t>(n) != decoded.size())
        return std::nullopt;
    decoded.resize(decoded_size); // drop the zero bytes decoded from the padding
    return decoded;
}

std::optional<std::int64_t> jwt_expiry(std::string_view token) noexcept {
    try {
        const std::size_t first = token.find('.');
        if (first == std::string_view::npos)
            return std::nullopt;
        const std::size_t second = token.find('.', first + 1);
        if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
            return std::nullopt;
        const std::string_view header = token.substr(0, first);
        const std::string_view payload = token.substr(first + 1, second - first - 1);
        const std::string_view signature = token.substr(second + 1);
        if (header.empty() || payload.empty() || signature.empty())
            return std::nullopt;
        if (!is_base64url(header) || !is_base64url(signature))
            return std::nullopt;

        const std::optional<std::string> json = base64url_decode(payload);
        if (!json)
            return std::nullopt;
        boost::system::error_code ec;
        const boost::json::value claims = boost::json::parse(*json, ec);
        if (ec || !claims.is_object())
            return std::nullopt;
        const boost::json::value* exp = claims.get_object().if_contains("exp");
        if (!exp)
            return std::nullopt;
        return integral_exp(*exp);
    } catch (...) {
        // Only std::bad_alloc can get here; a token whose expiry cannot be read is treated as a non-JWT.
        return std::nullopt;
    }
}

} // namespace token_broker
