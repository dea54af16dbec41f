// Realistic inputs shared by the microbenchmarks and the memory measurement: ZAK-shaped tokens of a
// chosen size, user ids, and the resident set size of the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace token_broker::bench {

// A JWT shaped like a ZAK (header.payload.signature, base64url, the claims Zoom puts in one) for
// `user_id` with the given `exp`, padded through its `zm_skm` claim to exactly `size` bytes when
// that is at least the size without padding (about 330 bytes). Distinct `serial`s give distinct
// tokens.
std::string make_zak(std::string_view user_id, std::int64_t exp, std::uint64_t serial,
                     std::size_t size = 500);

// "user-<n>@example.com" with n zero-padded to 6 digits: the shape of the ids callers send.
std::string user_id(std::size_t n);

// The resident set size of this process in bytes, from /proc/self/statm; 0 if it cannot be read.
std::size_t resident_bytes();

} // namespace token_broker::bench
