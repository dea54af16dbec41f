#include "core/digest.hpp"

#include <boost/algorithm/hex.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <iterator>
#include <stdexcept>

namespace token_broker {

std::string lower_hex(std::string_view bytes) {
    std::string out;
    append_lower_hex(out, bytes);
    return out;
}

void append_lower_hex(std::string& out, std::string_view bytes) {
    out.reserve(out.size() + 2 * bytes.size());
    boost::algorithm::hex_lower(bytes.begin(), bytes.end(), std::back_inserter(out));
}

bool is_lower_hex(std::string_view s) noexcept {
    return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest,
             &size) == nullptr)
        throw std::runtime_error("HMAC-SHA256 failed");
    return std::string(reinterpret_cast<const char*>(digest), size);
}

} // namespace token_broker
