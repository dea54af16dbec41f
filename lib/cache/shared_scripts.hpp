// The Lua scripts of the shared tier, each one atomic step on one user's keys under one encryption
// key, or on the registrations (the layout is in shared_redis.hpp): the keys of one hash slot, so that
// each runs on one node of a Redis Cluster. What each takes and answers is written beside its source
// in shared_scripts.cpp.
// They live for the whole process: coroutines that outlive a shared_redis still run them.
#pragma once

#include "core/error.hpp"
#include "redis/reply.hpp"
#include "redis/script.hpp"

#include <chrono>
#include <string>

namespace token_broker::shared_scripts {

// The claim (shared_redis): one look at a key's values, taking its fetch lock when none is usable
// (during a rotation after a read-only look at the values under the previous encryption key); and a
// fetch's result stored, fenced by the user's generation, with its lock released.
const redis::script& look();
const redis::script& look_back();
const redis::script& store();
// The forget broadcast: a forget (or revocation) of one user under one encryption key, the
// registered replicas read after it, and a revoked mark cleared under one encryption key.
const redis::script& forget();
const redis::script& registered_replicas();
const redis::script& reinstate();
// The membership: this replica registered for one lease.
const redis::script& register_replica();

// How long a user's forget generation is kept: far longer than any fetch can take.
inline constexpr std::chrono::milliseconds generation_life{24 * 3600 * 1000};

// What went wrong with a reply that was not the one expected, for a log line.
std::string describe(const result<redis::reply>& r);

} // namespace token_broker::shared_scripts
