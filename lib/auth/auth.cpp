#include "auth/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

namespace token_broker {

bool user_pattern_matches(std::string_view pattern, std::string_view user_id) noexcept {
    constexpr std::size_t none = std::string_view::npos;
    std::size_t p = 0, u = 0;
    std::size_t star = none; // position of the last '*' seen in the pattern
    std::size_t resume = 0;  // where in user_id that '*' now stops matching
    while (u < user_id.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = u;
        } else if (p < pattern.size() && pattern[p] == user_id[u]) {
            ++p;
            ++u;
        } else if (star != none) {
            // Let the last '*' swallow one more byte and retry from just after it. Earlier stars never
            // need revisiting: whatever they could match, the last one can too.
            p = star + 1;
            u = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

std::array<std::uint8_t, 32> sha256(std::string_view data) {
    // The digest implementation is fetched once and each thread keeps its own context: EVP_Digest
    // would fetch and allocate both on every call, which is most of the cost for a short key.
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                                   &EVP_MD_CTX_free);
    std::array<std::uint8_t, 32> digest{};
    unsigned int size = 0;
    if (!md || !ctx || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
        EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
        EVP_DigestFinal_ex(ctx.get(), digest.data(), &size) != 1 || size != digest.size())
        throw std::runtime_error("OpenSSL SHA-256 failed");
    return digest;
}

std::optional<std::string_view> bearer_token(std::string_view header) noexcept {
    constexpr std::string_view ows = " \t";
    const std::size_t first = header.find_first_not_of(ows);
    if (first == std::string_view::npos)
        return std::nullopt;
    header = header.substr(first, header.find_last_not_of(ows) - first + 1);

    constexpr std::string_view scheme = "bearer";
    if (header.size() <= scheme.size() || header[scheme.size()] != ' ')
        return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        const char c = header[i];
        if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != scheme[i])
            return std::nullopt;
    }
    const std::string_view token = header.substr(header.find_first_not_of(' ', scheme.size()));
    for (char c : token)
        if (c < 0x21 || c > 0x7E)
            return std::nullopt;
    return token;
}

const caller_key* authenticator::identify(std::string_view presented_key) const {
    if (presented_key.empty())
        return nullptr;
    const std::array<std::uint8_t, 32> digest = sha256(presented_key);
    const caller_key* found = nullptr;
    for (const caller_key& key : keys_) {
        const bool same = CRYPTO_memcmp(digest.data(), key.sha256.data(), digest.size()) == 0;
        found = same && !found ? &key : found;
    }
    return found;
}

bool authenticator::may_access(const caller_key& key, std::string_view user_id) noexcept {
    for (const std::string& pattern : key.users)
        if (user_pattern_matches(pattern, user_id))
            return true;
    return false;
}

} // namespace token_broker
