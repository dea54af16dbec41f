// What the broker asks of Redis (CONTRACT.md section 7), whatever Redis is: one server or the master
// the sentinels name (redis::connection), or a Redis Cluster (redis::cluster, one connection per
// master, each command sent to the master of its key's slot).
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"
#include "redis/reply.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {

class refusals;

// Owned by a std::shared_ptr. exec() may be awaited from any executor and completes on the awaiting
// coroutine's executor; the other members may be called from any thread.
class client {
public:
    virtual ~client() = default;

    // Starts connecting in the background, retrying with backoff; never makes a caller wait for it.
    // Call once.
    virtual void start() = 0;
    // Closes every connection and stops reconnecting: commands waiting for a reply complete with an
    // error, later ones fail at once. Call it before the last shared_ptr is dropped. Idempotent.
    virtual void stop() = 0;

    // Connected (a cluster: every master of its slot map), the handshake accepted. A hint: a
    // connection may break at any moment.
    virtual bool up() const noexcept = 0;
    // Completes with up() once it is up (at once when it is), or at `until`, or when stopped,
    // whichever comes first; on the awaiting coroutine's executor.
    virtual net::awaitable<bool> wait_up(std::chrono::steady_clock::time_point until) = 0;
    // `f(up)` is called on every change of up(), e.g. to set a gauge or answer /readyz. Set it before
    // start().
    virtual void on_state(std::function<void(bool up)> f) = 0;

    // Where refusals of what sharing needs (NOPERM, READONLY, OOM: is_refusal) are reported; null
    // (the default) for nowhere. Set it before start().
    void report_refusals(std::shared_ptr<refusals> r) { refusals_ = std::move(r); }
    refusals* refusal_report() const noexcept { return refusals_.get(); }

    // Sends one command (binary-safe arguments) and completes with its reply. A Redis error reply
    // ("-ERR ...", "-NOSCRIPT ...") is a reply, not an error. Errors, all errc::cache_unavailable with
    // a message for the log: not connected (at once, no waiting); `args` empty; no reply within
    // command_timeout; the connection broke or was stopped. A command that failed may still have
    // been executed by Redis. Keeps the client alive while it runs.
    //
    // In a cluster the command goes to the master of its first key's slot (EVAL and EVALSHA: the
    // first of KEYS; a command without a key, such as PUBLISH, to any master), following -MOVED,
    // -ASK and -TRYAGAIN within command_timeout: every key of one command must share a slot.
    virtual net::awaitable<result<reply>> exec(std::vector<std::string> args) = 0;
    // The same with a deadline of its own instead of command_timeout (a command that blocks on
    // purpose, such as WAIT).
    virtual net::awaitable<result<reply>> exec(std::vector<std::string> args,
                                               std::chrono::milliseconds timeout) = 0;

    // With a replicated Redis (CONTRACT.md section 7 "Forgetting is certain"): completes once at
    // least one Redis replica of the master that holds `key` has every write carried to that master
    // before the call (WAIT 1, for half of command_timeout); an error (errc::cache_unavailable) when
    // none confirmed by then, or the connection failed. At once, without error, when that master has
    // no replicas to wait for (a single server; a cluster's master without replicas).
    virtual net::awaitable<result<void>> confirm_replicated(std::string_view key) = 0;

    // Drops the connections in use and connects again without the backoff (a +switch-master was
    // heard). Commands waiting for a reply complete with an error. Any thread.
    virtual void reconnect_now() = 0;

protected:
    client() = default;
    client(const client&) = delete;
    client& operator=(const client&) = delete;
    const std::shared_ptr<refusals>& refusals_shared() const noexcept { return refusals_; }

private:
    std::shared_ptr<refusals> refusals_;
};

} // namespace token_broker::redis
