// Fuzzes the JWT expiry reader (cache/jwt.hpp) and the cache's expiry maths built on it
// (token_expiry, refresh_margin in cache/token_cache.hpp) with the input as a token.
//
// Besides the sanitizers, each input is checked against what the headers promise:
// - base64url_decode agrees with a plain reference decoder written here (accepting exactly the
//   alphabet A-Z a-z 0-9 - _, no padding, a length not 1 modulo 4);
// - jwt_expiry never throws, and an `exp` it returns is in 0..max_jwt_exp;
// - token_expiry is the `exp` when it is representable, else fetched_at plus the ttl or the default
//   lifetime; the refresh margin is at most the configured one and a fifth of the lifetime.
#include "cache/jwt.hpp"
#include "cache/token_cache.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace token_broker;
namespace chrono = std::chrono;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "fuzz_jwt: broken promise: %s\n", what);
        std::abort();
    }
}

int sextet(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

// Unpadded base64url, the slow and obvious way: 6 bits a character, a byte each time 8 are ready.
std::optional<std::string> reference_decode(std::string_view encoded) {
    if (encoded.size() % 4 == 1)
        return std::nullopt;
    std::string out;
    std::uint32_t bits = 0;
    int held = 0;
    for (char c : encoded) {
        const int v = sextet(c);
        if (v < 0)
            return std::nullopt;
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        held += 6;
        if (held >= 8) {
            held -= 8;
            out.push_back(static_cast<char>((bits >> held) & 0xff));
        }
    }
    return out;
}

void check_base64url(std::string_view input) {
    const std::optional<std::string> reference = reference_decode(input);
    const std::optional<std::string> decoded = base64url_decode(input, std::size_t(-1));
    require(decoded.has_value() == reference.has_value(), "base64url_decode accepts what the reference does");
    if (decoded)
        require(*decoded == *reference, "base64url_decode decodes as the reference does");

    // The size limit is checked before decoding: one byte less than needed refuses the input.
    if (reference && !reference->empty())
        require(!base64url_decode(input, reference->size() - 1), "max_decoded is honoured");
}

void check_expiry(std::string_view token) {
    const std::optional<std::int64_t> exp = jwt_expiry(token);
    if (exp)
        require(*exp >= 0 && *exp <= max_jwt_exp, "exp within 0..max_jwt_exp");

    // A fixed, realistic fetch time keeps the check deterministic.
    const time_point fetched_at{chrono::seconds(1'790'000'000)};
    constexpr auto representable = chrono::floor<chrono::seconds>(time_point::max().time_since_epoch());
    constexpr std::array<std::optional<std::uint32_t>, 3> ttls{std::nullopt, 60u, 31'536'000u};
    for (token_type type : {token_type::zak, token_type::token, token_type::onbehalf}) {
        for (const auto& ttl : ttls) {
            const time_point expires_at = token_expiry(token, type, ttl, fetched_at);
            const time_point expected =
                exp && *exp <= representable.count()
                    ? time_point(chrono::seconds(*exp))
                    : fetched_at + (ttl ? chrono::seconds(*ttl) : default_lifetime(type));
            require(expires_at == expected, "token_expiry is exp, or fetched_at plus the lifetime");

            const chrono::seconds configured{300};
            const chrono::seconds margin = refresh_margin(fetched_at, expires_at, configured);
            const auto lifetime = chrono::floor<chrono::seconds>(expires_at - fetched_at);
            require(margin >= chrono::seconds::zero() && margin <= configured, "margin within 0..configured");
            require(lifetime <= chrono::seconds::zero() ? margin == chrono::seconds::zero()
                                                        : margin <= lifetime / 5,
                    "margin at most a fifth of the lifetime");
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_base64url(input);
    check_expiry(input);
    return 0;
}
