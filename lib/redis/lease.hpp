// One protocol for every cross-replica lock (CONTRACT.md section 7, "Locks are leases"): a key taken
// with SET NX PX <lease> and a random value of the attempt's own, renewed by its holder every third of
// the lease (an owner-checked PEXPIRE) while its work runs, released by compare-and-delete. A holder
// that dies stops renewing, and a lock left by a command whose reply timed out (Redis ran it late)
// belongs to nobody: either is gone within one lease. The token fetch takes its lock inside its look
// script (atomically with the reads); the access-token fetch takes it with take_lock().
#pragma once

#include "core/error.hpp"
#include "core/net.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace token_broker::redis {

class client;

// 128 random bits in hex: a lock value (or any id) no other attempt has. Throws std::runtime_error
// when OpenSSL has no random bytes.
std::string random_value();

// SET key value NX PX lease: true when taken, false when someone holds it; errc::cache_unavailable
// when Redis fails. Completes on the caller's executor.
net::awaitable<result<bool>> take_lock(client& c, const std::string& key, const std::string& value,
                                       std::chrono::milliseconds lease);

// Deletes `key` only while it holds `value`. Failures are ignored: the lock lapses by itself.
net::awaitable<void> release_lock(client& c, const std::string& key, const std::string& value);

// Renews `key` for `lease` every third of it, on `ex`, while the returned handle (or a copy) lives and
// the lock is still `value`'s. Holds `c` meanwhile. Dropping the last handle stops it at once (no
// renewal is left sleeping on the executor); one already sent still completes.
std::shared_ptr<void> keep_renewing(net::any_io_executor ex, std::shared_ptr<client> c, std::string key,
                                    std::string value, std::chrono::milliseconds lease,
                                    std::shared_ptr<spdlog::logger> log);

} // namespace token_broker::redis
