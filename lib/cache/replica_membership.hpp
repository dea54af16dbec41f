// This replica's registration among the replicas that share a Redis (CONTRACT.md section 7,
// "Forgetting is certain"): P replicas is a sorted set of random replica ids, each scored with the
// Redis time (ms) at which its registration lapses. The subscription PINGs every third of
// redis.invalidation_lease_ms; each answer renews the registration for one lease, and only then lets
// this replica serve its in-memory copies, for one lease from the moment that PING was sent. A forget
// waits for the replicas registered when it ran (forget_broadcast).
#pragma once

#include "core/net.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace token_broker {

namespace redis {
class client;
}

class replica_membership {
public:
    using steady = std::chrono::steady_clock;

    // Does no I/O until on_alive(). `connection` is the replica's command connection.
    replica_membership(net::any_io_executor ex, std::shared_ptr<redis::client> connection,
                       std::string members_key, std::chrono::milliseconds lease,
                       std::shared_ptr<spdlog::logger> log);

    const std::string& id() const noexcept { return id_; }
    const std::string& members_key() const noexcept { return members_key_; }

    // How often the subscription is to PING: a third of the lease.
    std::chrono::milliseconds health_check_interval() const noexcept;
    // The subscription answered the PING sent at `sent`: renews the registration (in the background).
    void on_alive(steady::time_point sent);

    // While Redis answers: only for one lease after a PING that was answered and renewed the
    // registration was sent. While this replica cannot reach Redis: true (a lone replica). False once
    // at each change between the two, so that copies made before it are dropped.
    bool local_copies_allowed() noexcept;

private:
    struct liveness {
        std::atomic<std::int64_t> valid_until{0}; // steady clock ticks
    };
    // Holds what it uses, so it may finish after its owner is gone.
    static net::awaitable<void> renew(std::shared_ptr<redis::client> connection,
                                      std::shared_ptr<liveness> live, std::string members_key, std::string id,
                                      std::chrono::milliseconds lease, steady::time_point sent);

    net::any_io_executor executor_;
    std::shared_ptr<redis::client> connection_;
    std::string members_key_;
    std::string id_; // random, this process's own
    std::chrono::milliseconds lease_;
    std::shared_ptr<spdlog::logger> log_;
    std::shared_ptr<liveness> liveness_;
    std::atomic<bool> last_up_{false}; // connection_->up() at the last local_copies_allowed()
};

} // namespace token_broker
