// Google Benchmark microbenchmarks of the hit path's pieces: the cache lookup, the answer rendering,
// the JWT expiry read, the target parser and the caller key lookup. Run with `scripts/dev bench-micro`;
// results and the machine they were measured on are in bench/micro.md.
//
// Every benchmark checks once, before timing, that the operation gives the expected answer, and
// stops with an error otherwise: a fast wrong answer is not a result.
#include "auth/auth.hpp"
#include "bench_support.hpp"
#include "cache/jwt.hpp"
#include "cache/token_cache.hpp"
#include "cache/token_service.hpp"
#include "metrics/metrics.hpp"
#include "server/token_request.hpp"
#include "zoom/zoom_client.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <random>
#include <string>
#include <vector>

namespace token_broker::bench {
namespace {

using namespace std::chrono_literals;

const time_point fetched_at{std::chrono::seconds(1'790'000'000)};
constexpr std::int64_t zak_exp = 1'790'007'200; // a 2-hour ZAK

// token_cache::find for a present key, in a cache of 100,000 users holding 500-byte ZAKs. Arg: how
// many distinct keys are asked for, in a shuffled order: all 100,000 (the CPU's cache misses
// included: what a broker with many active users sees) or 64 (hot: the lookup code alone).
void token_cache_find_hit(benchmark::State& state) {
    constexpr std::size_t entries = 100'000;
    token_cache cache(entries, 300s);
    std::vector<std::string> users;
    users.reserve(entries);
    for (std::size_t i = 0; i < entries; ++i) {
        users.push_back(user_id(i));
        cache.put(cache_key{users.back(), token_type::zak, std::nullopt},
                  secret(make_zak(users.back(), zak_exp, i)), fetched_at,
                  time_point(std::chrono::seconds(zak_exp)));
    }
    std::vector<cache_key_view> order;
    order.reserve(entries);
    for (const std::string& u : users)
        order.emplace_back(u, token_type::zak, std::nullopt);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
    order.resize(static_cast<std::size_t>(state.range(0)));

    const time_point now = fetched_at + 60s;
    for (const cache_key_view& key : order) {
        if (!cache.find(key, now)) {
            state.SkipWithError("a cached user was not found");
            return;
        }
    }
    std::size_t i = 0;
    for (auto _ : state) {
        auto hit = cache.find(order[i], now);
        benchmark::DoNotOptimize(hit);
        if (++i == order.size())
            i = 0;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(token_cache_find_hit)->ArgName("keys")->Arg(100'000)->Arg(64);

// Zoom without the network: a 500-byte 2-hour ZAK for every user, valid from the real clock's now.
class fake_zoom final : public token_source {
public:
    net::awaitable<result<secret>> fetch_token(token_query q) override {
        const auto exp =
            std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
        co_return secret(make_zak(q.user_id, exp.count() + 7200, serial_++));
    }
    readiness ready() const override { return {true, {}}; }

private:
    std::uint64_t serial_ = 0;
};

net::awaitable<void> fill(token_service& service, const std::vector<token_query>& queries,
                          std::size_t& answered) {
    std::string body;
    for (const token_query& q : queries)
        answered += (co_await service.answer(q, body)).has_value();
}

// token_service::look_up on a hit, the whole hit path after routing: cache lookup under the mutex,
// then the answer (cached prefix plus expires_in and cached) written into a reused body. 100,000
// users with 500-byte ZAKs on the real clock. Arg: how many distinct users are asked for, in a
// shuffled order: all 100,000, or 64 (hot), as for token_cache_find_hit.
void token_service_look_up_hit(benchmark::State& state) {
    constexpr std::size_t entries = 100'000;
    net::io_context ioc;
    metrics counters;
    fake_zoom zoom;
    token_service service(ioc.get_executor(), zoom, cache_config{}, counters,
                          std::make_shared<spdlog::logger>("micro_bench"));
    std::vector<token_query> queries;
    queries.reserve(entries);
    for (std::size_t i = 0; i < entries; ++i)
        queries.push_back(token_query{user_id(i), token_type::zak, std::nullopt, std::nullopt});
    std::size_t answered = 0;
    std::exception_ptr failure;
    net::co_spawn(ioc, fill(service, queries, answered), [&](std::exception_ptr e) { failure = e; });
    ioc.run();
    std::shuffle(queries.begin(), queries.end(), std::mt19937_64(42));
    queries.resize(static_cast<std::size_t>(state.range(0)));

    std::string body;
    token_service::ticket ticket;
    const auto hit = [&](const token_query& q) {
        return service.look_up(q, body, ticket) == token_service::lookup::hit;
    };
    if (failure || answered != entries || service.size() != entries || !hit(queries[0]) ||
        body.find(R"("cached":true)") == std::string::npos ||
        body.find(queries[0].user_id) == std::string::npos) {
        state.SkipWithError("the cache was not filled, or a hit was not answered from it");
        return;
    }
    std::size_t i = 0;
    for (auto _ : state) {
        bool found = hit(queries[i]);
        benchmark::DoNotOptimize(found);
        benchmark::DoNotOptimize(body.data());
        if (++i == queries.size())
            i = 0;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(token_service_look_up_hit)->ArgName("users")->Arg(100'000)->Arg(64);

// jwt_expiry on a 500-byte ZAK: split, base64url-decode the payload, parse it, read `exp`.
void jwt_expiry_zak_500(benchmark::State& state) {
    const std::string zak = make_zak("KdYKjnimT4KPd8FFgQt9FQ", zak_exp, 7);
    if (zak.size() != 500 || jwt_expiry(zak) != zak_exp) {
        state.SkipWithError("the ZAK is not 500 bytes with the expected exp");
        return;
    }
    for (auto _ : state) {
        auto exp = jwt_expiry(zak);
        benchmark::DoNotOptimize(exp);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * zak.size()));
}
BENCHMARK(jwt_expiry_zak_500);

// parse_token_target on a typical target: an email address percent-encoded, a type and a ttl.
void parse_token_target_typical(benchmark::State& state) {
    const std::string target = "/token/jane.doe%40example.com?type=zak&ttl=3600";
    const auto check = parse_token_target(target, false);
    if (!check || check->user_id != "jane.doe@example.com" || check->ttl != 3600u) {
        state.SkipWithError("the target did not parse as expected");
        return;
    }
    for (auto _ : state) {
        auto parsed = parse_token_target(target, false);
        benchmark::DoNotOptimize(parsed);
    }
}
BENCHMARK(parse_token_target_typical);

// authenticator::identify with 10 configured keys: SHA-256 of the presented key, then a
// constant-time comparison with every digest. Arg 1: a known key; 0: an unknown one.
void authenticator_identify_10_keys(benchmark::State& state) {
    std::vector<caller_key> keys;
    for (int i = 0; i < 10; ++i)
        keys.push_back(caller_key{"service-" + std::to_string(i),
                                  sha256("tbk_live_" + std::to_string(i) + "_9f3c2a71d0e84b6f85a2c4e1"),
                                  {"*"}});
    const authenticator auth(std::move(keys));
    const bool known = state.range(0) != 0;
    const std::string presented =
        known ? "tbk_live_7_9f3c2a71d0e84b6f85a2c4e1" : "tbk_live_x_9f3c2a71d0e84b6f85a2c4e1";
    const caller_key* check = auth.identify(presented);
    if (known ? !check || check->name != "service-7" : check != nullptr) {
        state.SkipWithError("identify gave the wrong key");
        return;
    }
    for (auto _ : state) {
        const caller_key* key = auth.identify(presented);
        benchmark::DoNotOptimize(key);
    }
}
BENCHMARK(authenticator_identify_10_keys)->ArgName("known")->Arg(1)->Arg(0);

} // namespace
} // namespace token_broker::bench

BENCHMARK_MAIN();
