#include "cache/shared_scripts.hpp"

#include <string_view>

namespace token_broker::shared_scripts {
namespace {

// Every script's KEYS are of one hash slot (shared_keys.hpp, shared_script_keys): one user's keys
// under one encryption key, or the registrations alone. Keys a script finds in a set (the entries of
// a user's set) were named under the same hash tag, so they are in that slot too.

// KEYS: the value keys to read, then the lock, then the user's generation, then its revoked mark, all
// under the current encryption key. ARGV: the lock's value, its life in ms. Answers the values (false
// for none), then 1 when the lock was taken for ARGV[1], or the value of the lock that someone else
// holds, or 0 when values were there (the lock is not tried then), or -1 when the user is marked
// revoked (nothing read, the lock not tried), then the user's generation ('0' when none), and last
// the lock's time to live in ms (PTTL: -2 when there is none), so that a waiter knows when a lock
// whose holder died lapses.
constexpr std::string_view look_lua = R"lua(
local n = #KEYS - 3
local out = {}
if redis.call('EXISTS', KEYS[n + 3]) == 1 then
  for j = 1, n do out[j] = false end
  out[n + 1] = -1
  out[n + 2] = redis.call('GET', KEYS[n + 2]) or '0'
  out[n + 3] = -2
  return out
end
local found = false
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  out[i] = v
  if v then found = true end
end
if found then
  out[n + 1] = 0
elseif redis.call('SET', KEYS[n + 1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  out[n + 1] = 1
else
  out[n + 1] = redis.call('GET', KEYS[n + 1]) or 0
end
out[n + 2] = redis.call('GET', KEYS[n + 2]) or '0'
out[n + 3] = redis.call('PTTL', KEYS[n + 1])
return out
)lua";

// During a rotation, before the look: KEYS: the user's revoked mark under the previous encryption
// key, then the value keys to read there. Reads only. Answers {-1} when the mark is there (nothing
// read), else 0 followed by the values (false for none).
constexpr std::string_view look_back_lua = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {-1}
end
local out = {0}
for i = 2, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out
)lua";

// KEYS: the value key, the lock, the user's generation, and (for a token) the user's set of
// entries. ARGV: the sealed value ('' to write nothing), its life in ms, the lock's value ('' when
// not held), the channel and the message that wakes the waiters, the generation read when the lock
// was taken. The value is written only when no forget came since (the generation is unchanged); the
// lock is released only when it still holds this attempt's value. Answers 1 when written, else 0.
constexpr std::string_view store_lua = R"lua(
local fresh = (redis.call('GET', KEYS[3]) or '0') == ARGV[6]
local written = 0
if ARGV[1] ~= '' and fresh then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  written = 1
  if #KEYS >= 4 then
    redis.call('SADD', KEYS[4], KEYS[1])
    if redis.call('PTTL', KEYS[4]) < tonumber(ARGV[2]) then
      redis.call('PEXPIRE', KEYS[4], ARGV[2])
    end
  end
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return written
)lua";

// The Redis time in ms, in a script (allowed in Redis 7: effects are replicated).
#define TOKEN_BROKER_LUA_NOW                                                                                 \
    "local t = redis.call('TIME')\n"                                                                         \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

// A user's forget under one encryption key (run once for each key in use). KEYS: the user's
// generation, set of entries and unknown-user entry, then for a revocation its revoked mark. ARGV: a
// channel ('' for none) and a message, the generation's life in ms, the revoked mark's life in ms.
// Bumps the generation, deletes the entries of the set, the set and the unknown-user entry, sets the
// revoked mark when there is one, then publishes the message on the channel. Answers 1.
constexpr std::string_view forget_lua = R"lua(
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('DEL', k)
end
redis.call('DEL', KEYS[2], KEYS[3])
if #KEYS >= 4 then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
end
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
)lua";

// KEYS: the registrations. Drops the lapsed ones; answers the Redis time in ms, then each registered
// replica's id and the time its registration lapses.
constexpr std::string_view registered_lua = TOKEN_BROKER_LUA_NOW R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {now}
for _, v in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')) do
  out[#out + 1] = v
end
return out
)lua";

// KEYS: a user's revoked mark under one encryption key (run once for each key in use). ARGV: a
// channel ('' for none) and the message that tells the replicas. Deletes the mark, publishes,
// answers 1.
constexpr std::string_view reinstate_lua = R"lua(
redis.call('DEL', KEYS[1])
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
)lua";

// KEYS: the registrations. ARGV: this replica's id, its lease in ms. Registers it until now + lease.
constexpr std::string_view register_lua = TOKEN_BROKER_LUA_NOW R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
)lua";

#undef TOKEN_BROKER_LUA_NOW

} // namespace

const redis::script& look() {
    static const redis::script s{std::string(look_lua)};
    return s;
}

const redis::script& look_back() {
    static const redis::script s{std::string(look_back_lua)};
    return s;
}

const redis::script& store() {
    static const redis::script s{std::string(store_lua)};
    return s;
}

const redis::script& forget() {
    static const redis::script s{std::string(forget_lua)};
    return s;
}

const redis::script& registered_replicas() {
    static const redis::script s{std::string(registered_lua)};
    return s;
}

const redis::script& reinstate() {
    static const redis::script s{std::string(reinstate_lua)};
    return s;
}

const redis::script& register_replica() {
    static const redis::script s{std::string(register_lua)};
    return s;
}

std::string describe(const result<redis::reply>& r) {
    if (!r)
        return r.error().message;
    if (r->is_error())
        return "Redis answered an error";
    return "Redis answered something unexpected";
}

} // namespace token_broker::shared_scripts
