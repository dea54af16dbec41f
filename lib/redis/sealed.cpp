#include "redis/sealed.hpp"

#include "core/digest.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace token_broker::redis {
namespace {

constexpr std::size_t key_size = 32;

struct cipher_ctx_deleter {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

const unsigned char* bytes(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

// The plaintext of `sealed` under `key`, or nullopt when it does not authenticate.
std::optional<std::string> open_with(const std::string& key, std::string_view aad, std::string_view sealed) {
    if (sealed.size() < sealer::nonce_size + sealer::tag_size)
        return std::nullopt;
    const auto nonce = sealed.substr(0, sealer::nonce_size);
    const auto body =
        sealed.substr(sealer::nonce_size, sealed.size() - sealer::nonce_size - sealer::tag_size);
    std::string tag(sealed.substr(sealed.size() - sealer::tag_size));
    cipher_ctx ctx(EVP_CIPHER_CTX_new());
    int n = 0;
    std::string plain(body.size(), '\0');
    if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, sealer::nonce_size, nullptr) != 1 ||
        EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key), bytes(nonce)) != 1 ||
        EVP_DecryptUpdate(ctx.get(), nullptr, &n, bytes(aad), static_cast<int>(aad.size())) != 1 ||
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &n, bytes(body),
                          static_cast<int>(body.size())) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, sealer::tag_size, tag.data()) != 1)
        return std::nullopt;
    int final_n = 0;
    if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + n, &final_n) != 1)
        return std::nullopt;
    plain.resize(static_cast<std::size_t>(n + final_n));
    return plain;
}

} // namespace

sealer::keys sealer::expand(const std::string& raw) {
    if (raw.size() != key_size)
        throw std::invalid_argument("a redis encryption key must be 32 bytes");
    return keys{hmac_sha256(raw, "token-broker redis value key v1"),
                hmac_sha256(raw, "token-broker redis key names v1")};
}

sealer::sealer(const secret& key32, const secret& previous32) : current_(expand(key32.reveal())) {
    if (!previous32.empty())
        previous_ = expand(previous32.reveal());
}

std::string sealer::name_of(const keys& k, std::string_view prefix, std::string_view kind,
                            std::string_view id) {
    const std::string mac = hmac_sha256(k.name, id);
    std::string out;
    out.reserve(prefix.size() + kind.size() + 3 + 2 * mac.size());
    out.append(prefix).append(kind).append(":{");
    append_lower_hex(out, mac);
    out.append("}");
    return out;
}

std::string sealer::key_name(std::string_view prefix, std::string_view kind, std::string_view id) const {
    return name_of(current_, prefix, kind, id);
}

std::optional<std::string> sealer::previous_key_name(std::string_view prefix, std::string_view kind,
                                                     std::string_view id) const {
    if (!previous_)
        return std::nullopt;
    return name_of(*previous_, prefix, kind, id);
}

std::string sealer::seal(std::string_view key_name, std::string_view plaintext) const {
    std::string out(nonce_size + plaintext.size() + tag_size, '\0');
    auto* nonce = reinterpret_cast<unsigned char*>(out.data());
    auto* body = nonce + nonce_size;
    if (RAND_bytes(nonce, nonce_size) != 1)
        throw std::runtime_error("no random bytes for a nonce");
    cipher_ctx ctx(EVP_CIPHER_CTX_new());
    int n = 0;
    int final_n = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, nonce_size, nullptr) != 1 ||
        EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes(current_.value), nonce) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &n, bytes(key_name), static_cast<int>(key_name.size())) != 1 ||
        EVP_EncryptUpdate(ctx.get(), body, &n, bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), body + n, &final_n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_size, body + plaintext.size()) != 1)
        throw std::runtime_error("AES-256-GCM encryption failed");
    return out;
}

std::optional<std::string> sealer::open(std::string_view key_name, std::string_view sealed) const {
    if (auto plain = open_with(current_.value, key_name, sealed))
        return plain;
    if (previous_)
        return open_with(previous_->value, key_name, sealed);
    return std::nullopt;
}

} // namespace token_broker::redis
