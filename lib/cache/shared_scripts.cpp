#include "cache/shared_scripts.hpp"

#include <string_view>

namespace token_broker::shared_scripts {
namespace {

// KEYS: the value keys to read, then the lock, then the user's generation, then ARGV[3] revoked marks.
// ARGV: the lock's value, its life in ms, how many revoked marks. Answers the values (false for
// none), then 1 when the lock was taken for ARGV[1], or the value of the lock that someone else
// holds, or 0 when values were there (the lock is not tried then), or -1 when the user is marked
// revoked (nothing read, the lock not tried), then the user's generation ('0' when none), and last
// the lock's time to live in ms (PTTL: -2 when there is none), so that a waiter knows when a lock
// whose holder died lapses.
constexpr std::string_view look_lua = R"lua(
local marks = tonumber(ARGV[3])
local n = #KEYS - 2 - marks
local out = {}
for i = n + 3, n + 2 + marks do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    for j = 1, n do out[j] = false end
    out[n + 1] = -1
    out[n + 2] = redis.call('GET', KEYS[n + 2]) or '0'
    out[n + 3] = -2
    return out
  end
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

// KEYS: the registrations, ARGV[3] generations, ARGV[4] sets of entries, then other keys, then
// ARGV[7] revoked marks. Drops the lapsed registrations, bumps the generations (kept ARGV[5] ms),
// deletes the entries of the sets, the sets and the other keys, sets the revoked marks for ARGV[6] ms
// (none when ARGV[7] is 0), then publishes ARGV[2] on ARGV[1] (unless ARGV[1] is empty). Answers the
// Redis time in ms, then each registered replica's id and the time its registration lapses.
constexpr std::string_view forget_lua = TOKEN_BROKER_LUA_NOW R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gens = tonumber(ARGV[3])
local sets = tonumber(ARGV[4])
local marks = tonumber(ARGV[7])
for i = 2, 1 + gens do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[5])
end
for i = 2 + gens, 1 + gens + sets do
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    redis.call('DEL', k)
  end
end
redis.call('DEL', unpack(KEYS, 2 + gens, #KEYS - marks))
for i = #KEYS - marks + 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[6])
end
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
local out = {now}
for _, v in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')) do
  out[#out + 1] = v
end
return out
)lua";

// KEYS: a user's revoked marks. ARGV: the channel and the message that tell the replicas. Deletes the
// marks, publishes, answers 1.
constexpr std::string_view reinstate_lua = R"lua(
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], ARGV[2])
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

const redis::script& store() {
    static const redis::script s{std::string(store_lua)};
    return s;
}

const redis::script& forget() {
    static const redis::script s{std::string(forget_lua)};
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
