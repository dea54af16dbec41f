#include "core/base64.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <climits>

namespace token_broker {
namespace {

bool is_base64url_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

} // namespace

std::string base64_encode(std::string_view bytes) {
    // EVP_EncodeBlock writes 4 characters per 3 bytes, padding included, and a terminating NUL.
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out = base64_encode(bytes);
    while (!out.empty() && out.back() == '=')
        out.pop_back();
    std::replace(out.begin(), out.end(), '+', '-');
    std::replace(out.begin(), out.end(), '/', '_');
    return out;
}

bool is_base64url(std::string_view s) noexcept {
    return s.size() % 4 != 1 && std::all_of(s.begin(), s.end(), is_base64url_char);
}

std::optional<std::string> base64url_decode(std::string_view encoded, std::size_t max_decoded) {
    // 2 and 3 final characters carry 1 and 2 bytes.
    const std::size_t tail = encoded.size() % 4;
    const std::size_t decoded_size = encoded.size() / 4 * 3 + (tail == 0 ? 0 : tail - 1);
    if (tail == 1 || decoded_size > max_decoded || encoded.size() > static_cast<std::size_t>(INT_MAX) - 4 ||
        !is_base64url(encoded))
        return std::nullopt;

    // OpenSSL decodes standard, padded base64: translate the alphabet and restore the padding.
    std::string standard(encoded);
    std::replace(standard.begin(), standard.end(), '-', '+');
    std::replace(standard.begin(), standard.end(), '_', '/');
    standard.append(tail == 0 ? 0 : 4 - tail, '=');

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

} // namespace token_broker
