#include "zoom/shared_budget.hpp"

#include "core/spawn.hpp"
#include "metrics/metrics.hpp"
#include "zoom/zoom_keys.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>

#include <algorithm>
#include <charconv>
#include <optional>
#include <utility>

namespace token_broker {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Times are whole microseconds of Redis's TIME: below 2^53 for centuries, so exact in Lua's doubles;
// the stored value is formatted with %.0f because Lua's tostring keeps 14 digits only.
constexpr const char* gcra_lua = R"lua(
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local patience = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local after = tat + interval
local go = after - window
if go < now then go = now end
local wait = go - now
if wait > patience then return {0, wait} end
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 1)
return {1, wait}
)lua";

constexpr const char* block_lua = R"lua(
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ms then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
)lua";

// The block's time left (PTTL: -2 when there is none) and the length it was set with (0 when absent).
constexpr const char* block_read_lua = R"lua(
return {redis.call('PTTL', KEYS[1]), tonumber(redis.call('GET', KEYS[1])) or 0}
)lua";

long long whole_microseconds(std::chrono::steady_clock::duration d) {
    return std::max<long long>(0, std::chrono::ceil<microseconds>(d).count());
}

// "the reason" of a failed command or an unexpected reply, for the log (Redis's own words, no value).
std::string failure_of(const result<redis::reply>& r) {
    if (!r)
        return r.error().message;
    if (r->is_error())
        return "Redis answered " + r->text;
    return "unexpected reply from Redis";
}

// The two integers of a script's {a, b} reply; nothing for any other reply or a failed command.
std::optional<std::pair<long long, long long>> two_integers(const result<redis::reply>& r) {
    if (!r || r->type != redis::reply::kind::array || r->elements.size() != 2)
        return std::nullopt;
    const auto& a = r->elements[0];
    const auto& b = r->elements[1];
    if (a.type != redis::reply::kind::integer || b.type != redis::reply::kind::integer)
        return std::nullopt;
    return std::pair{a.integer, b.integer};
}

// The GCRA script's verdict, when its reply means one: {1, wait} with a wait the caller accepts
// (`patience` microseconds at most), or {0, wait} with a longer one. Anything else (another shape, a
// verdict other than 0 or 1, a grant later than the caller can wait, a refusal of a turn it could
// have waited for) is not what the script answers: Redis failing.
std::optional<std::pair<bool, long long>> gcra_verdict(const result<redis::reply>& r, long long patience) {
    const auto pair = two_integers(r);
    if (!pair)
        return std::nullopt;
    const auto [verdict, wait] = *pair;
    if (wait < 0 || (verdict == 1 && wait > patience) || (verdict == 0 && wait <= patience) ||
        (verdict != 0 && verdict != 1))
        return std::nullopt;
    return std::pair{verdict == 1, wait};
}

// The block's time left in milliseconds (0: none), when the block script's reply means one: no key
// (-2), or a time left within the length the block was set with, itself a length the broker sets.
// Anything else is Redis failing.
std::optional<long long> block_left(const result<redis::reply>& r) {
    const auto pair = two_integers(r);
    if (!pair)
        return std::nullopt;
    const auto [left, length] = *pair;
    if (left == -2)
        return 0;
    if (left < 0 || left > length || length > milliseconds(max_rate_limit_block).count())
        return std::nullopt;
    return left;
}

} // namespace

const redis::script& block_read_script() {
    static const redis::script s(block_read_lua);
    return s;
}

const redis::script& gcra_script() {
    static const redis::script s(gcra_lua);
    return s;
}

const redis::script& block_script() {
    static const redis::script s(block_lua);
    return s;
}

shared_upstream_budget::key_names shared_upstream_budget::keys_of(std::string_view key_prefix) {
    const auto start = zoom_keys_start(key_prefix);
    return {start + "budget", start + "block"};
}

shared_upstream_budget::shared_upstream_budget(net::any_io_executor strand,
                                               std::shared_ptr<redis::client> connection,
                                               std::string key_prefix, double requests_per_second,
                                               zoom_clock clock, std::shared_ptr<spdlog::logger> log,
                                               metrics& m)
    : strand_(std::move(strand)), redis_(std::move(connection)), keys_(keys_of(key_prefix)),
      block_channel_(key_prefix + "zoom:block"), clock_(std::move(clock)), log_(std::move(log)), metrics_(m),
      local_(requests_per_second) {
    metrics_.shared_budget(true); // as configured, until a command fails
}

net::awaitable<upstream_budget::reservation> shared_upstream_budget::reserve(clock::time_point now,
                                                                             clock::time_point deadline) {
    if (local_.interval() == clock::duration::zero())
        co_return reservation{true, now}; // no budget at all
    if (!redis_->up()) {
        shared_state(false, "not connected to Redis");
        co_return local_.reserve(now, deadline);
    }
    const long long patience = whole_microseconds(deadline - now);
    std::vector<std::string> keys{keys_.budget};
    std::vector<std::string> args{std::to_string(whole_microseconds(local_.interval())),
                                  std::to_string(whole_microseconds(local_.burst_window())),
                                  std::to_string(patience)};
    auto r = co_await gcra_script().run(*redis_, std::move(keys), std::move(args));
    const auto verdict = gcra_verdict(r, patience);
    if (!verdict) {
        shared_state(false, failure_of(r));
        co_return local_.reserve(now, deadline);
    }
    shared_state(true);
    const auto [granted, wait] = *verdict;
    if (!granted)
        metrics_.shared_budget_rejected();
    co_return reservation{granted, now + microseconds(wait)};
}

net::awaitable<void> shared_upstream_budget::block_until(clock::time_point now, clock::time_point until) {
    block_.block_until(until);
    const auto ms = std::chrono::ceil<milliseconds>(until - now).count();
    if (ms <= 0 || !redis_->up())
        co_return;
    std::vector<std::string> keys{keys_.block};
    std::vector<std::string> args{std::to_string(ms), block_channel_};
    auto r = co_await block_script().run(*redis_, std::move(keys), std::move(args));
    if (!r || r->type != redis::reply::kind::integer)
        log_->warn("Zoom's 429 could not be shared with the other replicas ({}): they learn it from Zoom",
                   failure_of(r));
}

net::awaitable<std::optional<std::chrono::seconds>>
shared_upstream_budget::blocked_for(clock::time_point now) {
    if (auto known = block_.blocked_for(now))
        co_return known;
    if (!redis_->up())
        co_return std::nullopt;
    std::vector<std::string> keys{keys_.block};
    std::vector<std::string> no_args;
    auto r = co_await block_read_script().run(*redis_, std::move(keys), std::move(no_args));
    const auto left = block_left(r);
    if (!left) {
        log_->debug("the shared 429 block could not be read ({}); going by this replica's own",
                    failure_of(r));
        co_return block_.blocked_for(std::max(now, clock_.steady_now()));
    }
    // The time now, not `now`: a publication learnt during the round trip counts from its arrival.
    now = std::max(now, clock_.steady_now());
    if (*left > 0)
        learn(now, *left);
    co_return block_.blocked_for(now);
}

void shared_upstream_budget::on_block_published(std::string_view message) {
    long long ms = 0;
    const auto [end, ec] = std::from_chars(message.data(), message.data() + message.size(), ms);
    if (ec != std::errc{} || end != message.data() + message.size() || ms <= 0) {
        log_->debug("ignored a publication on {} that is not a block length", block_channel_);
        return;
    }
    net::dispatch(strand_, [weak = weak_from_this(), ms] {
        if (auto self = weak.lock())
            self->learn(self->clock_.steady_now(), ms);
    });
}

void shared_upstream_budget::on_subscribed() {
    auto self = shared_from_this();
    net::co_spawn(strand_, read_block(self),
                  log_escaped_exception(log_, "reading the shared 429 block stopped by an unexpected error"));
}

net::awaitable<void> shared_upstream_budget::read_block(std::shared_ptr<shared_upstream_budget> self) {
    (void)co_await self->blocked_for(clock_.steady_now());
}

void shared_upstream_budget::learn(clock::time_point now, long long ms) {
    const auto capped = std::min<long long>(ms, std::chrono::milliseconds(max_rate_limit_block).count());
    block_.block_until(now + milliseconds(capped));
}

void shared_upstream_budget::shared_state(bool shared, std::string_view why) {
    if (shared_ == shared)
        return;
    const bool first = !shared_;
    shared_ = shared;
    metrics_.shared_budget(shared);
    if (!shared)
        log_->warn("the Zoom budget shared through Redis is unavailable ({}): this replica limits itself to "
                   "zoom.requests_per_second alone until Redis answers again, so N replicas may send N times "
                   "the account's rate meanwhile",
                   why);
    else if (!first)
        log_->info("the Zoom budget shared through Redis is in force again");
}

} // namespace token_broker
