#include "cache/forget_broadcast.hpp"

#include "cache/shared_scripts.hpp"
#include "core/spawn.hpp"
#include "redis/client.hpp"
#include "redis/lease.hpp"
#include "redis/sealed.hpp"

#include <boost/asio/co_spawn.hpp>

#include <charconv>
#include <set>

namespace token_broker {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

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

namespace {

// Runs the forget script once for each of `calls` (a user's keys under one encryption key each, in a
// hash slot of their own), the last call publishing `message` on `channel` (none when `channel` is
// empty): a replica that hears it finds the entries gone under every key already. The first failure
// ends it, with what went wrong.
net::awaitable<result<void>> forget_under_each_key(redis::client& connection,
                                                   const std::vector<std::vector<std::string>>& calls,
                                                   std::chrono::milliseconds revoked_for,
                                                   const std::string& channel, const std::string& message) {
    for (std::size_t i = 0; i < calls.size(); ++i) {
        const bool last = i + 1 == calls.size();
        auto keys = calls[i];
        std::vector<std::string> args{last ? channel : std::string(), last ? message : std::string(),
                                      std::to_string(shared_scripts::generation_life.count()),
                                      std::to_string(revoked_for.count())};
        auto r = co_await shared_scripts::forget().run(connection, std::move(keys), std::move(args));
        if (!r || r->type != redis::reply::kind::integer)
            co_return make_error(errc::cache_unavailable, shared_scripts::describe(r));
    }
    co_return result<void>();
}

} // namespace

// The replicas that confirmed one forget, by id, and the forget waiting for them.
struct forget_broadcast::confirmations {
    explicit confirmations(const net::any_io_executor& ex) : news(std::make_shared<news_waiter>(ex)) {}
    std::mutex mutex;
    std::set<std::string> ids;
    std::shared_ptr<news_waiter> news; // woken at each confirmation
};

// A forget's confirmations, entered under its nonce for as long as it lives.
class forget_broadcast::pending {
public:
    pending(forget_broadcast& owner, const std::string& nonce)
        : owner_(owner), got_(std::make_shared<confirmations>(owner.executor_)) {
        std::lock_guard lock(owner_.mutex_);
        it_ = owner_.pending_.emplace(nonce, got_).first;
    }
    ~pending() {
        std::lock_guard lock(owner_.mutex_);
        owner_.pending_.erase(it_);
    }
    pending(const pending&) = delete;
    pending& operator=(const pending&) = delete;

    bool from(const std::string& id) const {
        std::lock_guard lock(got_->mutex);
        return got_->ids.contains(id);
    }
    // Completes at the next confirmation, or after `d`.
    net::awaitable<void> next(std::chrono::milliseconds d) const { return news_waiter::sleep(got_->news, d); }

private:
    forget_broadcast& owner_;
    std::shared_ptr<confirmations> got_;
    std::unordered_map<std::string, std::shared_ptr<confirmations>>::iterator it_;
};

forget_broadcast::forget_broadcast(net::any_io_executor ex, std::shared_ptr<redis::client> connection,
                                   const redis::sealer& sealer, const shared_key_space& keys,
                                   const replica_membership& membership,
                                   std::chrono::milliseconds confirm_timeout,
                                   std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(ex)), connection_(std::move(connection)), sealer_(sealer), keys_(keys),
      membership_(membership), confirm_timeout_(confirm_timeout), log_(std::move(log)),
      channel_(keys.prefix() + "forget"), confirmed_channel_(keys.prefix() + "forgotten") {}

forget_broadcast::~forget_broadcast() = default;

std::vector<std::vector<std::string>>
forget_broadcast::calls_of(const std::string& user_id, std::chrono::milliseconds revoked_for) const {
    return shared_script_keys::forget(keys_.user_keys_of(user_id), revoked_for > 0ms);
}

net::awaitable<result<void>> forget_broadcast::reinstate(std::string user_id) {
    const auto nonce = redis::random_value();
    const std::string tag(reinstate_tag);
    const std::string message =
        nonce + ":" + tag + ":" + sealer_.seal(channel_ + ":" + nonce + ":" + tag, user_id);
    // One call for each encryption key's mark (each in its own hash slot); the last one tells the
    // replicas.
    const auto calls = shared_script_keys::reinstate(keys_.user_keys_of(user_id));
    for (std::size_t i = 0; i < calls.size(); ++i) {
        const bool last = i + 1 == calls.size();
        auto marks = calls[i];
        std::vector<std::string> args{last ? channel_ : std::string(), last ? message : std::string()};
        auto r = co_await shared_scripts::reinstate().run(*connection_, std::move(marks), std::move(args));
        if (!r || r->type != redis::reply::kind::integer) {
            log_->warn("clearing a revoked mark could not reach Redis: {}", shared_scripts::describe(r));
            co_return make_error(
                errc::cache_unavailable,
                "Redis cannot confirm that the revoked mark is cleared for every replica; try again");
        }
    }
    co_return result<void>();
}

net::awaitable<result<void>> forget_broadcast::forget(std::string user_id,
                                                      std::chrono::milliseconds revoked_for) {
    // Each registered replica (this one included) drops its copies when the message comes, removes
    // the entries named under its own keys (and sets the revoked marks under them), then confirms
    // on P forgotten with its id.
    const auto nonce = redis::random_value();
    pending counted(*this, nonce);
    const auto calls = calls_of(user_id, revoked_for);
    // A revocation says so between the nonce and the sealed id, and binds it to the seal.
    const std::string tag =
        revoked_for > 0ms ? std::string(revoke_tag) + std::to_string(revoked_for.count()) : std::string();
    const std::string head = tag.empty() ? nonce : nonce + ":" + tag;
    const std::string message = head + ":" + sealer_.seal(channel_ + ":" + head, user_id);
    const auto unconfirmed = [] {
        return make_error(errc::cache_unavailable,
                          "Redis cannot confirm that every replica forgot this user's tokens; try again");
    };
    const auto started = steady::now();
    if (auto forgotten = co_await forget_under_each_key(*connection_, calls, revoked_for, channel_, message);
        !forgotten) {
        log_->warn("DELETE could not reach Redis: {}", forgotten.error().message);
        co_return unconfirmed();
    }
    // The registrations are read after the forget was published, never before: every replica
    // registered when it was published is then among them, and is asked. One that registered in
    // between (its subscription made after the publication, so it holds no copies) is among them too
    // and cannot confirm: at worst a 503 when it renews meanwhile, never a token served.
    std::vector<std::string> members_key{membership_.members_key()};
    std::vector<std::string> no_args;
    auto r = co_await shared_scripts::registered_replicas().run(*connection_, std::move(members_key),
                                                                std::move(no_args));
    const auto answered = steady::now();
    if (!r || r->type != redis::reply::kind::array || r->elements.empty() || r->elements.size() % 2 != 1 ||
        r->elements[0].type != redis::reply::kind::integer) {
        log_->warn("DELETE could not reach Redis: {}", shared_scripts::describe(r));
        co_return unconfirmed();
    }
    // With a replicated Redis (Sentinel, or a cluster's masters with replicas), a Redis replica must
    // have it too, so that a failover does not bring the token back: WAIT on each slot the forget
    // wrote (at once without replicas).
    for (const auto& keys : calls) {
        if (auto replicated = co_await connection_->confirm_replicated(keys.front()); !replicated) {
            log_->warn("DELETE: {}", replicated.error().message);
            co_return unconfirmed();
        }
    }
    // The replicas registered when the registrations were read, each with when its registration lapses on
    // this replica's clock (no earlier than Redis's).
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
        if (id.text == membership_.id())
            continue; // this replica forgot before it asked
        long long until = 0;
        try {
            until = std::stoll(score.text);
        } catch (const std::exception&) {
            continue;
        }
        members.push_back({id.text, score.text, answered + std::chrono::milliseconds(until - redis_now)});
    }
    const auto give_up = started + confirm_timeout_;
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
                members.size() - silent.size(), members.size(), confirm_timeout_.count());
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
    // of this forget: a subscription made again in between).
    std::vector<std::string> ask{"ZMSCORE", membership_.members_key()};
    for (const auto* m : silent)
        ask.push_back(m->id);
    auto scores = co_await connection_->exec(std::move(ask));
    if (!scores || scores->type != redis::reply::kind::array || scores->elements.size() != silent.size()) {
        log_->warn("DELETE could not reach Redis: {}", shared_scripts::describe(scores));
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

std::optional<forget_broadcast::heard> forget_broadcast::hear(std::string_view message) const {
    const auto m = read_forget_message(message);
    if (!m)
        return std::nullopt;
    heard h;
    h.nonce = std::string(m->nonce);
    h.user_id = sealer_.open(channel_ + ":" + std::string(m->head), m->sealed);
    h.revoked_for = m->revoked_for;
    h.reinstate = m->reinstate;
    return h;
}

void forget_broadcast::confirm(const heard& h) const {
    // A message that does not open is confirmed too, once every copy is dropped, so that the forget
    // can be answered; there are no entries to name then.
    std::vector<std::vector<std::string>> calls;
    if (h.user_id)
        calls = calls_of(*h.user_id, h.revoked_for);
    net::co_spawn(executor_,
                  acknowledge(connection_, log_, std::move(calls), h.revoked_for, confirmed_channel_,
                              h.nonce + ":" + membership_.id()),
                  log_escaped_exception(log_, "acknowledging a DELETE"));
}

net::awaitable<void> forget_broadcast::acknowledge(std::shared_ptr<redis::client> connection,
                                                   std::shared_ptr<spdlog::logger> log,
                                                   std::vector<std::vector<std::string>> calls,
                                                   std::chrono::milliseconds revoked_for,
                                                   std::string confirmed_channel, std::string confirmation) {
    const std::string no_channel;
    if (auto forgotten =
            co_await forget_under_each_key(*connection, calls, revoked_for, no_channel, no_channel);
        !forgotten) {
        log->debug("removing a forgotten user's entries failed: {}", forgotten.error().message);
        co_return; // not confirmed: the DELETE is answered 503 and tried again
    }
    std::vector<std::string> publish{"PUBLISH", std::move(confirmed_channel), std::move(confirmation)};
    auto r = co_await connection->exec(std::move(publish));
    if (!r || r->is_error())
        log->debug("acknowledging a DELETE failed: {}", shared_scripts::describe(r));
}

void forget_broadcast::on_confirmation(std::string_view message) {
    // <nonce>:<replica id>
    const auto colon = message.find(':');
    if (colon == std::string_view::npos)
        return;
    std::shared_ptr<confirmations> got;
    {
        std::lock_guard lock(mutex_);
        if (auto it = pending_.find(std::string(message.substr(0, colon))); it != pending_.end())
            got = it->second;
    }
    if (!got)
        return;
    {
        std::lock_guard lock(got->mutex);
        got->ids.insert(std::string(message.substr(colon + 1)));
    }
    news_waiter::wake(got->news);
}

} // namespace token_broker
