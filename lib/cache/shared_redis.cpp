#include "cache/shared_redis.hpp"

#include "core/spawn.hpp"
#include "core/user_identity.hpp"
#include "redis/lease.hpp"
#include "redis/refusals.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <set>
#include <stdexcept>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// KEYS: the value keys to read, then the lock, then the user's generation, then ARGV[3] revoked marks.
// ARGV: the lock's value, its life in ms, how many revoked marks. Answers the values (false for
// none), then 1 when the lock was taken for ARGV[1], or the value of the lock that someone else
// holds, or 0 when values were there (the lock is not tried then), or -1 when the user is marked
// revoked (nothing read, the lock not tried), and last the user's generation ('0' when none).
constexpr std::string_view look_lua = R"lua(
local marks = tonumber(ARGV[3])
local n = #KEYS - 2 - marks
local out = {}
for i = n + 3, n + 2 + marks do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    for j = 1, n do out[j] = false end
    out[n + 1] = -1
    out[n + 2] = redis.call('GET', KEYS[n + 2]) or '0'
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

// The scripts, for the life of the process: coroutines that outlive a shared_redis still use them.
const redis::script& look_script() {
    static const redis::script s{std::string(look_lua)};
    return s;
}
const redis::script& store_script() {
    static const redis::script s{std::string(store_lua)};
    return s;
}
const redis::script& forget_script() {
    static const redis::script s{std::string(forget_lua)};
    return s;
}
const redis::script& reinstate_script() {
    static const redis::script s{std::string(reinstate_lua)};
    return s;
}
const redis::script& register_script() {
    static const redis::script s{std::string(register_lua)};
    return s;
}
// How long a user's forget generation is kept: far longer than any fetch can take.
constexpr std::chrono::milliseconds generation_life{24 * 3600 * 1000};

std::int64_t ticks(steady::time_point t) {
    return t.time_since_epoch().count();
}

std::string describe(const result<redis::reply>& r) {
    if (!r)
        return r.error().message;
    if (r->is_error())
        return "Redis answered an error";
    return "Redis answered something unexpected";
}

} // namespace

std::optional<forget_message> read_forget_message(std::string_view message) {
    if (message.size() < 33 || message[32] != ':')
        return std::nullopt;
    forget_message m;
    m.nonce = message.substr(0, 32);
    auto rest = message.substr(33);
    std::size_t head = 32;
    if (rest.starts_with(reinstate_tag) && rest.size() > reinstate_tag.size() &&
        rest[reinstate_tag.size()] == ':') {
        m.reinstate = true;
        head += 1 + reinstate_tag.size();
    } else if (rest.starts_with(revoke_tag)) {
        const auto digits = rest.substr(revoke_tag.size());
        long long ms = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
        // A tag that does not read is kept in the head: the seal then fails, and the replica drops
        // every copy rather than guess.
        if (ec == std::errc{} && end != digits.data() && end < digits.data() + digits.size() && *end == ':' &&
            ms > 0) {
            m.revoked_for = std::chrono::milliseconds(ms);
            head += 1 + revoke_tag.size() + static_cast<std::size_t>(end - digits.data());
        }
    }
    m.head = message.substr(0, head);
    m.sealed = message.substr(head + 1);
    return m;
}

// A coroutine waiting for news (another replica's fetch of one key ended, a replica confirmed a
// DELETE): woken by the subscription's thread, or by its own deadline. Its timer lives on a strand of
// its own, where both the wait and the wake run, so it is never touched from two threads.
struct shared_redis::waiter {
    explicit waiter(const net::any_io_executor& ex) : strand(net::make_strand(ex)), timer(strand) {}

    net::strand<net::any_io_executor> strand;
    net::steady_timer timer;
    bool woken = false; // on the strand: news came since the last sleep

    // Any thread.
    static void wake(const std::shared_ptr<waiter>& w) {
        net::post(w->strand, [w] {
            w->woken = true;
            w->timer.cancel();
        });
    }

    // Completes when woken (at once when news came since the last sleep) or after `d`, whichever
    // comes first; on the caller's executor.
    static net::awaitable<void> sleep(std::shared_ptr<waiter> w, std::chrono::milliseconds d) {
        auto strand = w->strand;
        co_await net::co_spawn(strand, sleep_on_strand(std::move(w), d), net::use_awaitable);
    }

private:
    static net::awaitable<void> sleep_on_strand(std::shared_ptr<waiter> w, std::chrono::milliseconds d) {
        if (!std::exchange(w->woken, false)) {
            w->timer.expires_after(d);
            co_await w->timer.async_wait(net::as_tuple(net::use_awaitable));
            w->woken = false;
        }
    }
};

// A waiter entered under its key for as long as the registration lives.
class shared_redis::waiter_registration {
public:
    waiter_registration(shared_redis& owner, const std::string& key)
        : owner_(owner), waiter_(std::make_shared<waiter>(owner.executor_)) {
        std::lock_guard lock(owner_.waiters_mutex_);
        it_ = owner_.waiters_.emplace(key, waiter_);
    }
    ~waiter_registration() {
        std::lock_guard lock(owner_.waiters_mutex_);
        owner_.waiters_.erase(it_);
    }
    waiter_registration(const waiter_registration&) = delete;
    waiter_registration& operator=(const waiter_registration&) = delete;

    const std::shared_ptr<waiter>& get() const noexcept { return waiter_; }

private:
    shared_redis& owner_;
    std::shared_ptr<waiter> waiter_;
    std::unordered_multimap<std::string, std::shared_ptr<waiter>>::iterator it_;
};

// The replicas that confirmed one DELETE, by id, and the DELETE waiting for them.
struct shared_redis::confirmations {
    explicit confirmations(const net::any_io_executor& ex) : news(std::make_shared<waiter>(ex)) {}
    std::mutex mutex;
    std::set<std::string> ids;
    std::shared_ptr<waiter> news; // woken at each confirmation
};

// A DELETE's confirmations, entered under its nonce for as long as it lives.
class shared_redis::acknowledgements {
public:
    acknowledgements(shared_redis& owner, const std::string& nonce)
        : owner_(owner), got_(std::make_shared<confirmations>(owner.executor_)) {
        std::lock_guard lock(owner_.acknowledgements_mutex_);
        it_ = owner_.acknowledgements_.emplace(nonce, got_).first;
    }
    ~acknowledgements() {
        std::lock_guard lock(owner_.acknowledgements_mutex_);
        owner_.acknowledgements_.erase(it_);
    }
    acknowledgements(const acknowledgements&) = delete;
    acknowledgements& operator=(const acknowledgements&) = delete;

    bool from(const std::string& id) const {
        std::lock_guard lock(got_->mutex);
        return got_->ids.contains(id);
    }
    // Completes at the next confirmation, or after `d`.
    net::awaitable<void> next(std::chrono::milliseconds d) const { return waiter::sleep(got_->news, d); }

private:
    shared_redis& owner_;
    std::shared_ptr<confirmations> got_;
    std::unordered_map<std::string, std::shared_ptr<confirmations>>::iterator it_;
};

// Until when (steady clock ticks) this replica may serve its in-memory copies while Redis answers.
struct shared_redis::liveness {
    std::atomic<std::int64_t> valid_until{0};
};

// What one look found.
struct shared_redis::look {
    std::optional<shared_entry> entry; // the first usable value, in the order asked
    bool present = false;              // some value was there, usable or not
    bool locked = false;               // the lock was taken for this attempt
    bool revoked = false;              // the user is marked revoked: nothing read, the lock not tried
    std::string holder;                // else the value of the lock someone else holds, if any
    std::string generation;            // the user's forget generation
};

shared_redis::shared_redis(net::any_io_executor ex, std::shared_ptr<redis::connection> connection, settings s,
                           metrics& m, std::shared_ptr<spdlog::logger> log, wall_clock now)
    : executor_(std::move(ex)), settings_(std::move(s)), metrics_(m), log_(std::move(log)),
      now_(std::move(now)), sealer_(settings_.encryption_key, settings_.previous_encryption_key),
      connection_(std::move(connection)), done_channel_(settings_.key_prefix + "done"),
      forget_channel_(settings_.key_prefix + "forget"),
      forgotten_channel_(settings_.key_prefix + "forgotten"), members_key_(settings_.key_prefix + "replicas"),
      replica_id_(redis::random_value()), liveness_(std::make_shared<liveness>()) {
    settings_.forget_confirm_timeout =
        std::max(settings_.forget_confirm_timeout, settings_.invalidation_lease + 250ms);
    if (!connection_)
        throw std::invalid_argument("shared_redis needs a Redis connection");
    if (settings_.encryption_key.reveal().size() != 32)
        throw std::invalid_argument("redis.encryption_key must be 32 bytes");
}

shared_redis::~shared_redis() {
    stop();
}

void shared_redis::start() {
    wait_until_ = steady::now() + settings_.wait_for_redis;
}

void shared_redis::stop() {
    stopped_.store(true, std::memory_order_release);
}

std::vector<std::string> shared_redis::channels() const {
    return {done_channel_, forget_channel_, forgotten_channel_};
}

bool shared_redis::up() const noexcept {
    return connection_->up();
}

bool shared_redis::local_copies_allowed() noexcept {
    const bool up = connection_->up();
    if (last_up_.exchange(up, std::memory_order_acq_rel) != up)
        return false;
    if (!up)
        return true;
    return ticks(steady::now()) < liveness_->valid_until.load(std::memory_order_acquire);
}

std::chrono::milliseconds shared_redis::health_check_interval() const noexcept {
    return std::max(settings_.invalidation_lease / 3, std::chrono::milliseconds{1});
}

void shared_redis::on_alive(steady::time_point sent) {
    net::co_spawn(executor_,
                  renew_registration(connection_, liveness_, members_key_, replica_id_,
                                     settings_.invalidation_lease, sent),
                  log_escaped_exception(log_, "renewing this replica's registration"));
}

net::awaitable<void> shared_redis::renew_registration(std::shared_ptr<redis::connection> connection,
                                                      std::shared_ptr<liveness> live, std::string members_key,
                                                      std::string id, std::chrono::milliseconds lease,
                                                      steady::time_point sent) {
    std::vector<std::string> keys{std::move(members_key)};
    std::vector<std::string> args{std::move(id), std::to_string(lease.count())};
    auto r = co_await register_script().run(*connection, std::move(keys), std::move(args));
    if (!r || r->is_error())
        co_return;
    // A write by script went through: whatever Redis refused the commands before, it accepts now.
    if (auto* refused = connection->refusal_report())
        refused->accepted("commands");
    // The registration now lasts at least until sent + lease (Redis ran it after the PING was sent).
    const auto until = ticks(sent + lease);
    auto seen = live->valid_until.load(std::memory_order_acquire);
    while (seen < until && !live->valid_until.compare_exchange_weak(seen, until, std::memory_order_acq_rel)) {
    }
}

net::awaitable<bool> shared_redis::connected() {
    if (connection_->up() || stopped_.load(std::memory_order_acquire) || steady::now() >= wait_until_)
        co_return connection_->up();
    co_return co_await connection_->wait_up(wait_until_);
}

void shared_redis::listen(listener l) {
    std::lock_guard lock(listener_mutex_);
    listener_ = std::move(l);
}

namespace {

// The names of a user's keys, from `user` (prefix + "u:" + the HMAC of the user id).
shared_redis::key_names names_from(const std::string& user, const cache_key& key) {
    const auto entry =
        user + ":" + std::string(to_string(key.type)) + ":" + (key.ttl ? std::to_string(*key.ttl) : "-");
    return {entry,          entry + ":lock", entry + ":error", user + ":unknown",
            user + ":keys", user + ":gen",   user + ":revoked"};
}

} // namespace

shared_redis::key_names shared_redis::names_of(const cache_key& key) const {
    // An email's keys are named after its lower-cased form, so that a forget of any spelling removes
    // them (core/user_identity.hpp).
    return names_from(sealer_.key_name(settings_.key_prefix, "u", user_identity(key.user_id)), key);
}

std::optional<shared_redis::key_names> shared_redis::previous_names_of(const cache_key& key) const {
    auto user = sealer_.previous_key_name(settings_.key_prefix, "u", user_identity(key.user_id));
    if (!user)
        return std::nullopt;
    return names_from(*user, key);
}

std::optional<shared_entry> shared_redis::open_entry(const std::string& name, const std::string& sealed) {
    auto plain = sealer_.open(name, sealed);
    auto e = plain ? decode_shared_entry(*plain) : std::nullopt;
    if (!e) {
        // Another key, tampered with, or not ours: a miss, overwritten by the next fetch.
        metrics_.redis_undecryptable();
        log_->warn("a value in Redis does not decrypt under the encryption key (or the previous one): "
                   "treated as absent");
    }
    return e;
}

net::awaitable<std::optional<shared_redis::look>>
shared_redis::look_once(const std::vector<std::string>& values, const key_names& names,
                        const std::vector<std::string>& marks, const std::string& lock_value,
                        const std::string& accept_errors_of, bool for_refresh) {
    auto keys = values;
    keys.push_back(names.lock);
    keys.push_back(names.generation);
    keys.insert(keys.end(), marks.begin(), marks.end());
    const auto lock_ms = std::to_string(settings_.lock_lease.count());
    // Named, not braced temporaries: gcc 12 mishandles those as arguments inside co_await.
    std::vector<std::string> args{lock_value, lock_ms, std::to_string(marks.size())};
    auto r = co_await look_script().run(*connection_, std::move(keys), std::move(args));
    if (!r || r->type != redis::reply::kind::array || r->elements.size() != values.size() + 2 ||
        (r->elements[values.size()].type != redis::reply::kind::integer &&
         r->elements[values.size()].type != redis::reply::kind::string) ||
        r->elements.back().type != redis::reply::kind::string) {
        log_->debug("reading the shared cache failed: {}", describe(r));
        co_return std::nullopt;
    }
    look l;
    const auto& lock = r->elements[values.size()];
    l.generation = r->elements.back().text;
    if (lock.type == redis::reply::kind::integer && lock.integer == -1) {
        l.revoked = true;
        co_return l;
    }
    l.locked = lock.type == redis::reply::kind::integer && lock.integer == 1;
    if (lock.type == redis::reply::kind::string)
        l.holder = lock.text;
    l.generation = r->elements.back().text;
    const auto now = now_();
    for (std::size_t i = 0; i < values.size(); ++i) {
        const auto& v = r->elements[i];
        if (v.type != redis::reply::kind::string)
            continue;
        l.present = true;
        if (l.entry)
            continue;
        auto e = open_entry(values[i], v.text);
        if (!e || !usable_shared_entry(*e, now, settings_.cache.refresh_margin, for_refresh))
            continue;
        // An error is the answer only of the fetch being waited for, not of an older one.
        if (e->what == shared_entry::kind::error &&
            (accept_errors_of.empty() || e->fetch_id != accept_errors_of))
            continue;
        l.entry = std::move(e);
    }
    if (!l.entry && !l.locked && l.present) {
        // Only unusable values: the lock decides who fetches a better one.
        const std::vector<std::string> none;
        auto again = co_await look_once(none, names, marks, lock_value, accept_errors_of, for_refresh);
        if (!again)
            co_return std::nullopt;
        l.revoked = again->revoked;
        l.locked = again->locked;
        l.holder = std::move(again->holder);
        l.generation = std::move(again->generation);
    }
    co_return l;
}

net::awaitable<shared_tokens::claim> shared_redis::acquire(const cache_key& key, bool for_refresh) {
    claim c; // fetch_alone unless Redis says otherwise
    if (!co_await connected())
        co_return c;
    const auto names = names_of(key);
    std::vector<std::string> first{names.entry, names.unknown};
    if (auto old = previous_names_of(key)) {
        first.push_back(std::move(old->entry));
        first.push_back(std::move(old->unknown));
    }
    auto waiting = first;
    waiting.push_back(names.error);
    const auto marks = revoked_marks_of(key.user_id);

    // Entered before the first look, so that a publication between that look and the wait wakes it.
    waiter_registration registration(*this, names.entry);
    const auto value = redis::random_value();
    const auto settle = [&](look& l) {
        if (l.revoked) {
            c.what = claim::kind::revoked;
            return true;
        }
        if (l.entry) {
            if (l.entry->what == shared_entry::kind::token)
                metrics_.shared_cache_hit();
            c.what = claim::kind::found;
            c.entry = std::move(*l.entry);
            return true;
        }
        if (l.locked) {
            // Renewed every third of its lease while the fetch runs, that is while the lease handed
            // out (or a copy of it) lives.
            c.what = claim::kind::fetch;
            c.held = lease{
                names.lock, value, l.generation,
                redis::keep_renewing(executor_, connection_, names.lock, value, settings_.lock_lease, log_)};
            return true;
        }
        return false;
    };

    const std::string no_error;
    auto l = co_await look_once(first, names, marks, value, no_error, for_refresh);
    if (!l)
        co_return c;
    if (settle(*l))
        co_return c;

    // Another replica is fetching this key: wait for its result. Its holder renews the lock while its
    // Zoom call runs; a lock whose holder died (or that nobody holds: a command Redis ran after its
    // sender gave up on it) lapses within one lock lease, and then this replica takes it. In all, at
    // most zoom.request_timeout_ms plus one lock lease.
    metrics_.replica_wait();
    const auto bound = settings_.request_timeout + settings_.lock_lease;
    const auto deadline = steady::now() + bound;
    auto holder = l->holder;
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now());
        if (left <= 0ms) {
            log_->info("waited {} ms for another replica's fetch; fetching alone", bound.count());
            co_return c;
        }
        co_await waiter::sleep(registration.get(), std::min(left, settings_.poll_interval));
        l = co_await look_once(waiting, names, marks, value, holder, for_refresh);
        if (!l)
            co_return c;
        if (settle(*l))
            co_return c;
        if (!l->holder.empty())
            holder = l->holder;
    }
}

net::awaitable<void> shared_redis::store(const cache_key& key, std::optional<lease> held,
                                         const shared_entry* e) {
    // Without the lock there is no generation to fence the write with: nothing to write, nothing
    // to release.
    if (!held)
        co_return;
    const auto names = names_of(key);
    std::vector<std::string> keys{names.entry, held->lock_key, names.generation};
    std::chrono::milliseconds life{0};
    if (e) {
        switch (e->what) {
        case shared_entry::kind::token:
            life = shared_token_lifetime(*e, now_(), settings_.cache.refresh_margin);
            keys.push_back(names.index);
            break;
        case shared_entry::kind::unknown_user:
            keys[0] = names.unknown;
            life = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.cache.negative_ttl);
            break;
        case shared_entry::kind::error:
            keys[0] = names.error;
            life = settings_.error_ttl;
            break;
        }
    }
    std::string sealed;
    if (e && life > 0ms) {
        auto written = *e;
        written.fetch_id = held->value;
        sealed = sealer_.seal(keys[0], encode_shared_entry(written));
    } else if (keys.size() > 3) {
        keys.pop_back();
    }
    std::vector<std::string> args{std::move(sealed), std::to_string(life.count()),
                                  held->value,       done_channel_,
                                  names.entry,       held->generation};
    auto r = co_await store_script().run(*connection_, std::move(keys), std::move(args));
    if (!r || r->is_error())
        log_->debug("writing to the shared cache failed: {}", describe(r));
    else if (r->type == redis::reply::kind::integer && r->integer == 0 && e && life > 0ms)
        log_->debug("a fetch's result was not shared: the user was forgotten while it ran");
}

std::vector<std::string> shared_redis::revoked_marks_of(const std::string& user_id) const {
    const cache_key any{user_id, token_type::zak, std::nullopt};
    std::vector<std::string> marks{names_of(any).revoked};
    if (auto old = previous_names_of(any))
        marks.push_back(std::move(old->revoked));
    return marks;
}

shared_redis::forget_keys shared_redis::forget_keys_of(const std::string& user_id,
                                                       std::chrono::milliseconds revoked_for) const {
    const cache_key any{user_id, token_type::zak, std::nullopt};
    const auto names = names_of(any);
    std::vector<std::string> generations{names.generation}, sets{names.index}, others{names.unknown};
    if (auto old = previous_names_of(any)) {
        generations.push_back(std::move(old->generation));
        sets.push_back(std::move(old->index));
        others.push_back(std::move(old->unknown));
    }
    forget_keys f;
    f.keys.push_back(members_key_);
    f.generations = std::to_string(generations.size());
    f.sets = std::to_string(sets.size());
    for (auto* part : {&generations, &sets, &others})
        f.keys.insert(f.keys.end(), part->begin(), part->end());
    if (revoked_for > 0ms) {
        auto marks = revoked_marks_of(user_id);
        f.marks = std::to_string(marks.size());
        f.revoked_for = std::to_string(revoked_for.count());
        f.keys.insert(f.keys.end(), marks.begin(), marks.end());
    }
    return f;
}

net::awaitable<result<void>> shared_redis::forget(std::string user_id) {
    co_return co_await forget_everywhere(std::move(user_id), 0ms);
}

net::awaitable<result<void>> shared_redis::revoke(std::string user_id,
                                                  std::chrono::milliseconds revoked_for) {
    co_return co_await forget_everywhere(std::move(user_id), std::max(revoked_for, 1ms));
}

net::awaitable<result<void>> shared_redis::reinstate(std::string user_id) {
    co_await connected(); // when it is not, the script below fails at once and says so
    const auto nonce = redis::random_value();
    const std::string tag(reinstate_tag);
    auto marks = revoked_marks_of(user_id);
    std::vector<std::string> args{forget_channel_,
                                  nonce + ":" + tag + ":" +
                                      sealer_.seal(forget_channel_ + ":" + nonce + ":" + tag, user_id)};
    auto r = co_await reinstate_script().run(*connection_, std::move(marks), std::move(args));
    if (!r || r->type != redis::reply::kind::integer) {
        log_->warn("clearing a revoked mark could not reach Redis: {}", describe(r));
        co_return make_error(
            errc::cache_unavailable,
            "Redis cannot confirm that the revoked mark is cleared for every replica; try again");
    }
    co_return result<void>();
}

net::awaitable<result<void>> shared_redis::forget_everywhere(std::string user_id,
                                                             std::chrono::milliseconds revoked_for) {
    co_await connected(); // when it is not, the script below fails at once and says so
    // Each registered replica (this one included) drops its copies when the message comes, removes
    // the entries named under its own keys (and sets the revoked marks under them), then confirms
    // on P forgotten with its id.
    const auto nonce = redis::random_value();
    acknowledgements counted(*this, nonce);
    auto f = forget_keys_of(user_id, revoked_for);
    // A revocation says so between the nonce and the sealed id, and binds it to the seal.
    const std::string tag =
        revoked_for > 0ms ? std::string(revoke_tag) + std::to_string(revoked_for.count()) : std::string();
    const std::string head = tag.empty() ? nonce : nonce + ":" + tag;
    std::vector<std::string> args{forget_channel_,
                                  head + ":" + sealer_.seal(forget_channel_ + ":" + head, user_id),
                                  f.generations,
                                  f.sets,
                                  std::to_string(generation_life.count()),
                                  f.revoked_for,
                                  f.marks};
    const auto started = steady::now();
    auto r = co_await forget_script().run(*connection_, std::move(f.keys), std::move(args));
    const auto answered = steady::now();
    const auto unconfirmed = [] {
        return make_error(errc::cache_unavailable,
                          "Redis cannot confirm that every replica forgot this user's tokens; try again");
    };
    if (!r || r->type != redis::reply::kind::array || r->elements.empty() || r->elements.size() % 2 != 1 ||
        r->elements[0].type != redis::reply::kind::integer) {
        log_->warn("DELETE could not reach Redis: {}", describe(r));
        co_return unconfirmed();
    }
    if (auto replicated = co_await connection_->confirm_replicated(); !replicated) {
        log_->warn("DELETE: {}", replicated.error().message);
        co_return unconfirmed();
    }
    // The replicas registered when the script ran, each with when its registration lapses on this
    // replica's clock (no earlier than Redis's).
    struct member {
        std::string id;
        std::string score;
        steady::time_point lapses;
    };
    std::vector<member> members;
    const auto redis_now = r->elements[0].integer;
    for (std::size_t i = 1; i + 1 < r->elements.size(); i += 2) {
        const auto& id = r->elements[i];
        const auto& score = r->elements[i + 1];
        if (id.type != redis::reply::kind::string || score.type != redis::reply::kind::string)
            continue;
        if (id.text == replica_id_)
            continue; // this replica forgot before it asked
        long long until = 0;
        try {
            until = std::stoll(score.text);
        } catch (const std::exception&) {
            continue;
        }
        members.push_back({id.text, score.text, answered + std::chrono::milliseconds(until - redis_now)});
    }
    const auto give_up = started + settings_.forget_confirm_timeout;
    std::vector<const member*> silent;
    for (;;) {
        const auto now = steady::now();
        silent.clear();
        auto next_lapse = steady::time_point::max();
        for (const auto& m : members) {
            if (counted.from(m.id))
                continue;
            silent.push_back(&m);
            if (now < m.lapses)
                next_lapse = std::min(next_lapse, m.lapses);
        }
        if (next_lapse == steady::time_point::max())
            break;
        if (now >= give_up) {
            log_->warn(
                "DELETE: {} of {} registered replicas confirmed within {} ms that they forgot the user",
                members.size() - silent.size(), members.size(), settings_.forget_confirm_timeout.count());
            co_return unconfirmed();
        }
        // Woken by the next confirmation, or when the next registration lapses, or at the bound.
        co_await counted.next(
            std::chrono::ceil<std::chrono::milliseconds>(std::min(next_lapse, give_up) - now));
    }
    if (silent.empty())
        co_return result<void>();
    // Replicas that neither confirmed nor kept their registration: each has dropped its copies when
    // its lease lapsed, unless it renewed its registration since (then it is alive but did not hear
    // of this DELETE: a subscription made again in between).
    std::vector<std::string> ask{"ZMSCORE", members_key_};
    for (const auto* m : silent)
        ask.push_back(m->id);
    auto scores = co_await connection_->exec(std::move(ask));
    if (!scores || scores->type != redis::reply::kind::array || scores->elements.size() != silent.size()) {
        log_->warn("DELETE could not reach Redis: {}", describe(scores));
        co_return unconfirmed();
    }
    std::size_t renewed = 0;
    for (std::size_t i = 0; i < silent.size(); ++i) {
        const auto& now_score = scores->elements[i];
        if (now_score.type == redis::reply::kind::string && now_score.text != silent[i]->score)
            ++renewed;
    }
    if (renewed > 0) {
        log_->warn("DELETE: {} registered replicas are alive but did not confirm that they forgot the user",
                   renewed);
        co_return unconfirmed();
    }
    co_return result<void>();
}

// Holds what it uses (not the shared_redis), so it may finish after its owner is gone.
net::awaitable<void> shared_redis::acknowledge(std::shared_ptr<redis::connection> connection,
                                               std::shared_ptr<spdlog::logger> log, forget_keys f,
                                               std::string forgotten_channel, std::string confirmation) {
    if (!f.keys.empty()) {
        std::vector<std::string> args{
            std::string(), std::string(), f.generations, f.sets, std::to_string(generation_life.count()),
            f.revoked_for, f.marks};
        auto r = co_await forget_script().run(*connection, std::move(f.keys), std::move(args));
        if (!r || r->type != redis::reply::kind::array) {
            log->debug("removing a forgotten user's entries failed: {}", describe(r));
            co_return; // not confirmed: the DELETE is answered 503 and tried again
        }
    }
    std::vector<std::string> publish{"PUBLISH", std::move(forgotten_channel), std::move(confirmation)};
    auto r = co_await connection->exec(std::move(publish));
    if (!r || r->is_error())
        log->debug("acknowledging a DELETE failed: {}", describe(r));
}

void shared_redis::on_message(std::string_view channel, std::string_view message) {
    if (channel == done_channel_) {
        std::vector<std::shared_ptr<waiter>> woken;
        {
            std::lock_guard lock(waiters_mutex_);
            auto [from, to] = waiters_.equal_range(std::string(message));
            for (auto it = from; it != to; ++it)
                woken.push_back(it->second);
        }
        for (auto& w : woken)
            waiter::wake(w);
        return;
    }
    if (channel == forgotten_channel_) {
        // <nonce>:<replica id>
        const auto colon = message.find(':');
        if (colon == std::string_view::npos)
            return;
        std::shared_ptr<confirmations> got;
        {
            std::lock_guard lock(acknowledgements_mutex_);
            if (auto it = acknowledgements_.find(std::string(message.substr(0, colon)));
                it != acknowledgements_.end())
                got = it->second;
        }
        if (got) {
            {
                std::lock_guard lock(got->mutex);
                got->ids.insert(std::string(message.substr(colon + 1)));
            }
            waiter::wake(got->news);
        }
        return;
    }
    if (channel != forget_channel_)
        return;
    // The message: a 32-digit nonce in clear, ':', then for a revocation "revoke=<ms>:" and for a
    // reinstatement "reinstate:", then the user id sealed under the channel's name and what came
    // before it. One that does not open (sealed under a key this replica does not have, during a
    // rotation, tampered with, or of a kind it does not know) makes it drop every local copy, since
    // it cannot tell whose; it is acknowledged either way, so that the DELETE can be answered.
    const auto m = read_forget_message(message);
    if (!m)
        return;
    auto user_id = sealer_.open(forget_channel_ + ":" + std::string(m->head), m->sealed);
    if (user_id && m->reinstate) {
        std::lock_guard lock(listener_mutex_);
        if (listener_.reinstated)
            listener_.reinstated(*user_id);
        return; // nothing to confirm: the replica that cleared the mark waits for nobody
    }
    {
        std::lock_guard lock(listener_mutex_);
        if (user_id && m->revoked_for > 0ms && listener_.revoked) {
            listener_.revoked(*user_id, m->revoked_for);
        } else if (user_id && listener_.user) {
            listener_.user(*user_id);
        } else if (!user_id) {
            metrics_.redis_undecryptable();
            log_->warn("a DELETE published in Redis does not decrypt under the encryption key (or the "
                       "previous one): dropping every local copy instead");
            if (listener_.everyone)
                listener_.everyone();
        }
    }
    forget_keys f;
    if (user_id)
        f = forget_keys_of(*user_id, m->revoked_for);
    net::co_spawn(executor_,
                  acknowledge(connection_, log_, std::move(f), forgotten_channel_,
                              std::string(m->nonce) + ":" + replica_id_),
                  log_escaped_exception(log_, "acknowledging a DELETE"));
}

void shared_redis::on_subscribed() {
    // Publications may have been missed while the subscription was down: a DELETE among them must
    // not leave a local copy behind, and a waiter must not sleep through its key's result.
    {
        std::lock_guard lock(listener_mutex_);
        if (listener_.everyone)
            listener_.everyone();
    }
    std::vector<std::shared_ptr<waiter>> all;
    {
        std::lock_guard lock(waiters_mutex_);
        for (auto& [key, w] : waiters_)
            all.push_back(w);
    }
    for (auto& w : all)
        waiter::wake(w);
}

} // namespace token_broker
