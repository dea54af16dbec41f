// The token service's cache semantics (CONTRACT.md section 4) against a fake Zoom, with a fake clock:
// no sockets, no sleeping.
#include "cache/token_service.hpp"
#include "core/base64.hpp"
#include "server_harness.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <map>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

// Completion for test coroutines: an escaped exception fails the test through io_context::run.
const auto rethrow = [](std::exception_ptr e) {
    if (e)
        std::rethrow_exception(e);
};

// A JWT-shaped token whose payload carries `exp`; base64url by OpenSSL.
std::string make_jwt(std::int64_t exp, std::string_view salt) {
    const auto b64url = base64url_encode;
    return b64url(R"({"alg":"HS256","typ":"JWT"})") + "." +
           b64url(R"({"uid":")" + std::string(salt) + R"(","exp":)" + std::to_string(exp) + "}") + ".c2ln";
}

// A Zoom stand-in: answers after `gate` opens (when held), counting calls per user.
class fake_zoom final : public token_source {
public:
    explicit fake_zoom(std::function<time_point()> now) : now_(std::move(now)) {}

    std::map<std::string, int> calls;
    std::optional<broker_error> fail_with; // every fetch fails with this when set
    bool hold = false;                     // fetches wait until release()
    std::int64_t lifetime_s = 7200;
    int issued = 0;

    net::awaitable<result<secret>> fetch_token(token_query q) override {
        ++calls[q.user_id];
        if (hold) {
            net::steady_timer gate(co_await net::this_coro::executor,
                                   std::chrono::steady_clock::time_point::max());
            gates_.push_back(&gate);
            co_await gate.async_wait(net::as_tuple(net::use_awaitable));
        }
        if (fail_with)
            co_return *fail_with;
        if (q.user_id.starts_with("unknown")) {
            auto e = make_error(errc::user_not_found, "User does not exist");
            e.zoom_code = 1001;
            co_return e;
        }
        const auto exp = sys_clock::to_time_t(now_()) + lifetime_s;
        co_return secret(make_jwt(exp, q.user_id + "#" + std::to_string(++issued)));
    }
    readiness ready() const override { return {true, {}}; }

    void release() {
        hold = false;
        for (auto* g : gates_)
            g->cancel();
        gates_.clear();
    }

private:
    std::function<time_point()> now_;
    std::vector<net::steady_timer*> gates_;
};

struct TokenServiceTest : ::testing::Test {
    time_point now = sys_clock::from_time_t(1'800'000'000);
    net::io_context ioc;
    testing::captured_log log;
    metrics m;
    fake_zoom zoom{[this] { return now; }};
    cache_config cfg;
    std::unique_ptr<token_service> svc;

    void SetUp() override { make_service(); }
    void make_service() {
        svc = std::make_unique<token_service>(ioc.get_executor(), zoom, cfg, m, log.logger,
                                              [this] { return now; });
    }

    struct answer {
        result<answer_source> r = make_error(errc::internal_error, "not answered");
        std::string body;
        boost::json::value json() const { return boost::json::parse(body); }
    };

    // Starts an answer on the io_context; its result lands in the returned object.
    std::shared_ptr<answer> start(token_query q) {
        auto a = std::make_shared<answer>();
        net::co_spawn(ioc, run_one(svc.get(), std::move(q), a), rethrow);
        return a;
    }
    static net::awaitable<void> run_one(token_service* s, token_query q, std::shared_ptr<answer> a) {
        a->r = co_await s->answer(q, a->body);
    }
    // True when look_up answers `q` from the cache at once, the answer in `body`.
    bool hit(const token_query& q, std::string& body) {
        token_service::ticket t;
        return svc->look_up(q, body, t) == token_service::lookup::hit;
    }
    answer get(token_query q) {
        answer a;
        if (hit(q, a.body)) {
            a.r = answer_source::cached;
            return a;
        }
        auto p = start(std::move(q));
        ioc.run();
        ioc.restart();
        return *p;
    }
    static token_query zak(std::string user, std::optional<std::uint32_t> ttl = std::nullopt) {
        return token_query{std::move(user), token_type::zak, ttl, std::nullopt};
    }
};

TEST_F(TokenServiceTest, FirstAnswerIsFreshThenCachedWithoutAnotherCall) {
    auto first = get(zak("jdoe@example.com"));
    ASSERT_TRUE(first.r.has_value());
    auto j1 = first.json();
    EXPECT_EQ(j1.at("cached").as_bool(), false);
    EXPECT_EQ(j1.at("type").as_string(), "zak");
    EXPECT_EQ(j1.at("user_id").as_string(), "jdoe@example.com");
    EXPECT_EQ(j1.at("expires_in").as_int64(), 7200);
    EXPECT_EQ(j1.at("expires_at").as_string(), format_rfc3339(now + 7200s));
    EXPECT_FALSE(j1.as_object().contains("stale"));

    now += 100s;
    auto second = get(zak("jdoe@example.com"));
    auto j2 = second.json();
    EXPECT_EQ(j2.at("cached").as_bool(), true);
    EXPECT_EQ(j2.at("token"), j1.at("token"));
    EXPECT_EQ(j2.at("expires_in").as_int64(), 7100);
    EXPECT_EQ(zoom.calls["jdoe@example.com"], 1);
}

TEST_F(TokenServiceTest, TypeAndTtlAreDistinctEntries) {
    get(zak("a"));
    get(zak("a", 3600));
    get(token_query{"a", token_type::token, std::nullopt, std::nullopt});
    get(zak("a", 3600));
    get(zak("a"));
    EXPECT_EQ(zoom.calls["a"], 3);
    EXPECT_EQ(svc->size(), 3u);
}

TEST_F(TokenServiceTest, ConcurrentMissesShareOneFetch) {
    zoom.hold = true;
    std::vector<std::shared_ptr<answer>> answers;
    for (int i = 0; i < 200; ++i)
        answers.push_back(start(zak("slow")));
    ioc.poll();
    EXPECT_EQ(zoom.calls["slow"], 1);
    zoom.release();
    ioc.run();
    ioc.restart();
    const auto token = answers.front()->json().at("token");
    for (auto& a : answers) {
        ASSERT_TRUE(a->r.has_value());
        EXPECT_EQ(a->json().at("token"), token);
    }
    EXPECT_EQ(zoom.calls["slow"], 1);
    EXPECT_NE(m.serialize().find("token_broker_coalesced_requests_total 199"), std::string::npos);
}

TEST_F(TokenServiceTest, AFailingFetchReachesEveryWaiterAsTheSameError) {
    zoom.hold = true;
    zoom.fail_with = make_error(errc::upstream_timeout, "Zoom did not answer in time");
    std::vector<std::shared_ptr<answer>> answers;
    for (int i = 0; i < 20; ++i)
        answers.push_back(start(zak("x")));
    ioc.poll();
    zoom.release();
    ioc.run();
    ioc.restart();
    for (auto& a : answers) {
        ASSERT_TRUE(a->r.has_error());
        EXPECT_EQ(a->r.error().code, errc::upstream_timeout);
        EXPECT_EQ(a->r.error().message, "Zoom did not answer in time");
    }
    EXPECT_EQ(zoom.calls["x"], 1);
    EXPECT_EQ(svc->size(), 0u);
}

TEST_F(TokenServiceTest, OnBehalfIsNeverCachedNorShared) {
    token_query q{"obf", token_type::onbehalf, std::nullopt, std::string("123456789")};
    auto a = get(q);
    auto b = get(q);
    ASSERT_TRUE(a.r.has_value());
    ASSERT_TRUE(b.r.has_value());
    EXPECT_NE(a.json().at("token"), b.json().at("token"));
    EXPECT_FALSE(a.json().at("cached").as_bool());
    EXPECT_EQ(zoom.calls["obf"], 2);
    EXPECT_EQ(svc->size(), 0u);

    zoom.hold = true;
    auto c = start(q), d = start(q);
    ioc.poll();
    EXPECT_EQ(zoom.calls["obf"], 4); // concurrent ones are not coalesced either
    zoom.release();
    ioc.run();
    ioc.restart();
}

TEST_F(TokenServiceTest, UnknownUsersAreRememberedForTheNegativeTtl) {
    auto a = get(zak("unknown-1"));
    ASSERT_TRUE(a.r.has_error());
    EXPECT_EQ(a.r.error().code, errc::user_not_found);
    now += 29s;
    auto b = get(zak("unknown-1", 600));
    ASSERT_TRUE(b.r.has_error());
    EXPECT_EQ(b.r.error().code, errc::user_not_found);
    EXPECT_EQ(b.r.error().zoom_code, 1001);
    EXPECT_EQ(zoom.calls["unknown-1"], 1);
    now += 2s;
    get(zak("unknown-1"));
    EXPECT_EQ(zoom.calls["unknown-1"], 2);
}

TEST_F(TokenServiceTest, ForgetMakesTheNextAnswerFresh) {
    get(zak("d"));
    get(zak("d", 600));
    get(zak("other"));
    EXPECT_EQ(svc->forget("d"), 2u);
    auto again = get(zak("d"));
    EXPECT_FALSE(again.json().at("cached").as_bool());
    EXPECT_EQ(zoom.calls["d"], 3);
    EXPECT_TRUE(get(zak("other")).json().at("cached").as_bool());
}

TEST_F(TokenServiceTest, ForgetDuringAFetchStillAnswersButDoesNotCache) {
    zoom.hold = true;
    auto a = start(zak("gone"));
    auto b = start(zak("gone"));
    ioc.poll();
    svc->forget("gone");
    zoom.release();
    ioc.run();
    ioc.restart();
    EXPECT_TRUE(a->r.has_value());
    EXPECT_TRUE(b->r.has_value());
    EXPECT_EQ(svc->size(), 0u);
    get(zak("gone"));
    EXPECT_EQ(zoom.calls["gone"], 2);
}

TEST_F(TokenServiceTest, LeastRecentlyUsedGoFirstPastMaxEntries) {
    cfg.max_entries = 3;
    make_service();
    get(zak("u1"));
    get(zak("u2"));
    get(zak("u3"));
    get(zak("u1")); // u2 is now the least recently used
    get(zak("u4"));
    EXPECT_EQ(svc->size(), 3u);
    get(zak("u1"));
    get(zak("u3"));
    get(zak("u2"));
    EXPECT_EQ(zoom.calls["u1"], 1);
    EXPECT_EQ(zoom.calls["u3"], 1);
    EXPECT_EQ(zoom.calls["u2"], 2);
}

TEST_F(TokenServiceTest, AHitInTheFinalWindowRefreshesInTheBackground) {
    get(zak("busy")); // 7200 s lifetime, margin 300 s: served until +6900 s, refreshed from +6600 s
    now += 6599s;
    token_query q = zak("busy");
    std::string body;
    EXPECT_TRUE(hit(q, body));
    ioc.run();
    ioc.restart();
    EXPECT_EQ(zoom.calls["busy"], 1);

    now += 2s;
    EXPECT_TRUE(hit(q, body)); // still served at once...
    EXPECT_TRUE(hit(q, body)); // ...and one refresh only
    auto old_token = boost::json::parse(body).at("token");
    ioc.run();
    ioc.restart();
    EXPECT_EQ(zoom.calls["busy"], 2);
    EXPECT_TRUE(hit(q, body));
    auto j = boost::json::parse(body);
    EXPECT_NE(j.at("token"), old_token);
    EXPECT_EQ(j.at("expires_in").as_int64(), 7200);
}

TEST_F(TokenServiceTest, PastTheServingWindowItIsAMiss) {
    get(zak("m"));
    now += 6900s; // exactly expires_at - margin: no longer served
    std::string body;
    EXPECT_FALSE(hit(zak("m"), body));
}

TEST_F(TokenServiceTest, StaleIfErrorServesAnOldTokenWithEnoughValidity) {
    auto fresh = get(zak("s"));
    now += 7100s; // 100 s of real validity left, past the serving window
    zoom.fail_with = make_error(errc::upstream_error, "Zoom answered 503");
    auto stale = get(zak("s"));
    ASSERT_TRUE(stale.r.has_value());
    EXPECT_EQ(*stale.r, answer_source::stale);
    auto j = stale.json();
    EXPECT_EQ(j.at("stale").as_bool(), true);
    EXPECT_EQ(j.at("cached").as_bool(), true);
    EXPECT_EQ(j.at("token"), fresh.json().at("token"));
    EXPECT_EQ(j.at("expires_in").as_int64(), 100);

    now += 71s; // 29 s left: too little
    auto none = get(zak("s"));
    ASSERT_TRUE(none.r.has_error());
    EXPECT_EQ(none.r.error().code, errc::upstream_error);
}

TEST_F(TokenServiceTest, NotFoundIsNeverAnsweredStale) {
    get(zak("s2"));
    now += 7100s;
    zoom.fail_with = make_error(errc::user_not_found, "User does not exist");
    auto r = get(zak("s2"));
    ASSERT_TRUE(r.r.has_error());
    EXPECT_EQ(r.r.error().code, errc::user_not_found);
}

TEST_F(TokenServiceTest, NonJwtTokensExpireByTheTtlAsked) {
    struct plain_zoom final : token_source {
        net::awaitable<result<secret>> fetch_token(token_query) override { co_return secret("not-a-jwt"); }
        readiness ready() const override { return {true, {}}; }
    } plain;
    token_service s(ioc.get_executor(), plain, cfg, m, log.logger, [this] { return now; });
    auto a = std::make_shared<answer>();
    net::co_spawn(ioc, run_one(&s, zak("p", 600), a), rethrow);
    ioc.run();
    ioc.restart();
    ASSERT_TRUE(a->r.has_value());
    EXPECT_EQ(a->json().at("expires_in").as_int64(), 600);
    EXPECT_EQ(a->json().at("token").as_string(), "not-a-jwt");
}

TEST_F(TokenServiceTest, UserIdsAreEscapedInTheAnswer) {
    auto a = get(zak(R"(we"ird)"));
    ASSERT_TRUE(a.r.has_value());
    EXPECT_EQ(a.json().at("user_id").as_string(), R"(we"ird)");
}

} // namespace
} // namespace token_broker
