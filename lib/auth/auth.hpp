// Caller authentication and authorization (CONTRACT.md sections 2 and 3): callers present
// `Authorization: Bearer <key>`; the configuration holds only the SHA-256 of each key and the user-id
// patterns that key may ask for.
#pragma once

#include "config/config.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace token_broker {

// True when `user_id` matches `pattern`: byte for byte, where each '*' in the pattern stands for any
// run of bytes, empty included ("*@example.com", "team-*", "a*b*c", "*"). There is no escape: a
// pattern cannot match a literal '*' only. Case-sensitive; an empty pattern matches only an empty id.
// Greedy two-pointer matching with backtracking to the last '*' only: O(pattern x user_id) at worst,
// linear in practice, never exponential. Never throws.
bool user_pattern_matches(std::string_view pattern, std::string_view user_id) noexcept;

// The SHA-256 digest of `data`, by OpenSSL. Throws std::runtime_error only if OpenSSL fails, which
// means the library itself is broken.
std::array<std::uint8_t, 32> sha256(std::string_view data);

// The credentials of an Authorization header value in the form "Bearer <token>": the scheme
// case-insensitively "Bearer", then one or more spaces, then a non-empty token of visible ASCII
// (0x21 to 0x7E) with nothing after it. Spaces and tabs around the whole value are ignored. The
// result views `authorization_header`. std::nullopt for any other scheme, a missing or empty token,
// a second word, or control bytes. Never throws.
std::optional<std::string_view> bearer_token(std::string_view authorization_header) noexcept;

// Who a presented key belongs to, and what that caller may ask for. Immutable once built, so one
// instance can be shared by all threads; on a reload of the keys the caller builds a new one and
// swaps a std::shared_ptr<const authenticator>.
class authenticator {
public:
    authenticator() = default;
    explicit authenticator(std::vector<caller_key> keys) : keys_(std::move(keys)) {}

    // The configured key whose SHA-256 equals that of `presented_key`, or nullptr when none does or
    // the presented key is empty. Compares the digest against every configured one with CRYPTO_memcmp
    // and never stops early, so the time taken does not depend on which key matched or whether one
    // did (it would reveal little anyway: only digests are compared). When two entries share a digest,
    // the first configured wins. The pointer is valid as long as this authenticator lives.
    // O(number of keys). Throws only what sha256 throws.
    const caller_key* identify(std::string_view presented_key) const;

    // True when one of `key.users` matches `user_id` (user_pattern_matches). An empty list: nobody.
    static bool may_access(const caller_key& key, std::string_view user_id) noexcept;

    // True when no key is configured (the service then runs unauthenticated, if allowed at all).
    bool empty() const noexcept { return keys_.empty(); }

    const std::vector<caller_key>& keys() const noexcept { return keys_; }

private:
    std::vector<caller_key> keys_;
};

} // namespace token_broker
