// Memory per cached entry: the resident set size (/proc/self/statm) and the heap in use (mallinfo2)
// before and after caching 100,000 distinct 500-byte tokens, minus the tokens' own bytes, divided by
// the number of entries. The target (issue 7) is at most 1 KB per entry beyond the token.
//
//   memory_bench [service]  through token_service::answer with a fake Zoom (no network): what the
//                           broker holds per entry (the answer prefix it caches, key, index)
//   memory_bench cache      through token_cache::put directly: the cache's own bookkeeping
//
// Prints one line per measurement and exits 1 when the cache did not end up holding every token.
#include "bench_support.hpp"
#include "cache/token_cache.hpp"
#include "cache/token_service.hpp"
#include "metrics/metrics.hpp"
#include "zoom/zoom_client.hpp"

#include <boost/asio/co_spawn.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <malloc.h>
#include <string>

namespace token_broker::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t entries = 100'000;
constexpr std::size_t token_bytes = 500;
const time_point fetched_at{std::chrono::seconds(1'790'000'000)};
constexpr std::int64_t zak_exp = 1'790'007'200;

struct usage {
    std::size_t resident;
    std::size_t heap;
};

usage now_in_use() {
    return {resident_bytes(), mallinfo2().uordblks};
}

void report(const char* how, usage before, usage after, std::size_t held) {
    const double own = static_cast<double>(entries * token_bytes);
    const auto per_entry = [&](std::size_t b, std::size_t a) {
        return (static_cast<double>(a) - static_cast<double>(b) - own) / static_cast<double>(entries);
    };
    std::printf("%s: %zu entries of %zu-byte tokens held; beyond the tokens' own bytes: "
                "RSS %.0f bytes per entry, heap %.0f bytes per entry (RSS %.1f -> %.1f MiB)\n",
                how, held, token_bytes, per_entry(before.resident, after.resident),
                per_entry(before.heap, after.heap), static_cast<double>(before.resident) / (1 << 20),
                static_cast<double>(after.resident) / (1 << 20));
}

int measure_cache() {
    token_cache cache(entries, 300s);
    const usage before = now_in_use();
    for (std::size_t i = 0; i < entries; ++i) {
        std::string user = user_id(i);
        std::string token = make_zak(user, zak_exp, i, token_bytes);
        cache.put(cache_key{std::move(user), token_type::zak, std::nullopt}, secret(std::move(token)),
                  fetched_at, time_point(std::chrono::seconds(zak_exp)));
    }
    const usage after = now_in_use();
    report("token_cache::put", before, after, cache.size());
    return cache.size() == entries ? 0 : 1;
}

// Zoom without the network: a 500-byte ZAK for every user.
class fake_zoom final : public token_source {
public:
    net::awaitable<result<secret>> fetch_token(token_query q) override {
        co_return secret(make_zak(q.user_id, zak_exp, serial_++, token_bytes));
    }
    readiness ready() const override { return {true, {}}; }

private:
    std::uint64_t serial_ = 0;
};

net::awaitable<void> fill(token_service& service, std::size_t& answered) {
    std::string body;
    for (std::size_t i = 0; i < entries; ++i) {
        const token_query q{user_id(i), token_type::zak, std::nullopt, std::nullopt};
        const auto r = co_await service.answer(q, body);
        answered += r.has_value();
    }
}

int measure_service() {
    net::io_context ioc;
    metrics counters;
    fake_zoom zoom;
    token_service service(ioc.get_executor(), zoom, cache_config{}, counters,
                          std::make_shared<spdlog::logger>("memory_bench"), [] { return fetched_at; });
    std::size_t answered = 0;
    std::exception_ptr failure;
    const usage before = now_in_use();
    net::co_spawn(ioc, fill(service, answered), [&](std::exception_ptr e) { failure = e; });
    ioc.run();
    const usage after = now_in_use();
    if (failure)
        std::rethrow_exception(failure);
    report("token_service::answer", before, after, service.size());
    return answered == entries && service.size() == entries ? 0 : 1;
}

} // namespace
} // namespace token_broker::bench

int main(int argc, char** argv) {
    using namespace token_broker::bench;
    const char* how = argc > 1 ? argv[1] : "service";
    if (std::strcmp(how, "service") == 0)
        return measure_service();
    if (std::strcmp(how, "cache") == 0)
        return measure_cache();
    std::fprintf(stderr, "usage: memory_bench [service|cache]\n");
    return 2;
}
