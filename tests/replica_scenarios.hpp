// What CONTRACT.md section 7 promises callers of several replicas, as test bodies that do not care
// which Redis the replicas share: one redis-server (tests/replica_process_test.cpp) or a Redis
// Cluster (tests/cluster_process_test.cpp) run the same bodies on broker processes
// (tests/broker_process.hpp) that are up and say their Redis is. Header-only.
#pragma once

#include "broker_process.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace token_broker::testing {

// `count` concurrent GETs for `user`, spread over `ports` in turn.
inline std::vector<answer> concurrently(const std::vector<std::uint16_t>& ports, const std::string& user,
                                        int count,
                                        std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::vector<std::future<answer>> running;
    for (int i = 0; i < count; ++i)
        running.push_back(std::async(std::launch::async, [&ports, i, &user, limit] {
            return get_token(ports[static_cast<std::size_t>(i) % ports.size()], user, limit);
        }));
    std::vector<answer> all;
    for (auto& f : running)
        all.push_back(f.get());
    return all;
}

// The body of /metrics, or the error's text when no answer came.
inline std::string metrics_of(std::uint16_t port) {
    try {
        return client(port).get("/metrics").body();
    } catch (const std::exception& e) {
        return e.what();
    }
}

// Three replicas (`ports`, just started, nothing asked of them yet) behave as one broker towards Zoom:
// one access token for all; ninety concurrent misses for one user across them make one Zoom call; a
// token fetched by one is served by the others as cached; an unknown user costs one call for all;
// a DELETE on one is forgotten by all (none serves the old token after its 204; the next fetch is
// again one call for all).
inline void replicas_act_as_one_broker(zoom_sim::simulator& sim, const std::vector<std::uint16_t>& ports) {
    using namespace std::chrono_literals;
    ASSERT_EQ(ports.size(), 3u);
    EXPECT_EQ(sim.oauth_calls(), 1u) << "one access token for the three";

    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 600ms, .times = -1}, "slow@example.com");
    const auto answers = concurrently(ports, "slow@example.com", 90);
    std::set<std::string> tokens;
    for (const auto& a : answers) {
        ASSERT_EQ(a.status, 200) << a.body;
        tokens.insert(a.token());
    }
    EXPECT_EQ(tokens.size(), 1u) << "every caller got the one token Zoom issued";
    EXPECT_EQ(sim.token_calls("slow@example.com"), 1u);

    // Fetched by one, served by the others from Redis as cached.
    const auto first = get_token(ports[0], "shared@example.com");
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_FALSE(first.cached());
    for (auto port : {ports[1], ports[2]}) {
        const auto other = get_token(port, "shared@example.com");
        ASSERT_EQ(other.status, 200) << other.body;
        EXPECT_TRUE(other.cached()) << other.body;
        EXPECT_EQ(other.token(), first.token());
    }
    EXPECT_EQ(sim.token_calls("shared@example.com"), 1u);

    // An unknown user costs one Zoom call for all, and is remembered by all.
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 300ms, .times = -1}, "unknown-1@example.com");
    for (const auto& a : concurrently(ports, "unknown-1@example.com", 30)) {
        EXPECT_EQ(a.status, 404) << a.body;
        EXPECT_NE(a.body.find("user_not_found"), std::string::npos) << a.body;
    }
    for (auto port : ports)
        EXPECT_EQ(get_token(port, "unknown-1@example.com").status, 404);
    EXPECT_EQ(sim.token_calls("unknown-1@example.com"), 1u);

    // DELETE on one, while all three hold the token in memory: every replica fetches fresh (nine
    // concurrent GETs, three on each), and the three of them make one call for it. (The simulator's tokens
    // carry their issue time in seconds: a second later, a new one differs.)
    std::this_thread::sleep_for(1100ms);
    ASSERT_EQ(delete_token(ports[2], "shared@example.com"), 204);
    std::set<std::string> after;
    for (const auto& a : concurrently(ports, "shared@example.com", 9)) {
        ASSERT_EQ(a.status, 200) << a.body;
        after.insert(a.token());
    }
    EXPECT_EQ(after.size(), 1u);
    EXPECT_FALSE(after.contains(first.token())) << "the forgotten token came back";
    EXPECT_EQ(sim.token_calls("shared@example.com"), 2u);
    EXPECT_EQ(sim.oauth_calls(), 1u);
}

// The Zoom budget is the account's, for all replicas (`ports`, at least two, up, sharing): each says
// the budget in force is the shared one, and a Zoom 429 seen by the first stops the others' calls
// too: they answer misses 429 without calling Zoom. (Retry-After is long enough that the block is
// still on when the others are asked, however slow the machine.)
inline void a_zoom_429_stops_every_replica(zoom_sim::simulator& sim,
                                           const std::vector<std::uint16_t>& ports) {
    ASSERT_GE(ports.size(), 2u);
    // A first Zoom call through each, so that each has used the budget (and says which one it uses).
    for (std::size_t i = 0; i < ports.size(); ++i)
        ASSERT_EQ(get_token(ports[i], "budget-warm-" + std::to_string(i) + "@example.com").status, 200);
    for (auto port : ports)
        EXPECT_NE(metrics_of(port).find("\ntoken_broker_zoom_budget_shared 1\n"), std::string::npos)
            << "port " << port << " does not go by the shared budget";

    sim.inject({.what = zoom_sim::fault::kind::rate_limited, .retry_after = "120"}, "limited@example.com");
    const auto limited = get_token(ports[0], "limited@example.com");
    ASSERT_EQ(limited.status, 429) << limited.body;
    for (std::size_t i = 1; i < ports.size(); ++i) {
        const std::string user = "blocked-" + std::to_string(i) + "@example.com";
        const auto a = get_token(ports[i], user);
        EXPECT_EQ(a.status, 429) << "port " << ports[i] << ": " << a.body;
        EXPECT_EQ(sim.token_calls(user), 0u) << "port " << ports[i] << " called Zoom during another's 429";
    }
}

// After two replicas (`ports`, just started) have fetched tokens, met an unknown user, shared the
// access token and the budget, and forgotten a user: nothing Redis holds names a user or carries a
// secret in clear. `contents`: every key and value Redis holds (redis_server::contents(), of every
// node of a cluster); `redis_password`: its password, which must not be there either.
inline void nothing_in_clear(zoom_sim::simulator& sim, const std::vector<std::uint16_t>& ports,
                             const std::function<std::vector<std::string>()>& contents,
                             const std::string& redis_password) {
    ASSERT_EQ(ports.size(), 2u);
    const std::vector<std::string> users{"alice@example.com", "bob.smith", "unknown-carol@example.com",
                                         "leaver@example.com"};
    std::vector<std::string> forbidden = users;
    for (const auto& u : users)
        for (auto port : ports) {
            const auto a = get_token(port, u);
            if (a.status == 200)
                forbidden.push_back(a.token());
        }
    ASSERT_EQ(forbidden.size(), users.size() + 6) << "three users, each answered on both replicas";
    ASSERT_EQ(delete_token(ports[1], "leaver@example.com"), 204);
    const auto issued = sim.issued_access_tokens();
    ASSERT_EQ(issued.size(), 1u);
    forbidden.insert(forbidden.end(), issued.begin(), issued.end());
    for (const auto& s : {std::string("example.com"), sim.settings().client_secret,
                          std::string("first-key-0123456789"), redis_password, std::string(64, 'e')})
        forbidden.push_back(s);

    const auto held = contents();
    ASSERT_GE(held.size(), 8u) << "two token entries with their sets, a negative entry, the access token";
    for (const auto& text : held) {
        EXPECT_EQ(text.find("unexpected type"), std::string::npos) << text;
        for (const auto& f : forbidden)
            EXPECT_EQ(text.find(f), std::string::npos) << "Redis holds \"" << f << "\" in clear";
    }
}

// Starts `n` brokers with `extra` settings (appended to `brokers` and their ports to `ports`), then
// waits until each says its Redis is up.
inline void start_sharing_brokers(const zoom_endpoint& sim, int n, const boost::json::object& extra,
                                  std::vector<std::unique_ptr<broker_process>>& brokers,
                                  std::vector<std::uint16_t>& ports) {
    for (int i = 0; i < n; ++i) {
        auto b = broker_process::start(sim, extra);
        ports.push_back(b->wait_port());
        brokers.push_back(std::move(b));
    }
    for (auto port : ports)
        ASSERT_TRUE(eventually([&] { return readyz(port) == R"({"status":"ready","redis":"up"})"; },
                               std::chrono::seconds(20)))
            << readyz(port);
}

// One fetch shared: `user`, new, fetched on the first of `ports` is served by each of the others as
// cached, the same token.
inline bool one_fetch_shared(const std::vector<std::uint16_t>& ports, const std::string& user) {
    const auto first = get_token(ports[0], user);
    if (first.status != 200 || first.cached())
        return false;
    for (std::size_t i = 1; i < ports.size(); ++i) {
        const auto other = get_token(ports[i], user);
        if (other.status != 200 || !other.cached() || other.token() != first.token())
            return false;
    }
    return true;
}

} // namespace token_broker::testing
