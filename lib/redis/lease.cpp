#include "redis/lease.hpp"

#include "core/spawn.hpp"
#include "redis/client.hpp"
#include "redis/script.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/rand.h>

#include <stdexcept>

namespace token_broker::redis {
namespace {

const script& renew_script() {
    static const script s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua");
    return s;
}

const script& release_script() {
    static const script s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua");
    return s;
}

// A renewal and its handle: the last copy of the handle gone, the renewal stops at once (its timer is
// cancelled) instead of at its next tick. Both the renewal and the cancel run on the strand.
struct renewal {
    explicit renewal(const net::any_io_executor& ex) : strand(net::make_strand(ex)), timer(strand) {}
    net::strand<net::any_io_executor> strand;
    net::steady_timer timer;
    bool dropped = false; // on the strand
};

net::awaitable<void> renew(std::shared_ptr<client> c, std::string key, std::string value,
                           std::chrono::milliseconds lease, std::shared_ptr<renewal> state) {
    for (;;) {
        if (state->dropped)
            co_return;
        state->timer.expires_after(std::max(lease / 3, std::chrono::milliseconds{1}));
        co_await state->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (state->dropped)
            co_return;
        std::vector<std::string> keys{key};
        std::vector<std::string> args{value, std::to_string(lease.count())};
        auto r = co_await renew_script().run(*c, std::move(keys), std::move(args));
        // Not ours any more (released, or lapsed during a stall): nothing left to renew. A failed
        // command is tried again at the next tick, while the lock may still live.
        if (r && r->type == reply::kind::integer && r->integer == 0)
            co_return;
    }
}

} // namespace

std::string random_value() {
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

net::awaitable<result<bool>> take_lock(client& c, const std::string& key, const std::string& value,
                                       std::chrono::milliseconds lease) {
    std::vector<std::string> command{"SET", key, value, "NX", "PX", std::to_string(lease.count())};
    auto r = co_await c.exec(std::move(command));
    if (!r)
        co_return r.error();
    if (r->is_status("OK"))
        co_return true;
    if (r->is_nil())
        co_return false;
    co_return make_error(errc::cache_unavailable, "unexpected reply from Redis to SET NX");
}

net::awaitable<void> release_lock(client& c, const std::string& key, const std::string& value) {
    std::vector<std::string> keys{key};
    std::vector<std::string> args{value};
    (void)co_await release_script().run(c, std::move(keys), std::move(args));
}

std::shared_ptr<void> keep_renewing(net::any_io_executor ex, std::shared_ptr<client> c, std::string key,
                                    std::string value, std::chrono::milliseconds lease,
                                    std::shared_ptr<spdlog::logger> log) {
    auto state = std::make_shared<renewal>(ex);
    net::co_spawn(state->strand, renew(std::move(c), std::move(key), std::move(value), lease, state),
                  log_escaped_exception(std::move(log), "renewing a lock"));
    return std::shared_ptr<void>(state.get(), [state](void*) {
        net::post(state->strand, [state] {
            state->dropped = true;
            state->timer.cancel();
        });
    });
}

} // namespace token_broker::redis
