#include "zoom/shared_access_token.hpp"

#include "metrics/metrics.hpp"
#include "redis/client.hpp"
#include "redis/lease.hpp"
#include "redis/script.hpp"
#include "redis/sealed.hpp"
#include "zoom/zoom_keys.hpp"

#include <charconv>
#include <stdexcept>
#include <string_view>

namespace token_broker {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kind = "access-token";

long long unix_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// Reads one decimal number followed by a space from `text`, advancing past it.
std::optional<long long> number(std::string_view& text) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end == text.data() + text.size() || *end != ' ')
        return std::nullopt;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()) + 1);
    return v;
}

// KEYS: the shared token's names. ARGV: a channel and a message. Deletes, publishes, answers 1.
const redis::script& drop_script() {
    static const redis::script s{R"lua(
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
)lua"};
    return s;
}

} // namespace

shared_access_token_store::shared_access_token_store(std::shared_ptr<redis::client> connection,
                                                     std::shared_ptr<const redis::sealer> sealer,
                                                     const std::string& key_prefix,
                                                     const std::string& account_id,
                                                     std::shared_ptr<spdlog::logger> log, metrics& m,
                                                     std::chrono::milliseconds lock_lease)
    : redis_(std::move(connection)), sealer_(std::move(sealer)),
      keys_(keys_of(*sealer_, key_prefix, account_id)), channel_(key_prefix + "zoom:access-token"),
      lock_lease_(lock_lease), log_(std::move(log)), metrics_(m) {}

shared_access_token_store::key_names shared_access_token_store::keys_of(const redis::sealer& sealer,
                                                                        std::string_view key_prefix,
                                                                        std::string_view account_id) {
    // P{Pzoom}:access-token:{H}: the first hash tag, the Zoom account's, is the one Redis hashes.
    const auto start = zoom_keys_start(key_prefix);
    auto token = sealer.key_name(start, kind, account_id);
    auto lock = token + ":lock";
    return {std::move(token), std::move(lock), sealer.previous_key_name(start, kind, account_id)};
}

bool shared_access_token_store::up() const noexcept {
    return redis_->up();
}

net::awaitable<bool> shared_access_token_store::wait_up(std::chrono::steady_clock::time_point until) const {
    co_return co_await redis_->wait_up(until);
}

net::awaitable<result<std::optional<shared_access_token_store::entry>>>
shared_access_token_store::read(wall::time_point now) const {
    std::vector<std::string> command{"MGET", keys_.token};
    if (keys_.previous)
        command.push_back(*keys_.previous);
    auto r = co_await redis_->exec(std::move(command));
    if (!r)
        co_return r.error();
    if (r->type != redis::reply::kind::array || r->elements.size() != (keys_.previous ? 2u : 1u))
        co_return make_error(errc::cache_unavailable, "unexpected reply from Redis to MGET");
    for (std::size_t i = 0; i < r->elements.size(); ++i) {
        const auto& value = r->elements[i];
        if (value.type != redis::reply::kind::string)
            continue;
        if (auto e = open(i == 0 ? keys_.token : *keys_.previous, value.text, now))
            co_return e;
    }
    co_return std::nullopt;
}

std::optional<shared_access_token_store::entry> shared_access_token_store::open(const std::string& name,
                                                                                const std::string& sealed,
                                                                                wall::time_point now) const {
    auto plain = sealer_->open(name, sealed);
    if (!plain) {
        log_->warn("the shared Zoom access token in Redis does not decrypt under redis.encryption_key; "
                   "treated as absent");
        metrics_.redis_undecryptable();
        return std::nullopt;
    }
    std::string_view text = *plain;
    const auto renew = number(text);
    const auto expires = number(text);
    if (!renew || !expires || text.empty()) {
        log_->warn("the shared Zoom access token in Redis is not in the expected form; treated as absent");
        return std::nullopt;
    }
    entry e{secret(std::string(text)), wall::time_point(milliseconds(*renew)),
            wall::time_point(milliseconds(*expires))};
    if (now >= e.expires_at)
        return std::nullopt;
    return e;
}

net::awaitable<result<void>> shared_access_token_store::write(const entry& e, wall::time_point now) const {
    const auto ttl = std::chrono::duration_cast<milliseconds>(e.expires_at - now).count();
    if (ttl <= 0)
        co_return result<void>{};
    const std::string plain = std::to_string(unix_ms(e.renew_at)) + " " +
                              std::to_string(unix_ms(e.expires_at)) + " " + e.token.reveal();
    std::vector<std::string> command{"SET", keys_.token, sealer_->seal(keys_.token, plain), "PX",
                                     std::to_string(ttl)};
    auto r = co_await redis_->exec(std::move(command));
    if (!r)
        co_return r.error();
    if (!r->is_status("OK"))
        co_return make_error(errc::cache_unavailable, "Redis did not store the shared access token");
    co_await announce(stored_message);
    co_return result<void>{};
}

net::awaitable<void> shared_access_token_store::announce(std::string_view message) const {
    std::vector<std::string> command{"PUBLISH", channel_, std::string(message)};
    auto r = co_await redis_->exec(std::move(command));
    if (!r)
        log_->debug("the shared Zoom access token's announcement failed ({}): the other replicas look "
                    "again within one lock lease",
                    r.error().message);
}

net::awaitable<result<std::optional<std::string>>> shared_access_token_store::lock() const {
    std::string value = redis::random_value();
    auto taken = co_await redis::take_lock(*redis_, keys_.lock, value, lock_lease_);
    if (!taken)
        co_return taken.error();
    if (!*taken)
        co_return std::optional<std::string>{};
    co_return std::optional<std::string>(std::move(value));
}

std::shared_ptr<void> shared_access_token_store::keep(net::any_io_executor ex,
                                                      const std::string& value) const {
    return redis::keep_renewing(std::move(ex), redis_, keys_.lock, value, lock_lease_, log_);
}

net::awaitable<void> shared_access_token_store::unlock(const std::string& value, bool stored) const {
    co_await redis::release_lock(*redis_, keys_.lock, value);
    if (!stored)
        co_await announce(released_message);
}

net::awaitable<result<void>> shared_access_token_store::drop(const std::string& channel,
                                                             const std::string& message) const {
    std::vector<std::string> keys{keys_.token};
    if (keys_.previous)
        keys.push_back(*keys_.previous);
    std::vector<std::string> args{channel, message};
    auto r = co_await drop_script().run(*redis_, std::move(keys), std::move(args));
    if (!r)
        co_return r.error();
    if (r->type != redis::reply::kind::integer)
        co_return make_error(errc::cache_unavailable, "Redis did not drop the shared access token");
    co_return result<void>{};
}

} // namespace token_broker
