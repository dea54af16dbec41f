#include "zoom/shared_access_token.hpp"

#include "metrics/metrics.hpp"
#include "redis/connection.hpp"
#include "redis/script.hpp"
#include "redis/sealed.hpp"

#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>
#include <string_view>

namespace token_broker {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kind = "zoom-access-token";

const redis::script& unlock_script() {
    static const redis::script s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
    return s;
}

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

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("no random bytes for a lock value");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += hex[c >> 4];
        out += hex[c & 0xf];
    }
    return out;
}

} // namespace

shared_access_token_store::shared_access_token_store(std::shared_ptr<redis::connection> connection,
                                                     std::shared_ptr<const redis::sealer> sealer,
                                                     const std::string& key_prefix,
                                                     const std::string& account_id,
                                                     std::shared_ptr<spdlog::logger> log, metrics& m)
    : redis_(std::move(connection)), sealer_(std::move(sealer)),
      key_(sealer_->key_name(key_prefix, kind, account_id)),
      previous_key_(sealer_->previous_key_name(key_prefix, kind, account_id)), lock_key_(key_ + ":lock"),
      log_(std::move(log)), metrics_(m) {}

bool shared_access_token_store::up() const noexcept {
    return redis_->up();
}

net::awaitable<result<std::optional<shared_access_token_store::entry>>>
shared_access_token_store::read(wall::time_point now) const {
    std::vector<std::string> command{"MGET", key_};
    if (previous_key_)
        command.push_back(*previous_key_);
    auto r = co_await redis_->exec(std::move(command));
    if (!r)
        co_return r.error();
    if (r->type != redis::reply::kind::array || r->elements.size() != (previous_key_ ? 2u : 1u))
        co_return make_error(errc::cache_unavailable, "unexpected reply from Redis to MGET");
    for (std::size_t i = 0; i < r->elements.size(); ++i) {
        const auto& value = r->elements[i];
        if (value.type != redis::reply::kind::string)
            continue;
        if (auto e = open(i == 0 ? key_ : *previous_key_, value.text, now))
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
    std::vector<std::string> command{"SET", key_, sealer_->seal(key_, plain), "PX", std::to_string(ttl)};
    auto r = co_await redis_->exec(std::move(command));
    if (!r)
        co_return r.error();
    if (!r->is_status("OK"))
        co_return make_error(errc::cache_unavailable, "Redis did not store the shared access token");
    co_return result<void>{};
}

net::awaitable<result<std::optional<std::string>>>
shared_access_token_store::lock(std::chrono::milliseconds ttl) const {
    std::string value = random_hex(16);
    std::vector<std::string> command{"SET", lock_key_, value, "NX", "PX", std::to_string(ttl.count())};
    auto r = co_await redis_->exec(std::move(command));
    if (!r)
        co_return r.error();
    if (r->is_status("OK"))
        co_return std::optional<std::string>(std::move(value));
    if (r->is_nil())
        co_return std::optional<std::string>{};
    co_return make_error(errc::cache_unavailable, "unexpected reply from Redis to SET NX");
}

net::awaitable<void> shared_access_token_store::unlock(const std::string& value) const {
    std::vector<std::string> keys{lock_key_};
    std::vector<std::string> args{value};
    (void)co_await unlock_script().run(*redis_, std::move(keys), std::move(args));
}

} // namespace token_broker
