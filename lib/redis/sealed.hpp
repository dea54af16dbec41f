// What Redis holds, sealed (CONTRACT.md section 7): values encrypted and authenticated with
// AES-256-GCM (OpenSSL EVP) under redis.encryption_key, a fresh random 96-bit nonce per value and the
// Redis key name as associated data, so a value moved to another key does not open; key names carry
// an HMAC-SHA256 of the id, not the id. previous_encryption_key, when set, is tried for reading.
//
// Both keys are expanded into two subkeys each (HMAC-SHA256 of the key over a fixed label): one for
// AES-GCM, one for key names, so that the same bytes never serve two algorithms.
//
// Key names change with the encryption key. During a rotation a value may still sit under the name
// the previous key gives: previous_key_name() names it, and open() of a value read there works (it
// tries both keys). A reader looks under key_name() and under previous_key_name(); DELETE removes
// both. The two names are in different hash slots of a Redis Cluster (each is its own hash tag), so
// one command or script reaches only one of them.
#pragma once

#include "core/secret.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace token_broker::redis {

class sealer {
public:
    // `key32`: the raw 32-byte encryption key; `previous32`: the previous one, or empty. Throws
    // std::invalid_argument when either has another size (the configuration decodes the 64 hex
    // digits and refuses anything else before this).
    sealer(const secret& key32, const secret& previous32);

    // prefix + kind + ":{" + 64 lower-case hex digits of HMAC-SHA256(name subkey, id) + "}". Neither
    // `id` nor anything derived from it without the key appears in clear. The braces make the hash a
    // Redis Cluster hash tag: every key named by appending to this name (":gen", ":lock" ...) is in
    // the slot of the hash, unless `prefix` or `kind` holds a tag of its own before it. Under the
    // previous key the hash, and so the slot, differs.
    std::string key_name(std::string_view prefix, std::string_view kind, std::string_view id) const;
    // The same name under the previous key; nullopt when there is none.
    std::optional<std::string> previous_key_name(std::string_view prefix, std::string_view kind,
                                                 std::string_view id) const;

    // nonce (12 random bytes) || ciphertext || tag (16 bytes), with `key_name` as associated data.
    // Throws std::runtime_error when OpenSSL fails (no randomness: broken infrastructure).
    std::string seal(std::string_view key_name, std::string_view plaintext) const;

    // The plaintext, or nullopt when `sealed` does not authenticate under `key_name` with the key or
    // the previous key (tampered, another key, another name, too short).
    std::optional<std::string> open(std::string_view key_name, std::string_view sealed) const;

    static constexpr std::size_t nonce_size = 12;
    static constexpr std::size_t tag_size = 16;

private:
    struct keys {
        std::string value; // AES-256-GCM key, 32 bytes
        std::string name;  // HMAC-SHA256 key for key names, 32 bytes
    };
    static keys expand(const std::string& raw);
    static std::string name_of(const keys& k, std::string_view prefix, std::string_view kind,
                               std::string_view id);

    keys current_;
    std::optional<keys> previous_;
};

} // namespace token_broker::redis
