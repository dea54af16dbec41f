// Where and how to reach Redis (CONTRACT.md section 7: redis.url, password, ca_file and timeouts).
#pragma once

#include "core/secret.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace token_broker::redis {

// redis.max_reply_bytes by default: what one reply may announce and hold (protocol.hpp's reader).
inline constexpr std::size_t default_max_reply_bytes = 1024 * 1024;

// A host and port to connect to.
struct address {
    std::string host;
    std::uint16_t port = 0;
    bool operator==(const address&) const = default;
};

// What a link connects to: the server named by host and port, the master that the sentinels name
// (redis+sentinel://), the sentinels themselves (to hear +switch-master), or a Redis Cluster
// (redis+cluster://: redis::cluster, which connects to its masters as servers).
enum class target { server, sentinel_master, sentinels, cluster };

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
    // redis+sentinel:// (CONTRACT.md section 7, "Redis that survives a node"): with connect_to
    // sentinel_master, every connection first asks the sentinels in turn for master_name's address
    // and then checks ROLE there; host and port are not used. The sentinels get AUTH
    // sentinel_password (no user) when it is set; user and password are the data nodes'.
    target connect_to = target::server;
    std::vector<address> sentinels;
    std::string master_name;
    secret sentinel_password;
    // redis+cluster:// (target::cluster): the nodes asked for the slot map (CLUSTER SLOTS) until one
    // answers; host and port are not used, db is 0. user and password are every node's.
    std::vector<address> cluster_seeds;
    // The command connection: when no reply came for this long, a PING (ROLE under Sentinel) proves
    // the connection alive (and the server still the master); zero for none.
    std::chrono::milliseconds health_check{0};
};

} // namespace token_broker::redis
