#include "cache/shared_redis.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/rand.h>

#include <stdexcept>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// KEYS: the value keys to read, then the lock. ARGV: the lock's value, its life in ms.
// Answers the values (false for none) and, last, 1 when the lock was taken for ARGV[1], or the value
// of the lock that someone else holds, or 0 when values were there (the lock is not tried then).
constexpr std::string_view look_lua = R"lua(
local n = #KEYS - 1
local out = {}
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
return out
)lua";

// KEYS: the value key, the lock, and (for a token) the user's set of entries. ARGV: the sealed value
// ('' to write nothing), its life in ms, the lock's value ('' when not held), the channel and the
// message that wakes the waiters. The lock is released only when it still holds this attempt's value.
constexpr std::string_view store_lua = R"lua(
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if #KEYS >= 3 then
    redis.call('SADD', KEYS[3], KEYS[1])
    if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then
      redis.call('PEXPIRE', KEYS[3], ARGV[2])
    end
  end
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
)lua";

// KEYS: ARGV[3] sets of entries, then other keys. Deletes the entries of the sets, the sets and the
// other keys, then publishes ARGV[2] on ARGV[1].
constexpr std::string_view forget_lua = R"lua(
local sets = tonumber(ARGV[3])
for i = 1, sets do
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    redis.call('DEL', k)
  end
end
redis.call('DEL', unpack(KEYS))
return redis.call('PUBLISH', ARGV[1], ARGV[2])
)lua";

// A lock value no other attempt has: 128 random bits in hex.
std::string random_lock_value() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw std::runtime_error("OpenSSL RAND_bytes failed");
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * sizeof bytes);
    for (auto b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xf]);
    }
    return out;
}

std::string describe(const result<redis::reply>& r) {
    if (!r)
        return r.error().message;
    if (r->is_error())
        return "Redis answered an error";
    return "Redis answered something unexpected";
}

} // namespace

// A replica's leader waiting for another replica's fetch of one key: woken by a publication of that
// key, or by its poll timer. The flag is all that another thread touches; the waiting coroutine
// checks it every few milliseconds, so no timer is ever touched from two threads.
struct shared_redis::waiter {
    std::atomic<bool> woken{false};

    static void wake(const std::shared_ptr<waiter>& w) { w->woken.store(true, std::memory_order_release); }

    // Completes when woken (within about 10 ms) or after `d`, whichever comes first.
    static net::awaitable<void> sleep(std::shared_ptr<waiter> w, std::chrono::milliseconds d) {
        net::steady_timer timer(co_await net::this_coro::executor);
        const auto until = steady::now() + d;
        while (!w->woken.exchange(false, std::memory_order_acq_rel)) {
            const auto now = steady::now();
            if (now >= until)
                break;
            timer.expires_after(std::min<steady::duration>(10ms, until - now));
            co_await timer.async_wait(net::as_tuple(net::use_awaitable));
        }
    }
};

// A waiter entered under its key for as long as the registration lives.
class shared_redis::waiter_registration {
public:
    waiter_registration(shared_redis& owner, const std::string& key)
        : owner_(owner), waiter_(std::make_shared<waiter>()) {
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

// A DELETE's count of acknowledgements, entered under its nonce for as long as it lives.
class shared_redis::acknowledgements {
public:
    acknowledgements(shared_redis& owner, const std::string& nonce)
        : owner_(owner), count_(std::make_shared<std::atomic<long long>>(0)) {
        std::lock_guard lock(owner_.acknowledgements_mutex_);
        it_ = owner_.acknowledgements_.emplace(nonce, count_).first;
    }
    ~acknowledgements() {
        std::lock_guard lock(owner_.acknowledgements_mutex_);
        owner_.acknowledgements_.erase(it_);
    }
    acknowledgements(const acknowledgements&) = delete;
    acknowledgements& operator=(const acknowledgements&) = delete;

    long long received() const noexcept { return count_->load(std::memory_order_acquire); }

private:
    shared_redis& owner_;
    std::shared_ptr<std::atomic<long long>> count_;
    std::unordered_map<std::string, std::shared_ptr<std::atomic<long long>>>::iterator it_;
};

// What one look found.
struct shared_redis::look {
    std::optional<shared_entry> entry; // the first usable value, in the order asked
    bool present = false;              // some value was there, usable or not
    bool locked = false;               // the lock was taken for this attempt
    std::string holder;                // else the value of the lock someone else holds, if any
};

shared_redis::shared_redis(net::any_io_executor ex, std::shared_ptr<redis::connection> connection, settings s,
                           metrics& m, std::shared_ptr<spdlog::logger> log, wall_clock now)
    : executor_(std::move(ex)), settings_(std::move(s)), metrics_(m), log_(std::move(log)),
      now_(std::move(now)), sealer_(settings_.encryption_key, settings_.previous_encryption_key),
      connection_(std::move(connection)), done_channel_(settings_.key_prefix + "done"),
      forget_channel_(settings_.key_prefix + "forget"),
      forgotten_channel_(settings_.key_prefix + "forgotten"), look_script_(std::string(look_lua)),
      store_script_(std::string(store_lua)), forget_script_(std::string(forget_lua)) {
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

net::awaitable<bool> shared_redis::connected() {
    if (connection_->up() || steady::now() >= wait_until_)
        co_return connection_->up();
    net::steady_timer timer(co_await net::this_coro::executor);
    while (!connection_->up() && !stopped_.load(std::memory_order_acquire)) {
        const auto now = steady::now();
        if (now >= wait_until_)
            break;
        timer.expires_after(std::min<steady::duration>(10ms, wait_until_ - now));
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
    co_return connection_->up();
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
    return {entry, entry + ":lock", entry + ":error", user + ":unknown", user + ":keys"};
}

} // namespace

shared_redis::key_names shared_redis::names_of(const cache_key& key) const {
    return names_from(sealer_.key_name(settings_.key_prefix, "u", key.user_id), key);
}

std::optional<shared_redis::key_names> shared_redis::previous_names_of(const cache_key& key) const {
    auto user = sealer_.previous_key_name(settings_.key_prefix, "u", key.user_id);
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
shared_redis::look_once(const std::vector<std::string>& values, const std::string& lock_key,
                        const std::string& lock_value, const std::string& accept_errors_of,
                        bool for_refresh) {
    auto keys = values;
    keys.push_back(lock_key);
    const auto lock_ms = std::to_string((settings_.request_timeout + 1s).count());
    // Named, not braced temporaries: gcc 12 mishandles those as arguments inside co_await.
    std::vector<std::string> args{lock_value, lock_ms};
    auto r = co_await look_script_.run(*connection_, std::move(keys), std::move(args));
    if (!r || r->type != redis::reply::kind::array || r->elements.size() != values.size() + 1 ||
        (r->elements.back().type != redis::reply::kind::integer &&
         r->elements.back().type != redis::reply::kind::string)) {
        log_->debug("reading the shared cache failed: {}", describe(r));
        co_return std::nullopt;
    }
    look l;
    const auto& lock = r->elements.back();
    l.locked = lock.type == redis::reply::kind::integer && lock.integer == 1;
    if (lock.type == redis::reply::kind::string)
        l.holder = lock.text;
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
        auto again = co_await look_once(none, lock_key, lock_value, accept_errors_of, for_refresh);
        if (!again)
            co_return std::nullopt;
        l.locked = again->locked;
        l.holder = std::move(again->holder);
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

    // Entered before the first look, so that a publication between that look and the wait wakes it.
    waiter_registration registration(*this, names.entry);
    lease mine{names.lock, random_lock_value()};
    const auto settle = [&](look& l) {
        if (l.entry) {
            if (l.entry->what == shared_entry::kind::token)
                metrics_.shared_cache_hit();
            c.what = claim::kind::found;
            c.entry = std::move(*l.entry);
            return true;
        }
        if (l.locked) {
            c.what = claim::kind::fetch;
            c.held = mine;
            return true;
        }
        return false;
    };

    const std::string no_error;
    auto l = co_await look_once(first, names.lock, mine.value, no_error, for_refresh);
    if (!l)
        co_return c;
    if (settle(*l))
        co_return c;

    // Another replica is fetching this key: wait for its result, at most as long as its lock lives
    // (zoom.request_timeout_ms + 1 s). When the lock changes hands meanwhile (its holder died, its
    // lock expired, and another replica took it), that new fetch is waited for in the same way.
    metrics_.replica_wait();
    const auto bound = settings_.request_timeout + 1s;
    auto deadline = steady::now() + bound;
    auto holder = l->holder;
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now());
        if (left <= 0ms) {
            log_->info("waited {} ms for another replica's fetch; fetching alone", bound.count());
            co_return c;
        }
        co_await waiter::sleep(registration.get(), std::min(left, settings_.poll_interval));
        l = co_await look_once(waiting, names.lock, mine.value, holder, for_refresh);
        if (!l)
            co_return c;
        if (settle(*l))
            co_return c;
        if (!l->holder.empty() && l->holder != holder) {
            holder = l->holder;
            deadline = steady::now() + bound;
        }
    }
}

net::awaitable<void> shared_redis::store(const cache_key& key, std::optional<lease> held,
                                         const shared_entry* e) {
    const auto names = names_of(key);
    std::vector<std::string> keys{names.entry, held ? held->lock_key : names.lock};
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
            if (held)
                life = settings_.error_ttl;
            break;
        }
    }
    std::string sealed;
    if (e && life > 0ms) {
        auto written = *e;
        if (held)
            written.fetch_id = held->value;
        sealed = sealer_.seal(keys[0], encode_shared_entry(written));
    } else if (keys.size() > 2)
        keys.pop_back();
    if (sealed.empty() && !held)
        co_return;
    std::vector<std::string> args{std::move(sealed), std::to_string(life.count()),
                                  held ? held->value : std::string(), done_channel_, names.entry};
    auto r = co_await store_script_.run(*connection_, std::move(keys), std::move(args));
    if (!r || r->is_error())
        log_->debug("writing to the shared cache failed: {}", describe(r));
}

net::awaitable<result<void>> shared_redis::forget(std::string user_id) {
    co_await connected(); // when it is not, the script below fails at once and says so
    const cache_key any{user_id, token_type::zak, std::nullopt};
    const auto names = names_of(any);
    std::vector<std::string> sets{names.index}, others{names.unknown};
    if (auto old = previous_names_of(any)) {
        sets.push_back(std::move(old->index));
        others.push_back(std::move(old->unknown));
    }
    const auto set_count = std::to_string(sets.size());
    sets.insert(sets.end(), others.begin(), others.end());
    // Each replica subscribed to P forget (this one included) drops its copies when the message
    // comes, then acknowledges on P forgotten; PUBLISH says how many received it.
    const auto nonce = random_lock_value();
    acknowledgements counted(*this, nonce);
    std::vector<std::string> args{
        forget_channel_, nonce + ":" + sealer_.seal(forget_channel_ + ":" + nonce, user_id), set_count};
    auto r = co_await forget_script_.run(*connection_, std::move(sets), std::move(args));
    const auto unconfirmed = [] {
        return make_error(errc::cache_unavailable,
                          "Redis cannot confirm that every replica forgot this user's tokens; try again");
    };
    if (!r || r->type != redis::reply::kind::integer) {
        log_->warn("DELETE could not reach Redis: {}", describe(r));
        co_return unconfirmed();
    }
    const auto receivers = r->integer;
    net::steady_timer timer(co_await net::this_coro::executor);
    const auto give_up = steady::now() + settings_.forget_confirm_timeout;
    while (counted.received() < receivers) {
        const auto now = steady::now();
        if (now >= give_up) {
            log_->warn("DELETE: {} of {} replicas confirmed within {} ms that they forgot the user",
                       counted.received(), receivers, settings_.forget_confirm_timeout.count());
            co_return unconfirmed();
        }
        timer.expires_after(std::min<steady::duration>(2ms, give_up - now));
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
    co_return result<void>();
}

// Holds what it uses (not the shared_redis), so it may finish after its owner is gone.
net::awaitable<void> shared_redis::acknowledge(std::shared_ptr<redis::connection> connection,
                                               std::shared_ptr<spdlog::logger> log,
                                               std::vector<std::string> publish) {
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
        std::lock_guard lock(acknowledgements_mutex_);
        if (auto it = acknowledgements_.find(std::string(message)); it != acknowledgements_.end())
            it->second->fetch_add(1, std::memory_order_acq_rel);
        return;
    }
    if (channel != forget_channel_)
        return;
    // The message: a 32-digit nonce in clear, ':', the user id sealed under the channel's name and
    // the nonce. One that does not open (sealed under a key this replica does not have, during a
    // rotation, or tampered with) makes it drop every local copy, since it cannot tell whose; it
    // is acknowledged either way, so that the DELETE can be answered.
    if (message.size() < 33 || message[32] != ':')
        return;
    const std::string nonce(message.substr(0, 32));
    auto user_id = sealer_.open(forget_channel_ + ":" + nonce, message.substr(33));
    {
        std::lock_guard lock(listener_mutex_);
        if (user_id && listener_.user) {
            listener_.user(*user_id);
        } else if (!user_id) {
            metrics_.redis_undecryptable();
            log_->warn("a DELETE published in Redis does not decrypt under the encryption key (or the "
                       "previous one): dropping every local copy instead");
            if (listener_.everyone)
                listener_.everyone();
        }
    }
    std::vector<std::string> publish{"PUBLISH", forgotten_channel_, nonce};
    net::co_spawn(executor_, acknowledge(connection_, log_, std::move(publish)), net::detached);
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
