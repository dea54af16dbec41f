// Where and how to reach Redis (CONTRACT.md section 7: redis.url, password, ca_file and timeouts).
#pragma once

#include "core/secret.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace token_broker::redis {

// redis.max_reply_bytes by default: what one reply may announce and hold (protocol.hpp's reader).
inline constexpr std::size_t default_max_reply_bytes = 1024 * 1024;

struct options {
    bool tls = false;               // rediss://: TLS 1.2+, chain and host name verified, never off
    std::string host = "127.0.0.1"; // a DNS name or an IP literal: to connect to and to verify
    std::uint16_t port = 6379;
    int db = 0;                                      // SELECT db when not 0
    std::string user;                                // AUTH user password when not empty (Redis 6 ACL users)
    secret password;                                 // AUTH password when not empty
    std::string ca_file;                             // PEM trusted besides the system store (rediss:// only)
    std::chrono::milliseconds connect_timeout{1000}; // resolve + TCP + TLS + AUTH/SELECT, together
    std::chrono::milliseconds command_timeout{250};  // each command, from exec() to its reply
    std::size_t max_reply_bytes = default_max_reply_bytes; // a larger reply drops the connection
};

} // namespace token_broker::redis
