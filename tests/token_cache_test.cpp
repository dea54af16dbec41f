#include "allocation_counter.hpp"
#include "cache/token_cache.hpp"
#include "core/base64.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <iostream>
#include <list>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using std::chrono::seconds;

// A fixed, explicit "now" for every test: 2027-01-15T08:00:00Z.
const time_point t0 = time_point(seconds(1'800'000'000));
constexpr auto tick = std::chrono::nanoseconds(1);

std::string b64url(std::string_view bytes) {
    return base64url_encode(bytes);
}

std::string zak_expiring_at(time_point exp) {
    const auto secs = std::chrono::duration_cast<seconds>(exp.time_since_epoch()).count();
    return b64url(R"({"typ":"JWT","alg":"HS256"})") + "." +
           b64url(R"({"uid":"u1","iss":"web","exp":)" + std::to_string(secs) + R"(,"iat":1})") + ".c2ln";
}

cache_key key(std::string user, token_type type = token_type::zak, std::optional<std::uint32_t> ttl = {}) {
    return cache_key{std::move(user), type, ttl};
}

// Expiry maths

TEST(TokenExpiry, UsesTheJwtExpClaim) {
    const time_point exp = t0 + 5000s;
    EXPECT_EQ(token_expiry(zak_expiring_at(exp), token_type::zak, std::nullopt, t0), exp);
    // The claim wins over the ttl asked for: it is what Zoom actually granted.
    EXPECT_EQ(token_expiry(zak_expiring_at(exp), token_type::zak, 60u, t0), exp);
    // A token already expired when fetched keeps its exp (and so is never served from the cache).
    EXPECT_EQ(token_expiry(zak_expiring_at(t0 - 10s), token_type::zak, std::nullopt, t0), t0 - 10s);
}

TEST(TokenExpiry, FallsBackToTtlOrZoomsDefaultPerType) {
    EXPECT_EQ(token_expiry("opaque", token_type::zak, std::nullopt, t0), t0 + 2h);
    EXPECT_EQ(token_expiry("opaque", token_type::onbehalf, std::nullopt, t0), t0 + 2h);
    EXPECT_EQ(token_expiry("opaque", token_type::token, std::nullopt, t0), t0 + 14 * 24h);
    EXPECT_EQ(token_expiry("opaque", token_type::zak, 600u, t0), t0 + 600s);
    EXPECT_EQ(token_expiry("opaque", token_type::onbehalf, 31536000u, t0), t0 + 31536000s);
    EXPECT_EQ(token_expiry("a.b.c", token_type::zak, std::nullopt, t0), t0 + 2h); // not JSON inside
    EXPECT_EQ(default_lifetime(token_type::zak), 7200s);
    EXPECT_EQ(default_lifetime(token_type::onbehalf), 7200s);
    EXPECT_EQ(default_lifetime(token_type::token), 1209600s);
}

TEST(TokenExpiry, DistrustsAnExpBeyondTheClocksRange) {
    const std::string far = b64url(R"({"alg":"HS256"})") + "." + b64url(R"({"exp":253402300799})") + ".c2ln";
    EXPECT_EQ(token_expiry(far, token_type::zak, std::nullopt, t0), t0 + 2h);
    EXPECT_EQ(token_expiry(far, token_type::zak, 120u, t0), t0 + 120s);
}

TEST(RefreshMargin, IsTheSmallerOfConfiguredAndAFifthOfTheLifetime) {
    EXPECT_EQ(refresh_margin(t0, t0 + 7200s, 300s), 300s);        // 2 h ZAK: configured
    EXPECT_EQ(refresh_margin(t0, t0 + 14 * 24h, 300s), 300s);     // 14-day token
    EXPECT_EQ(refresh_margin(t0, t0 + 600s, 300s), 120s);         // 10 minutes: a fifth
    EXPECT_EQ(refresh_margin(t0, t0 + 60s, 300s), 12s);           // the shortest ttl
    EXPECT_EQ(refresh_margin(t0, t0 + 1500s, 300s), 300s);        // both equal
    EXPECT_EQ(refresh_margin(t0, t0 + 1499s, 300s), 299s);        // a fifth, rounded down
    EXPECT_EQ(refresh_margin(t0, t0 + 7200s, 10000s), 1440s);     // a large configured margin
    EXPECT_EQ(refresh_margin(t0, t0 + 4s, 300s), 0s);             // under 5 s: none
    EXPECT_EQ(refresh_margin(t0, t0, 300s), 0s);                  // L = 0
    EXPECT_EQ(refresh_margin(t0, t0 - 100s, 300s), 0s);           // L < 0
    EXPECT_EQ(refresh_margin(t0, t0 + 7200s, 0s), 0s);            // margin switched off
    EXPECT_EQ(refresh_margin(t0, time_point::max(), 300s), 300s); // no overflow
    EXPECT_EQ(refresh_margin(time_point::min(), time_point::max(), 300s), 300s);
}

TEST(CachedToken, SchedulesServeAndRefresh) {
    const cached_token t{secret("x"), t0, t0 + 7200s, 300s};
    EXPECT_EQ(t.serve_until(), t0 + 6900s);
    EXPECT_EQ(t.refresh_from(), t0 + 6600s);
}

// token_cache: serving boundaries

TEST(TokenCache, ServesUntilTheMarginAndAsksForOneRefreshInTheLastMargin) {
    token_cache cache(10, 300s);
    cache.put(key("alice"), secret("zak-1"), t0, t0 + 7200s);

    auto h = cache.find(cache_key_view("alice", token_type::zak, std::nullopt), t0);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->token->token.reveal(), "zak-1");
    EXPECT_EQ(h->token->margin, 300s);
    EXPECT_EQ(h->token->fetched_at, t0);
    EXPECT_EQ(h->token->expires_at, t0 + 7200s);
    EXPECT_FALSE(h->refresh_due);

    const cache_key k = key("alice");
    h = cache.find(k, t0 + 6600s - tick);
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->refresh_due);
    h = cache.find(k, t0 + 6600s);
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->refresh_due);
    h = cache.find(k, t0 + 6900s - tick);
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->refresh_due);
    // now == serve_until is not served, but the entry stays for stale-if-error.
    EXPECT_FALSE(cache.find(k, t0 + 6900s));
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_NE(cache.find_stale(k, t0 + 6900s), nullptr);
}

TEST(TokenCache, ShortTokensUseAFifthOfTheirLifetime) {
    token_cache cache(10, 300s);
    cache.put(key("bob", token_type::zak, 60), secret("z"), t0, t0 + 60s); // margin 12 s
    const cache_key_view k("bob", token_type::zak, 60u);
    ASSERT_TRUE(cache.find(k, t0 + 36s - tick));
    EXPECT_FALSE(cache.find(k, t0 + 36s - tick)->refresh_due);
    EXPECT_TRUE(cache.find(k, t0 + 36s)->refresh_due);
    EXPECT_TRUE(cache.find(k, t0 + 48s - tick));
    EXPECT_FALSE(cache.find(k, t0 + 48s));
}

TEST(TokenCache, DropsExpiredEntriesOnFind) {
    token_cache cache(10, 300s);
    cache.put(key("alice"), secret("z"), t0, t0 + 7200s);
    EXPECT_FALSE(cache.find(key("alice"), t0 + 7200s - tick));
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_FALSE(cache.find(key("alice"), t0 + 7200s));
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(cache.find_stale(key("alice"), t0), nullptr);
}

TEST(TokenCache, NeverServesATokenExpiredWhenFetched) {
    token_cache cache(10, 300s);
    cache.put(key("alice"), secret("z"), t0, t0 - 1s);
    EXPECT_FALSE(cache.find(key("alice"), t0));
}

TEST(TokenCache, StaleNeedsThirtySecondsOfRealValidity) {
    token_cache cache(10, 300s);
    cache.put(key("alice"), secret("old"), t0, t0 + 7200s);
    const cache_key k = key("alice");
    const cached_token* stale = cache.find_stale(k, t0 + 7170s);
    ASSERT_NE(stale, nullptr);
    EXPECT_EQ(stale->token.reveal(), "old");
    EXPECT_EQ(cache.find_stale(k, t0 + 7170s + tick), nullptr);
    EXPECT_EQ(cache.find_stale(k, t0 + 7200s), nullptr);
    EXPECT_NE(cache.find_stale(k, t0), nullptr); // also while still fresh
    EXPECT_EQ(cache.find_stale(key("alice", token_type::zak, 3600), t0), nullptr);
}

// token_cache: keys

TEST(TokenCache, KeysOnUserTypeAndTtl) {
    token_cache cache(10, 300s);
    cache.put(key("alice"), secret("zak-default"), t0, t0 + 7200s);
    cache.put(key("alice", token_type::zak, 7200), secret("zak-7200"), t0, t0 + 7200s);
    cache.put(key("alice", token_type::token), secret("token"), t0, t0 + 14 * 24h);
    cache.put(key("Alice"), secret("other-case"), t0, t0 + 7200s);
    EXPECT_EQ(cache.size(), 4u);
    EXPECT_EQ(cache.find(key("alice"), t0)->token->token.reveal(), "zak-default");
    EXPECT_EQ(cache.find(key("alice", token_type::zak, 7200), t0)->token->token.reveal(), "zak-7200");
    EXPECT_EQ(cache.find(key("alice", token_type::token), t0)->token->token.reveal(), "token");
    EXPECT_EQ(cache.find(key("Alice"), t0)->token->token.reveal(), "other-case");
    EXPECT_FALSE(cache.find(key("alice", token_type::token, 7200), t0));
    EXPECT_FALSE(cache.find(key("alice", token_type::zak, 0), t0));
}

TEST(TokenCache, NeverCachesOnBehalfTokens) {
    token_cache cache(10, 300s);
    cache.put(key("alice", token_type::onbehalf), secret("obf"), t0, t0 + 7200s);
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_FALSE(cache.find(key("alice", token_type::onbehalf), t0));
    EXPECT_EQ(cache.find_stale(key("alice", token_type::onbehalf), t0), nullptr);
}

TEST(CacheKey, SupportsHeterogeneousLookup) {
    std::unordered_map<cache_key, int, cache_key_hash, cache_key_equal> map;
    map.emplace(key("alice"), 1);
    map.emplace(key("alice", token_type::zak, 3600), 2);
    const std::string user = "alice";
    const auto it = map.find(cache_key_view(user, token_type::zak, 3600u));
    ASSERT_NE(it, map.end());
    EXPECT_EQ(it->second, 2);
    EXPECT_EQ(map.find(cache_key_view(user, token_type::zak, std::nullopt))->second, 1);
    EXPECT_EQ(map.find(cache_key_view(user, token_type::token, std::nullopt)), map.end());
    EXPECT_EQ(map.find(cache_key_view("alic", token_type::zak, std::nullopt)), map.end());

    EXPECT_EQ(cache_key_hash{}(key("alice", token_type::zak, 3600)),
              cache_key_hash{}(cache_key_view(user, token_type::zak, 3600u)));
    EXPECT_TRUE(cache_key_equal{}(key("alice"), cache_key_view(user, token_type::zak, std::nullopt)));
    EXPECT_FALSE(cache_key_equal{}(key("alice"), key("alice", token_type::zak, 0)));
    EXPECT_FALSE(cache_key_equal{}(key("alice"), key("alice", token_type::token)));
}

TEST(TokenCache, AHitDoesNotAllocate) {
    token_cache cache(100, 300s);
    for (int i = 0; i < 50; ++i)
        cache.put(key("user-with-a-long-id-" + std::to_string(i) + "@example.com"),
                  secret(std::string(400, 'z')), t0, t0 + 7200s);
    const std::string user = "user-with-a-long-id-17@example.com";
    const cache_key_view k(user, token_type::zak, std::nullopt);
    const std::size_t before = testing::allocation_count();
    const auto h = cache.find(k, t0 + 6700s); // a hit, with a refresh due
    const auto m = cache.find(cache_key_view(user, token_type::token, std::nullopt), t0); // a miss
    const std::size_t after = testing::allocation_count();
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->refresh_due);
    EXPECT_FALSE(m);
    EXPECT_EQ(after, before);
}

TEST(TokenCache, KeepsItsOverheadPerEntrySmall) {
    // 100,000 entries of distinct users (the worst case for the per-user index) with ids and tokens
    // short enough to live inside their std::string: what is measured is the cache's own overhead.
    constexpr std::size_t n = 100'000;
    std::vector<std::string> users;
    users.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        users.push_back("u" + std::to_string(i));
    const std::size_t before = testing::live_bytes();
    {
        token_cache cache(n, 300s);
        for (const std::string& u : users)
            cache.put(key(u), secret("t"), t0, t0 + 7200s);
        ASSERT_EQ(cache.size(), n);
        const std::size_t per_entry = (testing::live_bytes() - before) / n;
        EXPECT_LT(per_entry, 400u);
        std::cout << "token_cache overhead: " << per_entry << " bytes per entry\n";
    }
    EXPECT_EQ(testing::live_bytes(), before); // and all of it is given back
}

// token_cache: size, LRU, replacement

TEST(TokenCache, ReplacingKeepsTheSizeAndTakesTheNewSchedule) {
    token_cache cache(10, 300s);
    cache.put(key("alice"), secret("first"), t0, t0 + 7200s);
    cache.put(key("alice"), secret("second"), t0 + 100s, t0 + 700s);
    EXPECT_EQ(cache.size(), 1u);
    const auto h = cache.find(key("alice"), t0 + 100s);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->token->token.reveal(), "second");
    EXPECT_EQ(h->token->margin, 120s);
    EXPECT_EQ(h->token->serve_until(), t0 + 580s);
}

TEST(TokenCache, EvictsTheLeastRecentlyUsedBeyondMaxEntries) {
    token_cache cache(3, 300s);
    for (const char* u : {"u1", "u2", "u3", "u4", "u5"})
        cache.put(key(u), secret(u), t0, t0 + 7200s);
    EXPECT_EQ(cache.size(), 3u);
    EXPECT_FALSE(cache.find(key("u1"), t0));
    EXPECT_FALSE(cache.find(key("u2"), t0));
    EXPECT_TRUE(cache.find(key("u3"), t0));
    EXPECT_TRUE(cache.find(key("u4"), t0));
    EXPECT_TRUE(cache.find(key("u5"), t0));
}

TEST(TokenCache, AHitChangesTheVictim) {
    token_cache cache(2, 300s);
    cache.put(key("a"), secret("a"), t0, t0 + 7200s);
    cache.put(key("b"), secret("b"), t0, t0 + 7200s);
    ASSERT_TRUE(cache.find(key("a"), t0)); // a is now the most recently used
    cache.put(key("c"), secret("c"), t0, t0 + 7200s);
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_TRUE(cache.find(key("a"), t0));
    EXPECT_FALSE(cache.find(key("b"), t0));
    EXPECT_TRUE(cache.find(key("c"), t0));
}

TEST(TokenCache, WithoutAHitTheOldestGoes) {
    token_cache cache(2, 300s);
    cache.put(key("a"), secret("a"), t0, t0 + 7200s);
    cache.put(key("b"), secret("b"), t0, t0 + 7200s);
    ASSERT_NE(cache.find_stale(key("a"), t0), nullptr); // find_stale does not count as use
    EXPECT_FALSE(cache.find(key("a"), t0 + 7000s));     // nor does a find past serve_until
    cache.put(key("c"), secret("c"), t0, t0 + 7200s);
    EXPECT_FALSE(cache.find(key("a"), t0));
    EXPECT_TRUE(cache.find(key("b"), t0));
}

TEST(TokenCache, ReplacingCountsAsUse) {
    token_cache cache(2, 300s);
    cache.put(key("a"), secret("a"), t0, t0 + 7200s);
    cache.put(key("b"), secret("b"), t0, t0 + 7200s);
    cache.put(key("a"), secret("a2"), t0, t0 + 7200s);
    cache.put(key("c"), secret("c"), t0, t0 + 7200s);
    EXPECT_TRUE(cache.find(key("a"), t0));
    EXPECT_FALSE(cache.find(key("b"), t0));
}

TEST(TokenCache, ZeroMaxEntriesKeepsNothing) {
    token_cache cache(0, 300s);
    cache.put(key("a"), secret("a"), t0, t0 + 7200s);
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_FALSE(cache.find(key("a"), t0));
}

// token_cache: erase_user

TEST(TokenCache, EraseUserDropsAllItsTypesAndTtlsOnly) {
    token_cache cache(100, 300s);
    for (const char* u : {"al", "alice", "alice2", "bob"}) {
        cache.put(key(u), secret("zak"), t0, t0 + 7200s);
        cache.put(key(u, token_type::zak, 3600), secret("zak-3600"), t0, t0 + 3600s);
        cache.put(key(u, token_type::token), secret("token"), t0, t0 + 14 * 24h);
    }
    ASSERT_EQ(cache.size(), 12u);
    EXPECT_EQ(cache.erase_user("alice"), 3u);
    EXPECT_EQ(cache.size(), 9u);
    EXPECT_FALSE(cache.find(key("alice"), t0));
    EXPECT_FALSE(cache.find(key("alice", token_type::zak, 3600), t0));
    EXPECT_EQ(cache.find_stale(key("alice", token_type::token), t0), nullptr);
    for (const char* u : {"al", "alice2", "bob"}) {
        EXPECT_TRUE(cache.find(key(u), t0)) << u;
        EXPECT_TRUE(cache.find(key(u, token_type::zak, 3600), t0)) << u;
        EXPECT_TRUE(cache.find(key(u, token_type::token), t0)) << u;
    }
    EXPECT_EQ(cache.erase_user("alice"), 0u);
    EXPECT_EQ(cache.erase_user("ALICE"), 0u);
    EXPECT_EQ(cache.erase_user(""), 0u);
    EXPECT_EQ(cache.size(), 9u);

    // The user can be cached again afterwards.
    cache.put(key("alice"), secret("new"), t0, t0 + 7200s);
    EXPECT_EQ(cache.find(key("alice"), t0)->token->token.reveal(), "new");
    EXPECT_EQ(cache.erase_user("alice"), 1u);
}

TEST(TokenCache, EraseUserAfterItsFirstEntryWasEvictedOrExpired) {
    token_cache cache(4, 300s);
    cache.put(key("alice"), secret("1"), t0, t0 + 100s); // first entry of alice: indexes the user
    cache.put(key("alice", token_type::zak, 600), secret("2"), t0, t0 + 7200s);
    cache.put(key("alice", token_type::zak, 900), secret("3"), t0, t0 + 7200s);
    cache.put(key("bob"), secret("b"), t0, t0 + 7200s);
    EXPECT_FALSE(cache.find(key("alice"), t0 + 100s)); // expired: dropped
    ASSERT_EQ(cache.size(), 3u);
    cache.put(key("carol"), secret("c"), t0, t0 + 7200s);
    cache.put(key("dave"), secret("d"), t0, t0 + 7200s); // evicts alice/600
    ASSERT_EQ(cache.size(), 4u);
    EXPECT_FALSE(cache.find(key("alice", token_type::zak, 600), t0));
    EXPECT_EQ(cache.erase_user("alice"), 1u);
    EXPECT_EQ(cache.size(), 3u);
    EXPECT_TRUE(cache.find(key("bob"), t0));
    EXPECT_TRUE(cache.find(key("carol"), t0));
    EXPECT_TRUE(cache.find(key("dave"), t0));
}

TEST(TokenCache, ClearEmptiesEverything) {
    token_cache cache(10, 300s);
    cache.put(key("a"), secret("a"), t0, t0 + 7200s);
    cache.put(key("b"), secret("b"), t0, t0 + 7200s);
    cache.clear();
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_FALSE(cache.find(key("a"), t0));
    EXPECT_EQ(cache.erase_user("a"), 0u);
    cache.put(key("a"), secret("a"), t0, t0 + 7200s);
    EXPECT_EQ(cache.size(), 1u);
}

// A long random sequence of operations against a plain model of the same LRU cache.
TEST(TokenCache, AgreesWithASimpleModel) {
    constexpr std::size_t max = 8;
    token_cache cache(max, 300s);
    std::list<cache_key> model; // most recently used first
    const auto model_find = [&](const cache_key& k) { return std::find(model.begin(), model.end(), k); };

    std::mt19937 rng(7);
    const std::vector<std::string> users = {"a", "ab", "abc", "b", "c", "d", "e"};
    const auto random_key = [&] {
        const std::string& u = users[rng() % users.size()];
        const token_type type = rng() % 2 ? token_type::zak : token_type::token;
        const std::optional<std::uint32_t> ttl =
            rng() % 3 == 0 ? std::nullopt : std::optional<std::uint32_t>(60 * (1 + rng() % 2));
        return cache_key{u, type, ttl};
    };
    for (int step = 0; step < 20000; ++step) {
        const unsigned op = rng() % 10;
        if (op < 5) {
            cache_key k = random_key();
            if (const auto it = model_find(k); it != model.end())
                model.erase(it);
            model.push_front(k);
            if (model.size() > max)
                model.pop_back();
            cache.put(std::move(k), secret("t"), t0, t0 + 7200s);
        } else if (op < 9) {
            const cache_key k = random_key();
            const auto it = model_find(k);
            const bool expected = it != model.end();
            if (expected)
                model.splice(model.begin(), model, it);
            ASSERT_EQ(cache.find(k, t0).has_value(), expected) << step;
        } else {
            const std::string& u = users[rng() % users.size()];
            const auto n = static_cast<std::size_t>(std::count_if(
                model.begin(), model.end(), [&](const cache_key& k) { return k.user_id == u; }));
            model.remove_if([&](const cache_key& k) { return k.user_id == u; });
            ASSERT_EQ(cache.erase_user(u), n) << step;
        }
        ASSERT_EQ(cache.size(), model.size()) << step;
    }
    for (const cache_key& k : model)
        EXPECT_NE(cache.find_stale(k, t0), nullptr);
}

// negative_cache

TEST(NegativeCache, RemembersForTheTtl) {
    negative_cache negative(10, 30s);
    EXPECT_FALSE(negative.contains("ghost", t0));
    negative.remember("ghost", t0);
    EXPECT_TRUE(negative.contains("ghost", t0));
    EXPECT_TRUE(negative.contains("ghost", t0 + 30s - tick));
    EXPECT_FALSE(negative.contains("Ghost", t0));
    EXPECT_FALSE(negative.contains("ghos", t0));
    EXPECT_EQ(negative.size(), 1u);
    EXPECT_FALSE(negative.contains("ghost", t0 + 30s));
    EXPECT_EQ(negative.size(), 0u);
}

TEST(NegativeCache, RememberingAgainStartsTheTtlOver) {
    negative_cache negative(10, 30s);
    negative.remember("ghost", t0);
    negative.remember("ghost", t0 + 20s);
    EXPECT_EQ(negative.size(), 1u);
    EXPECT_TRUE(negative.contains("ghost", t0 + 49s));
    EXPECT_FALSE(negative.contains("ghost", t0 + 50s));
}

TEST(NegativeCache, IsBoundedOldestFirst) {
    negative_cache negative(2, 30s);
    negative.remember("a", t0);
    negative.remember("b", t0 + 1s);
    negative.remember("c", t0 + 2s);
    EXPECT_EQ(negative.size(), 2u);
    EXPECT_FALSE(negative.contains("a", t0 + 3s));
    EXPECT_TRUE(negative.contains("b", t0 + 3s));
    EXPECT_TRUE(negative.contains("c", t0 + 3s));
    negative.remember("b", t0 + 4s); // b is now the newest
    negative.remember("d", t0 + 5s);
    EXPECT_FALSE(negative.contains("c", t0 + 6s));
    EXPECT_TRUE(negative.contains("b", t0 + 6s));
    EXPECT_TRUE(negative.contains("d", t0 + 6s));
}

TEST(NegativeCache, DropsExpiredRecordsWhenRemembering) {
    negative_cache negative(10, 30s);
    negative.remember("a", t0);
    negative.remember("b", t0 + 10s);
    negative.remember("c", t0 + 35s); // a has expired by now
    EXPECT_EQ(negative.size(), 2u);
    EXPECT_TRUE(negative.contains("b", t0 + 35s));
}

TEST(NegativeCache, Forgets) {
    negative_cache negative(10, 30s);
    negative.remember("a", t0);
    negative.remember("b", t0);
    negative.forget("a");
    negative.forget("nobody");
    EXPECT_FALSE(negative.contains("a", t0));
    EXPECT_TRUE(negative.contains("b", t0));
    EXPECT_EQ(negative.size(), 1u);
    negative.clear();
    EXPECT_EQ(negative.size(), 0u);
    EXPECT_FALSE(negative.contains("b", t0));
}

TEST(NegativeCache, ZeroTtlOrSizeRemembersNothing) {
    negative_cache no_ttl(10, 0s);
    no_ttl.remember("a", t0);
    EXPECT_FALSE(no_ttl.contains("a", t0));
    EXPECT_EQ(no_ttl.size(), 0u);
    negative_cache no_room(0, 30s);
    no_room.remember("a", t0);
    EXPECT_FALSE(no_room.contains("a", t0));
    EXPECT_EQ(no_room.size(), 0u);
}

} // namespace
} // namespace token_broker
