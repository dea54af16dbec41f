// A Lua script run by EVALSHA, falling back to EVAL when Redis does not know it (NOSCRIPT: after a
// restart, a failover or SCRIPT FLUSH), so the script body crosses the network only then.
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "redis/client.hpp"
#include "redis/reply.hpp"

#include <string>
#include <vector>

namespace token_broker::redis {

class script {
public:
    // Does no I/O: computes the script's SHA-1 (OpenSSL).
    explicit script(std::string lua);

    const std::string& sha1() const noexcept { return sha1_; } // 40 lower-case hex digits

    // EVALSHA sha1 numkeys keys... args...; on a NOSCRIPT error reply, EVAL with the source once.
    // Completes as connection::exec does: the script's reply (a Redis error reply, e.g. from
    // redis.error_reply, is a reply), or errc::cache_unavailable. `c` and the script must outlive the
    // call.
    net::awaitable<result<reply>> run(client& c, std::vector<std::string> keys,
                                      std::vector<std::string> args) const;

private:
    std::string lua_;
    std::string sha1_;
};

} // namespace token_broker::redis
