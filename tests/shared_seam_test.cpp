// The token service's seam to a shared tier (cache/shared_tokens.hpp), against a fake tier and a fake
// Zoom with a fake clock: what reaches the tier (a local leader's miss, nothing else), and what the
// service does with each of its answers. No sockets, no Redis.
#include "cache/token_service.hpp"
#include "core/base64.hpp"
#include "server_harness.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

const auto rethrow = [](std::exception_ptr e) {
    if (e)
        std::rethrow_exception(e);
};

std::string make_jwt(std::int64_t exp, std::string_view salt) {
    const auto b64url = base64url_encode;
    return b64url(R"({"alg":"HS256","typ":"JWT"})") + "." +
           b64url(R"({"uid":")" + std::string(salt) + R"(","exp":)" + std::to_string(exp) + "}") + ".c2ln";
}

class fake_zoom final : public token_source {
public:
    explicit fake_zoom(std::function<time_point()> now) : now_(std::move(now)) {}
    int calls = 0;
    std::optional<broker_error> fail_with;
    net::awaitable<result<secret>> fetch_token(token_query q) override {
        ++calls;
        if (fail_with)
            co_return *fail_with;
        co_return secret(
            make_jwt(sys_clock::to_time_t(now_()) + 7200, q.user_id + "#" + std::to_string(calls)));
    }
    readiness ready() const override { return {true, {}}; }

private:
    std::function<time_point()> now_;
};

// A shared tier that answers what the test says and records what it was asked.
class fake_shared final : public shared_tokens {
public:
    claim answer;                                     // what acquire() answers
    bool hold = false;                                // acquire() waits until release()
    std::vector<std::pair<cache_key, bool>> acquired; // key, for_refresh
    struct stored_entry {
        cache_key key;
        std::optional<lease> held;
        std::optional<shared_entry> entry; // nullopt: stored nothing
    };
    std::vector<stored_entry> stored;
    std::vector<std::string> forgotten;
    std::vector<std::pair<std::string, std::chrono::milliseconds>> revoked;
    std::vector<std::string> reinstated;
    std::optional<broker_error> forget_fails_with;
    listener told;

    net::awaitable<claim> acquire(const cache_key& key, bool for_refresh) override {
        acquired.emplace_back(key, for_refresh);
        if (hold) {
            net::steady_timer gate(co_await net::this_coro::executor,
                                   std::chrono::steady_clock::time_point::max());
            gate_ = &gate;
            co_await gate.async_wait(net::as_tuple(net::use_awaitable));
            gate_ = nullptr;
        }
        co_return answer;
    }
    net::awaitable<void> store(const cache_key& key, std::optional<lease> held,
                               const shared_entry* e) override {
        stored.push_back({key, std::move(held), e ? std::optional<shared_entry>(*e) : std::nullopt});
        co_return;
    }
    net::awaitable<result<void>> forget(std::string user_id) override {
        forgotten.push_back(std::move(user_id));
        if (forget_fails_with)
            co_return *forget_fails_with;
        co_return result<void>();
    }
    net::awaitable<result<void>> revoke(std::string user_id, std::chrono::milliseconds revoked_for) override {
        revoked.emplace_back(std::move(user_id), revoked_for);
        if (forget_fails_with)
            co_return *forget_fails_with;
        co_return result<void>();
    }
    net::awaitable<result<void>> reinstate(std::string user_id) override {
        reinstated.push_back(std::move(user_id));
        if (forget_fails_with)
            co_return *forget_fails_with;
        co_return result<void>();
    }
    void listen(listener l) override { told = std::move(l); }
    bool up() const noexcept override { return true; }

    void release() {
        hold = false;
        if (gate_)
            gate_->cancel();
    }

private:
    net::steady_timer* gate_ = nullptr;
};

struct SharedSeam : ::testing::Test {
    time_point now = sys_clock::from_time_t(1'800'000'000);
    net::io_context ioc;
    testing::captured_log log;
    metrics m;
    fake_zoom zoom{[this] { return now; }};
    fake_shared shared;
    cache_config cfg;
    std::unique_ptr<token_service> svc = std::make_unique<token_service>(
        ioc.get_executor(), zoom, cfg, m, log.logger, [this] { return now; }, &shared);

    struct answer {
        result<answer_source> r = make_error(errc::internal_error, "not answered");
        std::string body;
        boost::json::value json() const { return boost::json::parse(body); }
    };
    static net::awaitable<void> run_one(token_service* s, token_query q, std::shared_ptr<answer> a) {
        a->r = co_await s->answer(q, a->body);
    }
    std::shared_ptr<answer> start(token_query q) {
        auto a = std::make_shared<answer>();
        net::co_spawn(ioc, run_one(svc.get(), std::move(q), a), rethrow);
        return a;
    }
    answer get(token_query q) {
        auto a = start(std::move(q));
        ioc.run();
        ioc.restart();
        return *a;
    }
    token_service::lookup look(const token_query& q) {
        std::string body;
        token_service::ticket t;
        return svc->look_up(q, body, t);
    }
    static token_query zak(std::string user) {
        return {std::move(user), token_type::zak, std::nullopt, std::nullopt};
    }

    shared_entry token_from_elsewhere(std::chrono::seconds life) const {
        shared_entry e;
        e.what = shared_entry::kind::token;
        e.token = secret(make_jwt(sys_clock::to_time_t(now + life), "elsewhere"));
        e.fetched_at = now - 10s;
        e.expires_at = now + life;
        return e;
    }
};

TEST_F(SharedSeam, OnlyALocalLeadersMissReachesTheSharedTierAndAHitNever) {
    shared.hold = true;
    shared.answer.what = shared_tokens::claim::kind::fetch;
    std::vector<std::shared_ptr<answer>> answers;
    for (int i = 0; i < 10; ++i)
        answers.push_back(start(zak("u")));
    ioc.poll();
    EXPECT_EQ(shared.acquired.size(), 1u) << "local followers wait on the local flight";
    shared.release();
    ioc.run();
    ioc.restart();
    for (auto& a : answers)
        ASSERT_TRUE(a->r);
    EXPECT_EQ(zoom.calls, 1);
    EXPECT_EQ(look(zak("u")), token_service::lookup::hit);
    EXPECT_EQ(shared.acquired.size(), 1u);
    ASSERT_EQ(shared.stored.size(), 1u);
    ASSERT_TRUE(shared.stored[0].entry);
    EXPECT_EQ(shared.stored[0].entry->what, shared_entry::kind::token);
    EXPECT_FALSE(shared.acquired[0].second);
}

TEST_F(SharedSeam, AnEntryFromAnotherReplicaIsAnsweredCachedKeptLocallyAndZoomIsNotCalled) {
    shared.answer.what = shared_tokens::claim::kind::found;
    shared.answer.entry = token_from_elsewhere(3600s);
    auto a = get(zak("u"));
    ASSERT_TRUE(a.r);
    EXPECT_EQ(*a.r, answer_source::cached);
    EXPECT_TRUE(a.json().at("cached").as_bool());
    EXPECT_EQ(a.json().at("token").as_string(), shared.answer.entry.token.reveal());
    EXPECT_EQ(a.json().at("expires_in").as_int64(), 3600);
    EXPECT_EQ(zoom.calls, 0);
    EXPECT_TRUE(shared.stored.empty()) << "what came from the tier is not written back";
    EXPECT_EQ(look(zak("u")), token_service::lookup::hit);
}

TEST_F(SharedSeam, AnUnknownUserFromAnotherReplicaIsRememberedHere) {
    shared.answer.what = shared_tokens::claim::kind::found;
    shared.answer.entry.what = shared_entry::kind::unknown_user;
    auto a = get(zak("ghost"));
    ASSERT_FALSE(a.r);
    EXPECT_EQ(a.r.error().code, errc::user_not_found);
    EXPECT_EQ(a.r.error().zoom_code, 1001);
    EXPECT_EQ(zoom.calls, 0);
    EXPECT_EQ(look(zak("ghost")), token_service::lookup::unknown_user);
}

TEST_F(SharedSeam, AnErrorFromAnotherReplicaReachesTheCaller) {
    shared.answer.what = shared_tokens::claim::kind::found;
    shared.answer.entry.what = shared_entry::kind::error;
    shared.answer.entry.error = make_error(errc::upstream_timeout, "Zoom did not answer in time");
    auto a = get(zak("slow"));
    ASSERT_FALSE(a.r);
    EXPECT_EQ(a.r.error().code, errc::upstream_timeout);
    EXPECT_EQ(zoom.calls, 0);
    EXPECT_EQ(look(zak("slow")), token_service::lookup::miss);
}

TEST_F(SharedSeam, TheLeaseIsHandedBackWithTheResult) {
    shared.answer.what = shared_tokens::claim::kind::fetch;
    shared.answer.held = shared_tokens::lease{"lock-key", "lock-value", "0", nullptr};
    ASSERT_TRUE(get(zak("u")).r);
    ASSERT_EQ(shared.stored.size(), 1u);
    ASSERT_TRUE(shared.stored[0].held);
    EXPECT_EQ(shared.stored[0].held->value, "lock-value");
    EXPECT_EQ(shared.stored[0].entry->fetched_at, now);
}

TEST_F(SharedSeam, OnBehalfNeverReachesTheSharedTier) {
    token_query q{"u", token_type::onbehalf, std::nullopt, std::string("123456789")};
    ASSERT_TRUE(get(q).r);
    ASSERT_TRUE(get(q).r);
    EXPECT_EQ(zoom.calls, 2);
    EXPECT_TRUE(shared.acquired.empty());
    EXPECT_TRUE(shared.stored.empty());
}

TEST_F(SharedSeam, AFetchThatADeleteOvertookIsNotShared) {
    shared.hold = true;
    shared.answer.what = shared_tokens::claim::kind::fetch;
    shared.answer.held = shared_tokens::lease{"lock-key", "lock-value", "0", nullptr};
    auto a = start(zak("leaver"));
    ioc.poll();
    ASSERT_EQ(shared.acquired.size(), 1u);
    shared.told.user("leaver"); // another replica's DELETE, while this one fetches
    shared.release();
    ioc.run();
    ASSERT_TRUE(a->r);
    ASSERT_EQ(shared.stored.size(), 1u);
    EXPECT_FALSE(shared.stored[0].entry) << "nothing written";
    EXPECT_TRUE(shared.stored[0].held) << "but the lock is released";
    EXPECT_EQ(look(zak("leaver")), token_service::lookup::miss);
}

TEST_F(SharedSeam, ABackgroundRefreshAsksTheSharedTierForANewerToken) {
    shared.answer.what = shared_tokens::claim::kind::fetch;
    ASSERT_TRUE(get(zak("busy")).r);
    now += 6700s; // in the final window (from 6600 s)
    const auto fresh = token_from_elsewhere(7200s);
    shared.answer.what = shared_tokens::claim::kind::found;
    shared.answer.entry = fresh;
    EXPECT_EQ(look(zak("busy")), token_service::lookup::hit);
    ioc.run();
    ioc.restart();
    ASSERT_EQ(shared.acquired.size(), 2u);
    EXPECT_TRUE(shared.acquired[1].second);
    EXPECT_EQ(zoom.calls, 1) << "another replica refreshed it";
    EXPECT_EQ(get(zak("busy")).json().at("token").as_string(), fresh.token.reveal());
}

TEST_F(SharedSeam, DeleteGoesThroughTheSharedTierAndSaysWhenItCannotConfirm) {
    ASSERT_TRUE(svc->shares());
    shared.answer.what = shared_tokens::claim::kind::fetch;
    ASSERT_TRUE(get(zak("u")).r);
    shared.forget_fails_with = make_error(errc::cache_unavailable, "Redis is down");
    auto f = net::co_spawn(ioc, svc->forget_everywhere("u"), net::use_future);
    ioc.run();
    auto r = f.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::cache_unavailable);
    EXPECT_EQ(shared.forgotten, std::vector<std::string>{"u"});
    EXPECT_EQ(look(zak("u")), token_service::lookup::miss) << "forgotten here all the same";
}

TEST_F(SharedSeam, AnotherReplicasDeleteOrALostSubscriptionDropsLocalCopies) {
    shared.answer.what = shared_tokens::claim::kind::fetch;
    ASSERT_TRUE(get(zak("a")).r);
    ASSERT_TRUE(get(zak("b")).r);
    shared.told.user("a");
    EXPECT_EQ(look(zak("a")), token_service::lookup::miss);
    EXPECT_EQ(look(zak("b")), token_service::lookup::hit);
    shared.told.everyone();
    EXPECT_EQ(look(zak("b")), token_service::lookup::miss);
    EXPECT_EQ(svc->size(), 0u);
}

TEST_F(SharedSeam, AUserRevokedElsewhereGoesToZoomAndNothingIsKeptSharedOrServedStale) {
    // The tier holds the user's revoked mark (set by the replica that heard the event): this replica
    // never heard it, yet keeps nothing.
    shared.answer.what = shared_tokens::claim::kind::revoked;
    auto first = get(zak("gone@example.com"));
    ASSERT_TRUE(first.r);
    EXPECT_EQ(*first.r, answer_source::fresh);
    EXPECT_FALSE(svc->revoked("gone@example.com")) << "the mark stays in the tier, not copied here";
    EXPECT_EQ(look(zak("gone@example.com")), token_service::lookup::miss) << "not cached";
    ASSERT_EQ(shared.stored.size(), 1u);
    EXPECT_FALSE(shared.stored[0].entry) << "not shared";
    ASSERT_TRUE(get(zak("gone@example.com")).r);
    EXPECT_EQ(zoom.calls, 2) << "every request goes to Zoom";

    // Zoom failing with an older entry at hand: no stale answer while the tier says revoked.
    shared.answer.what = shared_tokens::claim::kind::fetch;
    ASSERT_TRUE(get(zak("gone@example.com")).r); // cached: the mark is gone
    now += 6900s;                                // past the margin, 300 s before expiry
    zoom.fail_with = make_error(errc::upstream_error, "Zoom is failing");
    shared.answer.what = shared_tokens::claim::kind::revoked;
    auto during = get(zak("gone@example.com"));
    ASSERT_FALSE(during.r);
    EXPECT_EQ(during.r.error().code, errc::upstream_error);
    shared.answer.what = shared_tokens::claim::kind::fetch;
    auto after = get(zak("gone@example.com"));
    ASSERT_TRUE(after.r) << "the same situation without the mark is answered stale";
    EXPECT_EQ(*after.r, answer_source::stale);
}

TEST_F(SharedSeam, ARevocationHeardFromAnotherReplicaMarksAndForgetsHereUntilReinstated) {
    shared.answer.what = shared_tokens::claim::kind::fetch;
    ASSERT_TRUE(get(zak("JDoe@Example.com")).r);
    ASSERT_EQ(look(zak("JDoe@Example.com")), token_service::lookup::hit);
    shared.told.revoked("jdoe@example.com", 3600s);
    EXPECT_TRUE(svc->revoked("JDOE@example.com"));
    EXPECT_EQ(look(zak("JDoe@Example.com")), token_service::lookup::miss) << "forgotten";
    const auto acquired = shared.acquired.size();
    ASSERT_TRUE(get(zak("JDoe@Example.com")).r);
    EXPECT_EQ(shared.acquired.size(), acquired) << "a user marked here goes straight to Zoom";
    EXPECT_EQ(look(zak("JDoe@Example.com")), token_service::lookup::miss) << "and is not cached";
    now += 3601s;
    EXPECT_FALSE(svc->revoked("jdoe@example.com")) << "the mark lapses";
    shared.told.revoked("jdoe@example.com", 3600s);
    shared.told.reinstated("JDOE@EXAMPLE.COM");
    EXPECT_FALSE(svc->revoked("jdoe@example.com"));
}

TEST_F(SharedSeam, RevokeAndReinstateEverywhereMarkHereFirstThenGoThroughTheTier) {
    shared.answer.what = shared_tokens::claim::kind::fetch;
    ASSERT_TRUE(get(zak("u1")).r);
    shared.forget_fails_with = make_error(errc::cache_unavailable, "Redis is down");
    auto f = net::co_spawn(ioc, svc->revoke_everywhere("u1", 3600s), net::use_future);
    ioc.run();
    ioc.restart();
    auto r = f.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::cache_unavailable);
    ASSERT_EQ(shared.revoked.size(), 1u);
    EXPECT_EQ(shared.revoked[0].first, "u1");
    EXPECT_EQ(shared.revoked[0].second, 3600s);
    EXPECT_TRUE(svc->revoked("u1")) << "marked here all the same";
    EXPECT_EQ(look(zak("u1")), token_service::lookup::miss) << "and forgotten";
    shared.forget_fails_with.reset();
    auto g = net::co_spawn(ioc, svc->reinstate_everywhere("u1"), net::use_future);
    ioc.run();
    ASSERT_TRUE(g.get());
    EXPECT_EQ(shared.reinstated, std::vector<std::string>{"u1"});
    EXPECT_FALSE(svc->revoked("u1"));
}

TEST_F(SharedSeam, TheServiceStopsListeningWhenItGoes) {
    ASSERT_TRUE(shared.told.user);
    svc.reset();
    EXPECT_FALSE(shared.told.user);
    EXPECT_FALSE(shared.told.everyone);
}

} // namespace
} // namespace token_broker
