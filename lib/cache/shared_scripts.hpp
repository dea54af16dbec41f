// The Lua scripts of the shared tier, each one atomic step on one user's keys (the layout is in
// shared_redis.hpp); what each takes and answers is written beside its source in shared_scripts.cpp.
// They live for the whole process: coroutines that outlive a shared_redis still run them.
#pragma once

#include "core/error.hpp"
#include "redis/reply.hpp"
#include "redis/script.hpp"

#include <chrono>
#include <string>

namespace token_broker::shared_scripts {

// The claim (shared_redis): one look at a key's values, taking its fetch lock when none is usable;
// and a fetch's result stored, fenced by the user's generation, with its lock released.
const redis::script& look();
const redis::script& store();
// The forget broadcast: a forget (or revocation) of one user, and a revoked mark cleared.
const redis::script& forget();
const redis::script& reinstate();
// The membership: this replica registered for one lease.
const redis::script& register_replica();

// How long a user's forget generation is kept: far longer than any fetch can take.
inline constexpr std::chrono::milliseconds generation_life{24 * 3600 * 1000};

// What went wrong with a reply that was not the one expected, for a log line.
std::string describe(const result<redis::reply>& r);

} // namespace token_broker::shared_scripts
