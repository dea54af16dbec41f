// The Zoom client against the Zoom simulator: real TLS on loopback, verification included. Each test
// has its own simulator (port 0) and its own io_context, and is bounded in time.
#include "metrics/metrics.hpp"
#include "zoom/zoom_client.hpp"
#include "zoom_simulator.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// The client's clocks, real but movable: a test moves time ahead instead of waiting for it.
struct test_clock {
    std::shared_ptr<std::atomic<std::int64_t>> steady_ahead = std::make_shared<std::atomic<std::int64_t>>(0);
    std::shared_ptr<std::atomic<std::int64_t>> wall_ahead = std::make_shared<std::atomic<std::int64_t>>(0);

    // Moves both clocks ahead by `d`.
    void advance(std::chrono::nanoseconds d) {
        *steady_ahead += d.count();
        *wall_ahead += d.count();
    }
    // Moves the wall clock alone: the broker's clock running ahead of Zoom's.
    void advance_wall(std::chrono::nanoseconds d) { *wall_ahead += d.count(); }

    zoom_clock clock() const {
        zoom_clock c;
        c.steady_now = [ahead = steady_ahead] {
            return std::chrono::steady_clock::now() + std::chrono::nanoseconds(ahead->load());
        };
        c.wall_now = [ahead = wall_ahead] {
            return std::chrono::system_clock::now() +
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(
                       std::chrono::nanoseconds(ahead->load()));
        };
        return c;
    }
};

// A simulator, a client pointed at it over TLS, an io_context to run the client on, and the
// client's logs captured at trace level.
struct harness {
    explicit harness(zoom_sim::options sim_opts = {}, const std::function<void(zoom_config&)>& tweak = {})
        : sim(std::move(sim_opts)), log_text(std::make_shared<std::ostringstream>()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log_text);
        sink->set_level(spdlog::level::trace);
        log = std::make_shared<spdlog::logger>("zoom-client-test", sink);
        log->set_level(spdlog::level::trace);
        cfg.api_base_url = sim.base_url();
        cfg.oauth_token_url = sim.oauth_url();
        cfg.account_id = sim.settings().account_id;
        cfg.client_id = sim.settings().client_id;
        cfg.client_secret = sim.settings().client_secret;
        cfg.ca_file = sim.ca_file();
        cfg.connect_timeout = 1000ms;
        cfg.request_timeout = 3000ms;
        cfg.max_connections = 4;
        cfg.max_retries = 2;
        cfg.requests_per_second = 100000;
        if (tweak)
            tweak(cfg);
        client = std::make_unique<zoom_client>(ioc.get_executor(), cfg, log, m, time.clock());
    }

    // Starts the client, runs `body` on the io_context until it completes (at most `limit`), then
    // stops the client and lets the io_context drain.
    void run(net::awaitable<void> body, std::chrono::seconds limit = 30s) {
        client->start();
        bool done = false;
        std::exception_ptr failure;
        net::co_spawn(ioc, std::move(body), [&](std::exception_ptr e) {
            done = true;
            failure = e;
            client->stop();
        });
        ioc.run_for(limit);
        EXPECT_TRUE(done) << "the test did not finish within " << limit.count() << " s";
        if (failure)
            std::rethrow_exception(failure);
        ioc.restart();
        ioc.run_for(5s); // what stop() cancelled finishes
        log->flush();
    }

    std::string logs() const { return log_text->str(); }

    zoom_sim::simulator sim;
    test_clock time;
    net::io_context ioc;
    metrics m;
    std::shared_ptr<std::ostringstream> log_text;
    std::shared_ptr<spdlog::logger> log;
    zoom_config cfg;
    std::unique_ptr<zoom_client> client;
};

token_query zak_of(std::string user) {
    token_query q;
    q.user_id = std::move(user);
    q.type = token_type::zak;
    return q;
}

net::awaitable<void> sleep_for(clock::duration d) {
    net::steady_timer t(co_await net::this_coro::executor, d);
    co_await t.async_wait(net::use_awaitable);
}

// Waits until `condition` holds, checking every 10 ms, for at most `limit`. For states that have no
// event to wait on (readiness, the simulator's counters, which live on other threads).
net::awaitable<bool> eventually(std::function<bool()> condition, clock::duration limit = 5s) {
    const auto give_up = clock::now() + limit;
    while (!condition()) {
        if (clock::now() >= give_up)
            co_return false;
        co_await sleep_for(10ms);
    }
    co_return true;
}

// Calls fetch_token for every query at once and gathers the results in the queries' order.
struct gather_state {
    explicit gather_state(net::any_io_executor ex, std::size_t n) : results(n), pending(n), done(ex) {}
    std::vector<result<secret>> results;
    std::size_t pending;
    net::steady_timer done;
};

net::awaitable<void> fetch_into(zoom_client& c, token_query q, std::shared_ptr<gather_state> s,
                                std::size_t i) {
    s->results[i] = co_await c.fetch_token(std::move(q));
    if (--s->pending == 0)
        s->done.cancel();
}

net::awaitable<std::vector<result<secret>>> fetch_concurrently(zoom_client& c, std::vector<token_query> qs) {
    auto ex = co_await net::this_coro::executor;
    auto state = std::make_shared<gather_state>(ex, qs.size());
    state->done.expires_at(clock::time_point::max());
    for (std::size_t i = 0; i < qs.size(); ++i)
        net::co_spawn(ex, fetch_into(c, std::move(qs[i]), state, i), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
    if (state->pending > 0)
        co_await state->done.async_wait(net::as_tuple(net::use_awaitable));
    co_return std::move(state->results);
}

bool is_base64url(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// header.payload.signature, each part base64url and not empty.
bool is_jwt(const std::string& token) {
    int parts = 1;
    std::size_t run = 0;
    for (char c : token) {
        if (c == '.') {
            if (run == 0)
                return false;
            ++parts;
            run = 0;
        } else if (is_base64url(c)) {
            ++run;
        } else {
            return false;
        }
    }
    return parts == 3 && run > 0;
}

// The first run of at least `n` base64url characters in `text`, or "".
std::string long_base64url_run(const std::string& text, std::size_t n) {
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        if (i < text.size() && is_base64url(text[i]))
            continue;
        if (i - start >= n)
            return text.substr(start, i - start);
        start = i + 1;
    }
    return {};
}

errc error_of(const result<secret>& r) {
    return r ? errc::internal_error : r.error().code;
}

// The value of a metric series in Prometheus text format, e.g. `name{labels}`; -1 when absent.
double metric_value(const metrics& m, const std::string& series) {
    std::istringstream in(m.serialize());
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(series + " "))
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

std::string http_date(std::chrono::system_clock::time_point t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

std::string iso_8601(std::chrono::system_clock::time_point t) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// ---------------------------------------------------------------------------------------------

net::awaitable<void> fetches_a_zak(harness& h) {
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (r) {
        EXPECT_TRUE(is_jwt(r->reveal())) << "not a JWT";
    }
    const auto targets = h.sim.received_targets();
    EXPECT_NE(std::find(targets.begin(), targets.end(), "/v2/users/jdoe%40example.com/token?type=zak"),
              targets.end());
    EXPECT_EQ(h.sim.token_calls("jdoe@example.com"), 1u);
}

TEST(ZoomClient, FetchesAZak) {
    harness h;
    h.run(fetches_a_zak(h));
    EXPECT_EQ(metric_value(h.m, R"(token_broker_oauth_refreshes_total{result="ok"})"), 1);
    EXPECT_EQ(metric_value(h.m, R"(token_broker_upstream_requests_total{code="200",endpoint="token"})"), 1);
    EXPECT_EQ(metric_value(h.m, R"(token_broker_upstream_requests_total{code="200",endpoint="oauth"})"), 1);
}

net::awaitable<void> passes_type_ttl_and_meeting_id(harness& h) {
    token_query q = zak_of("me");
    q.type = token_type::onbehalf;
    q.ttl = 600;
    q.meeting_id = "123456789";
    auto r = co_await h.client->fetch_token(q);
    EXPECT_TRUE(r);
    token_query t = zak_of("me");
    t.type = token_type::token;
    EXPECT_TRUE(co_await h.client->fetch_token(t));
    const auto targets = h.sim.received_targets();
    EXPECT_NE(std::find(targets.begin(), targets.end(),
                        "/v2/users/me/token?type=onbehalf&ttl=600&meeting_id=123456789"),
              targets.end());
    EXPECT_NE(std::find(targets.begin(), targets.end(), "/v2/users/me/token?type=token"), targets.end());
}

TEST(ZoomClient, SendsTypeAlwaysAndTtlAndMeetingIdWhenGiven) {
    harness h;
    h.run(passes_type_ttl_and_meeting_id(h));
}

net::awaitable<void> ready_after_start(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }));
    EXPECT_EQ(h.client->ready().reason, "");
    EXPECT_EQ(h.sim.oauth_calls(), 1u);
    EXPECT_EQ(h.sim.token_calls(), 0u);
}

TEST(ZoomClient, ReadyAfterStartWithoutACaller) {
    harness h;
    const auto before = h.client->ready();
    EXPECT_FALSE(before.ready);
    EXPECT_NE(before.reason, "");
    h.run(ready_after_start(h));
    EXPECT_FALSE(h.client->ready().ready); // stopped
}

net::awaitable<void> not_ready_with_bad_credentials(harness& h) {
    EXPECT_TRUE(co_await eventually(
        [&] { return h.sim.oauth_calls() >= 1 && !h.client->ready().reason.starts_with("waiting"); }));
    const auto r = h.client->ready();
    EXPECT_FALSE(r.ready);
    EXPECT_EQ(r.reason, "Zoom OAuth failed: invalid_client: Invalid client_id or client_secret");
    auto t = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(t), errc::not_ready);
    if (!t) {
        EXPECT_EQ(t.error().message, r.reason);
    }
    EXPECT_EQ(h.sim.token_calls(), 0u);
    // The next attempt comes after 1 s, not at once, and not on behalf of the caller.
    EXPECT_EQ(h.sim.oauth_calls(), 1u);
    // The simulator counts the request when it reads it; the client counts the answer when it has it.
    EXPECT_TRUE(co_await eventually(
        [&] { return metric_value(h.m, R"(token_broker_oauth_refreshes_total{result="failed"})") == 2; },
        3s));
    EXPECT_EQ(h.sim.oauth_calls(), 2u);
}

TEST(ZoomClient, NotReadyWithTheReasonOnBadCredentials) {
    harness h({}, [](zoom_config& c) { c.client_secret = "wrong-secret-value"; });
    h.run(not_ready_with_bad_credentials(h));
    EXPECT_EQ(h.logs().find("wrong-secret-value"), std::string::npos);
    EXPECT_EQ(metric_value(h.m, R"(token_broker_oauth_refreshes_total{result="failed"})"), 2);
    EXPECT_EQ(metric_value(h.m, R"(token_broker_oauth_refreshes_total{result="ok"})"), 0);
}

net::awaitable<void> ready_with_fixed_token(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }, 1s));
    // The simulator knows no such token: Zoom answers 401/124, which a fixed token cannot fix.
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::not_ready);
    if (!r) {
        EXPECT_EQ(r.error().zoom_code, 124);
        EXPECT_NE(r.error().message.find("Invalid access token."), std::string::npos) << r.error().message;
    }
    EXPECT_EQ(h.sim.oauth_calls(), 0u);
    EXPECT_EQ(h.sim.token_calls("jdoe@example.com"), 1u);
}

TEST(ZoomClient, FixedAccessTokenIsReadyAtOnceAndNeverFetchesOne) {
    harness h({}, [](zoom_config& c) {
        c.account_id.clear();
        c.access_token = "fixed-access-token-0123456789-abcdefghijklmnopqrstuvwxyz";
    });
    h.run(ready_with_fixed_token(h));
    EXPECT_EQ(h.logs().find("fixed-access-token"), std::string::npos);
}

// A fixed access token that Zoom rejects is like a failing S2S credential: not_ready (503), and not
// ready with Zoom's reason until a request made with it succeeds again.
net::awaitable<void> rejected_fixed_token(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }, 1s));
    const std::string reason =
        "Zoom rejected the configured access token (zoom.access_token): Invalid access token. (code 124)";
    for (unsigned attempt = 1; attempt <= 2; ++attempt) {
        auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
        EXPECT_EQ(error_of(r), errc::not_ready);
        if (!r) {
            EXPECT_EQ(r.error().zoom_code, 124);
            EXPECT_EQ(r.error().message, reason);
        }
        const auto ready = h.client->ready();
        EXPECT_FALSE(ready.ready);
        EXPECT_EQ(ready.reason, reason);
        EXPECT_EQ(h.sim.token_calls("jdoe@example.com"), attempt); // one call each, no retry
    }
    // Zoom takes the token again: the next request succeeds, and readiness is back.
    h.sim.accept_access_token(h.cfg.access_token);
    auto ok = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    EXPECT_TRUE(h.client->ready().ready);
    EXPECT_EQ(h.client->ready().reason, "");
    EXPECT_EQ(h.sim.oauth_calls(), 0u);
}

TEST(ZoomClient, FixedAccessTokenRejectedByZoomIsNotReadyUntilZoomAcceptsItAgain) {
    harness h({}, [](zoom_config& c) {
        c.account_id.clear();
        c.access_token = "fixed-access-token-0123456789-abcdefghijklmnopqrstuvwxyz";
    });
    h.run(rejected_fixed_token(h));
    EXPECT_EQ(h.logs().find("fixed-access-token"), std::string::npos);
}

// A ZAK whose exp has passed when it arrives is never handed out.
net::awaitable<void> expired_on_arrival(harness& h) {
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::expired_token;
    h.sim.inject(f, "skewed@example.com");
    auto r = co_await h.client->fetch_token(zak_of("skewed@example.com"));
    EXPECT_EQ(error_of(r), errc::upstream_error);
    if (!r) {
        EXPECT_NE(r.error().message.find("had already expired when it arrived"), std::string::npos)
            << r.error().message;
        EXPECT_NE(r.error().message.find("clocks of Zoom and the broker may disagree"), std::string::npos);
    }
    EXPECT_EQ(h.sim.token_calls("skewed@example.com"), 1u);                    // not retried
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("skewed@example.com"))); // the next one is good
}

TEST(ZoomClient, TokenThatArrivesExpiredIsUpstreamErrorLoggedWithTheTrackingIdAndCounted) {
    harness h;
    EXPECT_EQ(metric_value(h.m, "token_broker_expired_tokens_total"), 0);
    h.run(expired_on_arrival(h));
    const std::string logs = h.logs();
    const auto line = logs.find("had already expired");
    ASSERT_NE(line, std::string::npos) << logs;
    const auto begin = logs.rfind('\n', line) + 1;
    const std::string warning = logs.substr(begin, logs.find('\n', line) - begin);
    EXPECT_NE(warning.find("[warning]"), std::string::npos) << warning;
    EXPECT_NE(warning.find("status=200"), std::string::npos) << warning;
    EXPECT_NE(warning.find("x-zm-trackingid=v=2.0;clid=sim"), std::string::npos) << warning;
    EXPECT_EQ(metric_value(h.m, "token_broker_expired_tokens_total"), 1);
}

// The same seen from the other side: the broker's wall clock runs hours ahead of Zoom's.
net::awaitable<void> wall_clock_ahead(harness& h) {
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    h.time.advance_wall(3h); // the simulator's ZAKs live 2 h
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::upstream_error);
    if (!r) {
        EXPECT_NE(r.error().message.find("had already expired"), std::string::npos) << r.error().message;
    }
    h.time.advance_wall(-3h);
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
}

TEST(ZoomClient, BrokerClockAheadOfZoomsMakesAFreshZakExpiredOnArrival) {
    harness h;
    h.run(wall_clock_ahead(h));
    EXPECT_EQ(metric_value(h.m, "token_broker_expired_tokens_total"), 1);
}

// A Retry-After of a day blocks calls for ten minutes, and calls resume by themselves afterwards.
net::awaitable<void> far_retry_after(harness& h) {
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::rate_limited;
    f.retry_after = "86400";
    h.sim.inject(f, "jdoe@example.com");
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::rate_limited);
    if (!r) {
        EXPECT_EQ(r.error().retry_after, 600s);
    }
    const auto calls = h.sim.token_calls();
    h.time.advance(599s);
    auto still = co_await h.client->fetch_token(zak_of("other@example.com"));
    EXPECT_EQ(error_of(still), errc::rate_limited);
    if (!still) {
        EXPECT_EQ(still.error().retry_after, 1s);
    }
    EXPECT_EQ(h.sim.token_calls(), calls);
    h.time.advance(1s);
    auto again = co_await h.client->fetch_token(zak_of("other@example.com"));
    EXPECT_TRUE(again) << (again ? "" : again.error().message);
    EXPECT_EQ(h.sim.token_calls(), calls + 1);
}

TEST(ZoomClient, RetryAfterFarInTheFutureBlocksTenMinutesAtMostAndLogsWhatZoomAsked) {
    harness h;
    h.run(far_retry_after(h));
    EXPECT_NE(h.logs().find(R"(Zoom's Retry-After "86400" asks for more than 600 s)"), std::string::npos)
        << h.logs();
}

net::awaitable<void> oauth_once_for_many(harness& h) {
    std::vector<token_query> qs;
    for (int i = 0; i < 50; ++i)
        qs.push_back(zak_of("user" + std::to_string(i) + "@example.com"));
    const auto results = co_await fetch_concurrently(*h.client, qs);
    int ok = 0;
    for (const auto& r : results)
        ok += r.has_value();
    EXPECT_EQ(ok, 50);
    EXPECT_EQ(h.sim.oauth_calls(), 1u);
    EXPECT_EQ(h.sim.token_calls(), 50u);
}

TEST(ZoomClient, OneOAuthFetchFor50ConcurrentCallers) {
    harness h;
    h.run(oauth_once_for_many(h));
}

net::awaitable<void> refreshed_ahead_of_expiry(harness& h) {
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    const auto first = clock::now();
    EXPECT_EQ(h.sim.oauth_calls(), 1u);
    // expires_in 5 s: renewed at 5 - min(300, 5/5) = 4 s, before it expires; readiness never drops.
    bool always_ready = true;
    const bool renewed = co_await eventually(
        [&] {
            always_ready = always_ready && h.client->ready().ready;
            return h.sim.oauth_calls() == 2;
        },
        8s);
    const auto elapsed = clock::now() - first;
    EXPECT_TRUE(renewed);
    EXPECT_TRUE(always_ready);
    EXPECT_GE(elapsed, 3500ms);
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_TRUE(r);
    EXPECT_EQ(h.sim.oauth_calls(), 2u);
    EXPECT_EQ(h.sim.token_calls("jdoe@example.com"), 2u); // no 401 on the way
}

TEST(ZoomClient, AccessTokenRenewedAheadOfExpiry) {
    zoom_sim::options o;
    o.access_token_ttl = 5s;
    harness h(o);
    h.run(refreshed_ahead_of_expiry(h));
}

net::awaitable<void> renewed_after_revoke(harness& h) {
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    h.sim.revoke_access_tokens();
    std::vector<token_query> qs;
    for (int i = 0; i < 10; ++i)
        qs.push_back(zak_of("jdoe@example.com"));
    const auto results = co_await fetch_concurrently(*h.client, qs);
    for (const auto& r : results)
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
    // One new access token for all ten, each request retried once.
    EXPECT_EQ(h.sim.oauth_calls(), 2u);
    EXPECT_LE(h.sim.token_calls("jdoe@example.com"), 1u + 10u + 10u);
    EXPECT_GE(h.sim.token_calls("jdoe@example.com"), 1u + 10u + 1u);
}

TEST(ZoomClient, RevokedAccessTokenIsRenewedOnceAndTheRequestRetried) {
    harness h;
    h.run(renewed_after_revoke(h));
}

net::awaitable<void> server_errors_retried(harness& h) {
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::server_error;
    f.status = 503;
    f.times = 2;
    h.sim.inject(f, "flaky@example.com");
    auto r = co_await h.client->fetch_token(zak_of("flaky@example.com"));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    EXPECT_EQ(h.sim.token_calls("flaky@example.com"), 3u);

    f.status = 500;
    f.times = 3;
    h.sim.inject(f, "down@example.com");
    auto d = co_await h.client->fetch_token(zak_of("down@example.com"));
    EXPECT_EQ(error_of(d), errc::upstream_error);
    if (!d) {
        EXPECT_EQ(d.error().zoom_code, 500);
    }
    EXPECT_EQ(h.sim.token_calls("down@example.com"), 3u); // max_retries 2: three attempts in all
}

TEST(ZoomClient, ServerErrorsRetriedUpToMaxRetries) {
    harness h;
    h.run(server_errors_retried(h));
    EXPECT_NE(h.logs().find("x-zm-trackingid=v=2.0;clid=sim"), std::string::npos);
    EXPECT_NE(h.logs().find("status=503"), std::string::npos);
}

net::awaitable<void> cut_answer_retried(harness& h) {
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::cut_mid_answer;
    h.sim.inject(f, "cut@example.com");
    auto r = co_await h.client->fetch_token(zak_of("cut@example.com"));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    EXPECT_EQ(h.sim.token_calls("cut@example.com"), 2u);
}

TEST(ZoomClient, AnswerCutMidwayIsRetried) {
    harness h;
    h.run(cut_answer_retried(h));
}

net::awaitable<void> dead_pooled_connection_replaced(harness& h) {
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    EXPECT_EQ(h.sim.connections_accepted(), 1u); // OAuth and the token request on one connection
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::close_at_once;
    h.sim.inject(f, "jdoe@example.com");
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    EXPECT_EQ(h.sim.token_calls("jdoe@example.com"), 3u);
    EXPECT_EQ(h.sim.connections_accepted(), 2u);
}

TEST(ZoomClient, PooledConnectionClosedByZoomIsReplacedWithoutARetry) {
    harness h({}, [](zoom_config& c) { c.max_retries = 0; });
    h.run(dead_pooled_connection_replaced(h));
}

net::awaitable<void> fresh_connection_closed_counts_as_failure(harness& h) {
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::close_at_once;
    f.times = 5;
    h.sim.inject(f, "jdoe@example.com");
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::upstream_error);
    // The first attempt goes on the connection that carried OAuth and is replaced once; then no retry.
    EXPECT_EQ(h.sim.token_calls("jdoe@example.com"), 2u);
}

TEST(ZoomClient, ConnectionClosedWithoutAnswerFailsWhenNoRetryIsLeft) {
    harness h({}, [](zoom_config& c) { c.max_retries = 0; });
    h.run(fresh_connection_closed_counts_as_failure(h));
}

// 429: rate_limited with the Retry-After as seconds, and no call to Zoom until it passes.
net::awaitable<void> rate_limited_until(harness& h, std::string retry_after, std::chrono::seconds low,
                                        std::chrono::seconds high, bool wait_it_out) {
    EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::rate_limited;
    f.retry_after = std::move(retry_after);
    h.sim.inject(f, "jdoe@example.com");
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::rate_limited);
    std::chrono::seconds retry{0};
    if (!r) {
        EXPECT_TRUE(r.error().retry_after.has_value());
        retry = r.error().retry_after.value_or(0s);
        EXPECT_GE(retry, low);
        EXPECT_LE(retry, high);
        EXPECT_EQ(r.error().zoom_code, 429);
    }
    const auto calls = h.sim.token_calls();
    // Every call fails fast, for any user, without reaching Zoom.
    for (const char* user : {"jdoe@example.com", "other@example.com"}) {
        auto again = co_await h.client->fetch_token(zak_of(user));
        EXPECT_EQ(error_of(again), errc::rate_limited);
        if (!again) {
            EXPECT_GE(again.error().retry_after.value_or(0s), 1s);
            EXPECT_LE(again.error().retry_after.value_or(99s), retry);
        }
    }
    EXPECT_EQ(h.sim.token_calls(), calls);
    if (wait_it_out) {
        // The Retry-After passes (the client's clock is moved, not waited for): the next call goes to
        // Zoom.
        h.time.advance(retry);
        EXPECT_TRUE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
        EXPECT_EQ(h.sim.token_calls(), calls + 1);
    }
}

TEST(ZoomClient, RateLimitedWithoutRetryAfterBlocksForOneSecond) {
    harness h;
    h.run(rate_limited_until(h, "", 1s, 1s, true));
}

TEST(ZoomClient, RateLimitedWithRetryAfterSeconds) {
    harness h;
    h.run(rate_limited_until(h, "2", 2s, 2s, true));
}

TEST(ZoomClient, RateLimitedWithRetryAfterHttpDate) {
    harness h;
    // Whole seconds only: 30 s ahead is between 29 and 30 s away when it arrives.
    h.run(rate_limited_until(h, http_date(std::chrono::system_clock::now() + 30s), 29s, 30s, false));
}

TEST(ZoomClient, RateLimitedWithRetryAfterIso8601) {
    harness h;
    h.run(rate_limited_until(h, iso_8601(std::chrono::system_clock::now() + 2s), 1s, 2s, true));
}

net::awaitable<void> budget_refuses_beyond_deadline(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }));
    std::vector<token_query> qs;
    for (int i = 0; i < 3; ++i)
        qs.push_back(zak_of("user" + std::to_string(i) + "@example.com"));
    const auto results = co_await fetch_concurrently(*h.client, qs);
    int ok = 0, limited = 0;
    for (const auto& r : results) {
        ok += r.has_value();
        if (!r && r.error().code == errc::rate_limited) {
            ++limited;
            EXPECT_GE(r.error().retry_after.value_or(0s), 1s);
        }
    }
    // Burst of one: the first goes, the next turn is a second away, beyond the 300 ms deadline.
    EXPECT_EQ(ok, 1);
    EXPECT_EQ(limited, 2);
    EXPECT_EQ(h.sim.token_calls(), 1u);
}

TEST(ZoomClient, OwnBudgetRefusesCallersWhoseTurnIsBeyondTheirDeadline) {
    harness h({}, [](zoom_config& c) {
        c.requests_per_second = 1;
        c.request_timeout = 300ms;
    });
    h.run(budget_refuses_beyond_deadline(h));
    EXPECT_EQ(metric_value(h.m, "token_broker_rate_limit_rejections_total"), 2);
}

net::awaitable<void> budget_waits_in_order(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }));
    std::vector<token_query> qs;
    for (int i = 0; i < 8; ++i)
        qs.push_back(zak_of("queued" + std::to_string(i)));
    const auto started = clock::now();
    const auto results = co_await fetch_concurrently(*h.client, qs);
    for (const auto& r : results)
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
    // Five at once, then one every 200 ms: the last goes at 600 ms at the earliest.
    EXPECT_GE(clock::now() - started, 600ms);
    std::vector<std::string> users;
    for (const auto& t : h.sim.received_targets())
        if (t.starts_with("/v2/users/queued"))
            users.push_back(t.substr(10, 7));
    EXPECT_EQ(users, (std::vector<std::string>{"queued0", "queued1", "queued2", "queued3", "queued4",
                                               "queued5", "queued6", "queued7"}));
}

TEST(ZoomClient, OwnBudgetMakesCallersWaitInOrder) {
    harness h({}, [](zoom_config& c) {
        c.requests_per_second = 5;
        c.max_connections = 1;
        c.request_timeout = 5000ms;
    });
    h.run(budget_waits_in_order(h));
    EXPECT_EQ(metric_value(h.m, "token_broker_rate_limit_waits_total"), 3);
}

net::awaitable<void> times_out(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }));
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::hang;
    h.sim.inject(f, "slow@example.com");
    const auto started = clock::now();
    auto r = co_await h.client->fetch_token(zak_of("slow@example.com"));
    const auto elapsed = clock::now() - started;
    EXPECT_EQ(error_of(r), errc::upstream_timeout);
    EXPECT_GE(elapsed, 450ms);
    EXPECT_LT(elapsed, 1500ms);
    EXPECT_EQ(h.sim.token_calls("slow@example.com"), 1u);
}

TEST(ZoomClient, NoAnswerWithinRequestTimeoutIsUpstreamTimeout) {
    harness h({}, [](zoom_config& c) { c.request_timeout = 500ms; });
    h.run(times_out(h));
    EXPECT_EQ(metric_value(h.m, R"(token_broker_upstream_requests_total{code="timeout",endpoint="token"})"),
              1);
}

net::awaitable<void> stop_cancels_callers(harness& h) {
    EXPECT_TRUE(co_await eventually([&] { return h.client->ready().ready; }));
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::hang;
    h.sim.inject(f, "slow@example.com");
    auto ex = co_await net::this_coro::executor;
    net::steady_timer stopper(ex, 200ms);
    stopper.async_wait([&](boost::system::error_code) { h.client->stop(); });
    const auto started = clock::now();
    auto r = co_await h.client->fetch_token(zak_of("slow@example.com"));
    EXPECT_EQ(error_of(r), errc::not_ready);
    EXPECT_LT(clock::now() - started, 2s);
    auto after = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(after), errc::not_ready);
    EXPECT_FALSE(h.client->ready().ready);
}

TEST(ZoomClient, StopEndsCallsInProgressAndLaterOnes) {
    harness h({}, [](zoom_config& c) { c.request_timeout = 10000ms; });
    h.run(stop_cancels_callers(h));
}

net::awaitable<void> unreachable(harness& h) {
    const auto started = clock::now();
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::upstream_unavailable);
    EXPECT_LT(clock::now() - started, 2s);
    EXPECT_EQ(
        metric_value(h.m, R"(token_broker_upstream_requests_total{code="unreachable",endpoint="token"})"), 3);
}

TEST(ZoomClient, ClosedPortIsUpstreamUnavailableAfterRetries) {
    // A port held bound but not listening: connections to it are refused, and nobody else can take it.
    net::io_context holder;
    net::ip::tcp::socket bound(holder);
    bound.open(net::ip::tcp::v4());
    bound.bind({net::ip::make_address("127.0.0.1"), 0});
    const auto port = bound.local_endpoint().port();
    harness h({}, [&](zoom_config& c) {
        c.api_base_url = "https://127.0.0.1:" + std::to_string(port) + "/v2";
        c.account_id.clear();
        c.access_token = "fixed-access-token";
    });
    h.run(unreachable(h));
}

net::awaitable<void> tls_refused(harness& h) {
    auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
    EXPECT_EQ(error_of(r), errc::upstream_error);
    if (!r) {
        EXPECT_NE(r.error().message.find("TLS"), std::string::npos) << r.error().message;
    }
    EXPECT_EQ(h.sim.token_calls(), 0u);
    EXPECT_EQ(metric_value(h.m, R"(token_broker_upstream_requests_total{code="tls_error",endpoint="token"})"),
              1);
}

TEST(ZoomClient, CertificateForAnotherHostIsRefused) {
    zoom_sim::options o;
    o.identity = zoom_sim::tls_identity::wrong_host;
    harness h(o, [](zoom_config& c) {
        c.account_id.clear();
        c.access_token = "fixed-access-token";
    });
    h.run(tls_refused(h));
}

TEST(ZoomClient, CertificateFromAnUntrustedCaIsRefused) {
    zoom_sim::options o;
    o.identity = zoom_sim::tls_identity::untrusted_ca;
    harness h(o, [](zoom_config& c) {
        c.account_id.clear();
        c.access_token = "fixed-access-token";
    });
    h.run(tls_refused(h));
}

net::awaitable<void> oauth_over_bad_tls(harness& h) {
    EXPECT_TRUE(
        co_await eventually([&] { return h.client->ready().reason.find("TLS") != std::string::npos; }));
    EXPECT_FALSE(h.client->ready().ready);
    EXPECT_EQ(h.sim.oauth_calls(), 0u);
}

TEST(ZoomClient, OAuthOverAnUntrustedCertificateLeavesTheClientNotReady) {
    zoom_sim::options o;
    o.identity = zoom_sim::tls_identity::untrusted_ca;
    harness h(o);
    h.run(oauth_over_bad_tls(h));
}

net::awaitable<void> sequential_calls(harness& h, int n) {
    for (int i = 0; i < n; ++i) {
        auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com"));
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
    }
}

TEST(ZoomClient, SequentialCallsReuseOneConnection) {
    harness h;
    h.run(sequential_calls(h, 100));
    std::cout << "100 sequential calls: " << h.sim.connections_accepted() << " connection(s) accepted\n";
    EXPECT_EQ(h.sim.token_calls(), 100u);
    EXPECT_EQ(h.sim.connections_accepted(), 1u);
    EXPECT_EQ(metric_value(h.m, "token_broker_upstream_connections_total"), 1);
}

struct call_counter {
    int next = 0;
    int ok = 0;
};

net::awaitable<void> worker(harness& h, std::shared_ptr<call_counter> calls, int total) {
    while (calls->next < total) {
        const int i = calls->next++;
        auto r = co_await h.client->fetch_token(zak_of("user" + std::to_string(i % 50)));
        calls->ok += r.has_value();
    }
}

net::awaitable<void> concurrent_callers(harness& h) {
    auto calls = std::make_shared<call_counter>();
    auto ex = co_await net::this_coro::executor;
    auto done = std::make_shared<gather_state>(ex, 16);
    done->done.expires_at(clock::time_point::max());
    for (int w = 0; w < 16; ++w)
        net::co_spawn(ex, worker(h, calls, 1000), [done](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
            if (--done->pending == 0)
                done->done.cancel();
        });
    co_await done->done.async_wait(net::as_tuple(net::use_awaitable));
    EXPECT_EQ(calls->ok, 1000);
}

TEST(ZoomClient, ConcurrentCallersShareAtMostMaxConnections) {
    harness h({}, [](zoom_config& c) { c.max_connections = 4; });
    h.run(concurrent_callers(h), 60s);
    std::cout << "1000 calls by 16 concurrent callers, max_connections 4: " << h.sim.connections_accepted()
              << " connection(s) accepted\n";
    EXPECT_EQ(h.sim.token_calls(), 1000u);
    EXPECT_LE(h.sim.connections_accepted(), 4u);
    EXPECT_GE(h.sim.connections_accepted(), 1u);
}

net::awaitable<void> odd_user_ids(harness& h) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"a/b", "a%2Fb"},           {"..", "%2E%2E"},       {".", "%2E"},
        {"../admin", "..%2Fadmin"}, {"?x=1", "%3Fx%3D1"},   {"100%", "100%25"},
        {"#frag", "%23frag"},       {"sp ace", "sp%20ace"}, {"a.b@example.com", "a.b%40example.com"},
    };
    for (const auto& [id, encoded] : cases) {
        auto r = co_await h.client->fetch_token(zak_of(id));
        EXPECT_TRUE(r) << id << ": " << (r ? "" : r.error().message);
        const auto targets = h.sim.received_targets();
        EXPECT_EQ(targets.empty() ? "" : targets.back(), "/v2/users/" + encoded + "/token?type=zak") << id;
        EXPECT_EQ(h.sim.token_calls(id), 1u) << id; // the simulator decoded the one segment back to the id
    }
    auto empty = co_await h.client->fetch_token(zak_of(""));
    EXPECT_EQ(error_of(empty), errc::invalid_request);
}

TEST(ZoomClient, UserIdIsOnePercentEncodedPathSegment) {
    harness h;
    h.run(odd_user_ids(h));
}

net::awaitable<void> zoom_answers(harness& h) {
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::not_json;
    h.sim.inject(f, "html@example.com");
    auto html = co_await h.client->fetch_token(zak_of("html@example.com"));
    EXPECT_EQ(error_of(html), errc::upstream_error);
    EXPECT_EQ(h.sim.token_calls("html@example.com"), 1u); // not retried

    token_query google = zak_of("g@example.com");
    google.type = token_type::token;
    auto none = co_await h.client->fetch_token(google);
    EXPECT_EQ(error_of(none), errc::token_unavailable);

    auto unknown = co_await h.client->fetch_token(zak_of("unknown-user@example.com"));
    EXPECT_EQ(error_of(unknown), errc::user_not_found);
    if (!unknown) {
        EXPECT_EQ(unknown.error().zoom_code, 1001);
        EXPECT_NE(unknown.error().message.find("User does not exist"), std::string::npos);
    }

    token_query bad_ttl = zak_of("jdoe@example.com");
    bad_ttl.ttl = 0;
    auto rejected = co_await h.client->fetch_token(bad_ttl);
    EXPECT_EQ(error_of(rejected), errc::upstream_rejected);
    if (!rejected) {
        EXPECT_EQ(rejected.error().zoom_code, 300);
    }
}

TEST(ZoomClient, ZoomAnswersMapToBrokerErrors) {
    harness h;
    zoom_sim::user_options google_login;
    google_login.google_login = true;
    h.sim.add_user("g@example.com", google_login);
    h.run(zoom_answers(h));
    EXPECT_NE(h.logs().find("status=404 zoom_code=1001"), std::string::npos);
}

// Many flows at trace level; afterwards neither the client secret, nor an access token, nor a user
// token, nor the Basic credentials appear in the logs.
std::vector<std::string> fetched_tokens;

net::awaitable<void> many_flows(harness& h) {
    for (const char* user : {"jdoe@example.com", "me", "other@example.com"}) {
        auto r = co_await h.client->fetch_token(zak_of(user));
        EXPECT_TRUE(r);
        if (r)
            fetched_tokens.push_back(r->reveal());
    }
    h.sim.revoke_access_tokens();
    if (auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com")))
        fetched_tokens.push_back(r->reveal());
    zoom_sim::fault f;
    f.what = zoom_sim::fault::kind::server_error;
    h.sim.inject(f, "jdoe@example.com");
    if (auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com")))
        fetched_tokens.push_back(r->reveal());
    f.what = zoom_sim::fault::kind::not_json;
    h.sim.inject(f, "jdoe@example.com");
    EXPECT_FALSE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    f.what = zoom_sim::fault::kind::cut_mid_answer;
    h.sim.inject(f, "jdoe@example.com");
    if (auto r = co_await h.client->fetch_token(zak_of("jdoe@example.com")))
        fetched_tokens.push_back(r->reveal());
    EXPECT_FALSE(co_await h.client->fetch_token(zak_of("unknown-x")));
    f.what = zoom_sim::fault::kind::rate_limited;
    h.sim.inject(f, "jdoe@example.com");
    EXPECT_FALSE(co_await h.client->fetch_token(zak_of("jdoe@example.com")));
    EXPECT_GE(fetched_tokens.size(), 5u);
}

TEST(ZoomClient, NoSecretEverReachesTheLogs) {
    harness h;
    fetched_tokens.clear();
    h.run(many_flows(h));
    const std::string logs = h.logs();
    EXPECT_NE(logs.find("Zoom access token obtained"), std::string::npos); // the capture works
    EXPECT_NE(logs.find("status=500"), std::string::npos);
    EXPECT_NE(logs.find("-> 200"), std::string::npos); // debug lines are captured too
    EXPECT_EQ(logs.find(h.cfg.client_secret), std::string::npos);
    EXPECT_EQ(logs.find("Bearer"), std::string::npos);
    EXPECT_EQ(logs.find("Basic"), std::string::npos);
    for (const auto& t : fetched_tokens) {
        EXPECT_EQ(logs.find(t), std::string::npos);
        EXPECT_EQ(logs.find(t.substr(t.find('.') + 1, 20)), std::string::npos); // not even a piece of one
    }
    // Access tokens (43 base64url characters) and JWT parts are long base64url runs.
    EXPECT_EQ(long_base64url_run(logs, 32), "");
}

} // namespace
} // namespace token_broker
