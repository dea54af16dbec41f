#include "bench_support.hpp"

#include "core/base64.hpp"

#include <fmt/format.h>

#include <fstream>
#include <unistd.h>

namespace token_broker::bench {
namespace {

std::string zak_with_padding(std::string_view user_id, std::int64_t exp, std::uint64_t serial,
                             std::size_t padding, std::size_t signature_bytes) {
    static const std::string header = base64url_encode(R"({"typ":"JWT","str":"cLt7gQ","alg":"HS256"})");
    const std::string claims =
        fmt::format(R"({{"aud":"clientsm","uid":"{}","iss":"web","sk":"0","sty":100,"wcd":"us05","clt":0,)"
                    R"("mnum":"","exp":{},"iat":{},"aid":"s4fT7uXbQ3y9LmNpR2vKwA","cid":"","sid":"{:016x}",)"
                    R"("zm_skm":"{}"}})",
                    user_id, exp, exp - 7200, serial, std::string(padding, 'x'));
    std::string signature(signature_bytes, '\0');
    for (std::size_t i = 0; i < signature_bytes; ++i)
        signature[i] = static_cast<char>((serial * 131 + i * 29) & 0xff);
    return header + "." + base64url_encode(claims) + "." + base64url_encode(signature);
}

} // namespace

std::string make_zak(std::string_view user_id, std::int64_t exp, std::uint64_t serial, std::size_t size) {
    // Padding the payload by one byte grows its part by 1 or 2 characters (never to 4n+1), so a
    // 32- or 33-byte signature (43 or 44 characters) makes up the difference: search the few paddings
    // around the estimate with both.
    const std::size_t bare = zak_with_padding(user_id, exp, serial, 0, 32).size();
    if (size <= bare)
        return zak_with_padding(user_id, exp, serial, 0, 32);
    const std::size_t estimate = (size - bare) * 3 / 4;
    for (std::size_t padding = estimate > 3 ? estimate - 3 : 0; padding <= estimate + 3; ++padding) {
        for (const std::size_t signature_bytes : {32u, 33u}) {
            std::string token = zak_with_padding(user_id, exp, serial, padding, signature_bytes);
            if (token.size() == size) {
                token.shrink_to_fit(); // no slack from the concatenations: memory_bench counts bytes
                return token;
            }
        }
    }
    return zak_with_padding(user_id, exp, serial, estimate, 32); // not reached for sizes above bare
}

std::string user_id(std::size_t n) {
    return fmt::format("user-{:06}@example.com", n);
}

std::size_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::size_t size_pages = 0, resident_pages = 0;
    if (!(statm >> size_pages >> resident_pages))
        return 0;
    return resident_pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

} // namespace token_broker::bench
