#include "cache/shared_redis.hpp"

#include "cache/shared_scripts.hpp"
#include "core/spawn.hpp"
#include "redis/lease.hpp"

#include <stdexcept>

namespace token_broker {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using shared_scripts::describe;

// What one look found.
struct shared_redis::look {
    std::optional<shared_entry> entry;      // the first usable value, in the order asked
    bool lock_tried = false;                // the look script tried the lock (it found no value)
    bool locked = false;                    // the lock was taken for this attempt
    bool revoked = false;                   // the user is marked revoked: nothing read, the lock not tried
    std::string holder;                     // else the value of the lock someone else holds, if any
    std::string generation;                 // the user's forget generation
    std::chrono::milliseconds lock_left{0}; // how long the lock held by someone else has to live
};

shared_redis::shared_redis(net::any_io_executor ex, std::shared_ptr<redis::client> connection, settings s,
                           metrics& m, std::shared_ptr<spdlog::logger> log, wall_clock now)
    : executor_(std::move(ex)), settings_(std::move(s)), metrics_(m), log_(std::move(log)),
      now_(std::move(now)), sealer_(settings_.encryption_key, settings_.previous_encryption_key),
      connection_(connection ? std::move(connection)
                             : throw std::invalid_argument("shared_redis needs a Redis connection")),
      keys_(settings_.key_prefix, sealer_), done_channel_(settings_.key_prefix + "done"),
      membership_(executor_, connection_, settings_.key_prefix + "replicas", settings_.invalidation_lease,
                  log_),
      broadcast_(executor_, connection_, sealer_, keys_, membership_,
                 std::max(settings_.forget_confirm_timeout, settings_.invalidation_lease + 250ms), log_),
      news_(executor_) {
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
    return {done_channel_, broadcast_.channel(), broadcast_.confirmation_channel()};
}

bool shared_redis::up() const noexcept {
    return connection_->up();
}

bool shared_redis::local_copies_allowed() noexcept {
    return membership_.local_copies_allowed();
}

std::chrono::milliseconds shared_redis::health_check_interval() const noexcept {
    return membership_.health_check_interval();
}

void shared_redis::on_alive(steady::time_point sent) {
    membership_.on_alive(sent);
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

void shared_redis::consider(look& l, const std::string& name, const redis::reply& sealed, time_point now,
                            const std::string& accept_errors_of, bool for_refresh) {
    if (sealed.type != redis::reply::kind::string || l.entry)
        return;
    auto e = open_entry(name, sealed.text);
    if (!e || !usable_shared_entry(*e, now, settings_.cache.refresh_margin, for_refresh))
        return;
    // An error is the answer only of the fetch being waited for, not of an older one.
    if (e->what == shared_entry::kind::error && (accept_errors_of.empty() || e->fetch_id != accept_errors_of))
        return;
    l.entry = std::move(e);
}

net::awaitable<std::optional<shared_redis::look>>
shared_redis::look_once(const std::vector<std::string>& values, const key_names& names,
                        const std::optional<key_names>& previous, const std::string& lock_value,
                        const std::string& accept_errors_of, bool for_refresh) {
    look l;
    if (previous) {
        // A rotation: the names under the previous key are in another hash slot (another node of a
        // cluster), so they are looked at first, read only, by a call of their own; a mark or a usable
        // value there settles the look as the one script did before the split (revoked: nothing read,
        // no lock; found: the lock not tried), and the locking look below is not run at all.
        //
        // Between the two calls a forget may come from a replica that knows only the previous key: it
        // marks and empties the previous names after this look at them, and this replica's look at
        // the current names may then take the lock. That is safe: the forget is answered only once
        // every registered replica, this one included, has run its own forget under its own names,
        // which raises the generation under the current key; a fetch that took the lock before that
        // read the older generation, and the store script refuses to write its result.
        auto keys = shared_script_keys::look_back(*previous);
        const std::vector<std::string> old_values(keys.begin() + 1, keys.end());
        std::vector<std::string> no_args;
        auto r = co_await shared_scripts::look_back().run(*connection_, std::move(keys), std::move(no_args));
        const bool marked = r && r->type == redis::reply::kind::array && r->elements.size() == 1 &&
                            r->elements[0].type == redis::reply::kind::integer &&
                            r->elements[0].integer == -1;
        if (!marked &&
            (!r || r->type != redis::reply::kind::array || r->elements.size() != old_values.size() + 1 ||
             r->elements[0].type != redis::reply::kind::integer || r->elements[0].integer != 0)) {
            log_->debug("reading the shared cache failed: {}", describe(r));
            co_return std::nullopt;
        }
        if (marked) {
            l.revoked = true;
            co_return l;
        }
        const auto now = now_();
        for (std::size_t i = 0; i < old_values.size(); ++i)
            consider(l, old_values[i], r->elements[i + 1], now, accept_errors_of, for_refresh);
        if (l.entry)
            co_return l;
    }

    auto keys = shared_script_keys::look(values, names);
    const auto lock_ms = std::to_string(settings_.lock_lease.count());
    // Named, not braced temporaries: gcc 12 mishandles those as arguments inside co_await.
    std::vector<std::string> args{lock_value, lock_ms};
    auto r = co_await shared_scripts::look().run(*connection_, std::move(keys), std::move(args));
    if (!r || r->type != redis::reply::kind::array || r->elements.size() != values.size() + 3 ||
        (r->elements[values.size()].type != redis::reply::kind::integer &&
         r->elements[values.size()].type != redis::reply::kind::string) ||
        r->elements[values.size() + 1].type != redis::reply::kind::string ||
        r->elements.back().type != redis::reply::kind::integer) {
        log_->debug("reading the shared cache failed: {}", describe(r));
        co_return std::nullopt;
    }
    const auto& lock = r->elements[values.size()];
    l.generation = r->elements[values.size() + 1].text;
    // A lock without a time to live (not one of ours) is waited on for one lease before looking again.
    const auto pttl = r->elements.back().integer;
    l.lock_left = pttl > 0
                      ? std::chrono::milliseconds(std::min<long long>(pttl, settings_.lock_lease.count()))
                      : settings_.lock_lease;
    if (lock.type == redis::reply::kind::integer && lock.integer == -1) {
        l.revoked = true;
        co_return l;
    }
    l.lock_tried = !(lock.type == redis::reply::kind::integer && lock.integer == 0);
    l.locked = lock.type == redis::reply::kind::integer && lock.integer == 1;
    if (lock.type == redis::reply::kind::string)
        l.holder = lock.text;
    const auto now = now_();
    for (std::size_t i = 0; i < values.size(); ++i)
        consider(l, values[i], r->elements[i], now, accept_errors_of, for_refresh);
    if (!l.entry && !l.lock_tried) {
        // Only unusable values: the lock decides who fetches a better one.
        const std::vector<std::string> none;
        const std::optional<key_names> no_previous;
        auto again = co_await look_once(none, names, no_previous, lock_value, accept_errors_of, for_refresh);
        if (!again)
            co_return std::nullopt;
        l.revoked = again->revoked;
        l.lock_tried = again->lock_tried;
        l.locked = again->locked;
        l.holder = std::move(again->holder);
        l.generation = std::move(again->generation);
        l.lock_left = again->lock_left;
    }
    co_return l;
}

net::awaitable<shared_tokens::claim> shared_redis::acquire(const cache_key& key, bool for_refresh) {
    claim c; // fetch_alone unless Redis says otherwise
    if (!co_await connected())
        co_return c;
    const auto names = keys_.names_of(key);
    const auto previous = keys_.previous_names_of(key); // during a rotation
    const auto first = shared_script_keys::look_values(names, false);
    const auto waiting = shared_script_keys::look_values(names, true);

    // Entered before the first look, so that a publication between that look and the wait wakes it.
    news_board::registration registration(news_, names.entry);
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
    auto l = co_await look_once(first, names, previous, value, no_error, for_refresh);
    if (!l)
        co_return c;
    if (settle(*l))
        co_return c;

    // Another replica is fetching this key: wait for its result. Its holder renews the lock while its
    // Zoom call runs; a lock whose holder died (or that nobody holds: a command Redis ran after its
    // sender gave up on it) lapses within one lock lease, and then this replica takes it. In all, at
    // most zoom.request_timeout_ms plus one lock lease. No polling: the waiter is woken by the
    // holder's publication on P done (or by a new subscription, which may have missed one), else
    // when the lock it saw would lapse, and then looks again (a renewed lock is waited on again).
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
        co_await registration.sleep(std::min(left, l->lock_left + 1ms));
        l = co_await look_once(waiting, names, previous, value, holder, for_refresh);
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
    const auto names = keys_.names_of(key);
    std::chrono::milliseconds life{0};
    if (e) {
        switch (e->what) {
        case shared_entry::kind::token:
            life = shared_token_lifetime(*e, now_(), settings_.cache.refresh_margin);
            break;
        case shared_entry::kind::unknown_user:
            life = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.cache.negative_ttl);
            break;
        case shared_entry::kind::error:
            life = settings_.error_ttl;
            break;
        }
    }
    std::optional<shared_entry::kind> written;
    if (e && life > 0ms)
        written = e->what;
    auto keys = shared_script_keys::store(names, held->lock_key, written);
    std::string sealed;
    if (written) {
        auto entry = *e;
        entry.fetch_id = held->value;
        sealed = sealer_.seal(keys[0], encode_shared_entry(entry));
    }
    std::vector<std::string> args{std::move(sealed), std::to_string(life.count()),
                                  held->value,       done_channel_,
                                  names.entry,       held->generation};
    auto r = co_await shared_scripts::store().run(*connection_, std::move(keys), std::move(args));
    if (!r || r->is_error())
        log_->debug("writing to the shared cache failed: {}", describe(r));
    else if (r->type == redis::reply::kind::integer && r->integer == 0 && e && life > 0ms)
        log_->debug("a fetch's result was not shared: the user was forgotten while it ran");
}

net::awaitable<result<void>> shared_redis::forget(std::string user_id) {
    co_await connected(); // when it is not, the forget fails at once and says so
    co_return co_await broadcast_.forget(std::move(user_id), 0ms);
}

net::awaitable<result<void>> shared_redis::revoke(std::string user_id,
                                                  std::chrono::milliseconds revoked_for) {
    co_await connected();
    co_return co_await broadcast_.forget(std::move(user_id), std::max(revoked_for, 1ms));
}

net::awaitable<result<void>> shared_redis::reinstate(std::string user_id) {
    co_await connected();
    co_return co_await broadcast_.reinstate(std::move(user_id));
}

void shared_redis::on_message(std::string_view channel, std::string_view message) {
    if (channel == done_channel_)
        news_.wake(message);
    else if (channel == broadcast_.confirmation_channel())
        broadcast_.on_confirmation(message);
    else if (channel == broadcast_.channel())
        on_forget(message);
}

void shared_redis::on_forget(std::string_view message) {
    // One that does not open makes this replica drop every local copy, since it cannot tell whose;
    // it is confirmed either way, so that the forget can be answered.
    const auto h = broadcast_.hear(message);
    if (!h)
        return;
    {
        std::lock_guard lock(listener_mutex_);
        if (h->user_id && h->reinstate) {
            if (listener_.reinstated)
                listener_.reinstated(*h->user_id);
            return; // nothing to confirm: the replica that cleared the mark waits for nobody
        }
        if (h->user_id && h->revoked_for > 0ms && listener_.revoked) {
            listener_.revoked(*h->user_id, h->revoked_for);
        } else if (h->user_id && listener_.user) {
            listener_.user(*h->user_id);
        } else if (!h->user_id) {
            metrics_.redis_undecryptable();
            log_->warn("a DELETE published in Redis does not decrypt under the encryption key (or the "
                       "previous one): dropping every local copy instead");
            if (listener_.everyone)
                listener_.everyone();
        }
    }
    broadcast_.confirm(*h);
}

void shared_redis::on_subscribed() {
    // Publications may have been missed while the subscription was down: a forget among them must
    // not leave a local copy behind, and a waiter must not sleep through its key's result.
    {
        std::lock_guard lock(listener_mutex_);
        if (listener_.everyone)
            listener_.everyone();
    }
    news_.wake_all();
}

} // namespace token_broker
