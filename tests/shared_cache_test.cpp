// Replicas sharing one cache through Redis (CONTRACT.md section 7): several token services in one
// process, each with its own Zoom client and its own Redis connections, against one real
// redis-server (tests/redis_server.hpp) and one Zoom simulator over real TLS.
#include "cache/shared_redis.hpp"
#include "cache/token_service.hpp"
#include "redis/connection.hpp"
#include "redis/subscriber.hpp"
#include "redis_server.hpp"
#include "test_support.hpp"
#include "zoom/zoom_client.hpp"
#include "zoom_simulator.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <future>
#include <set>
#include <sstream>
#include <thread>

namespace token_broker {
namespace {

using namespace std::chrono_literals;

using testing::eventually;

std::string hex_key(char fill) {
    return std::string(32, fill);
}

// One answer of a token service.
struct answer {
    result<answer_source> r = make_error(errc::internal_error, "not answered");
    std::string body;

    boost::json::value json() const { return boost::json::parse(body); }
    std::string token() const { return std::string(json().at("token").as_string()); }
    bool cached() const { return json().at("cached").as_bool(); }
};

// A broker replica: its Zoom client, its shared tier and its token service.
struct replica {
    metrics m;
    std::unique_ptr<zoom_client> zoom;
    std::shared_ptr<redis::connection> commands;
    std::unique_ptr<shared_redis> shared;
    std::shared_ptr<redis::subscriber> subscription;
    std::unique_ptr<token_service> tokens;

    // True when /metrics has the line `metric_line` (e.g. "token_broker_replica_waits_total 1").
    bool counts(std::string_view metric_line) const {
        return ("\n" + m.serialize()).find("\n" + std::string(metric_line) + "\n") != std::string::npos;
    }
};

struct SharedCache : ::testing::Test {
    test::redis_server redis;
    zoom_sim::simulator sim;
    net::io_context ioc;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work{ioc.get_executor()};
    std::vector<std::thread> threads;
    std::shared_ptr<std::ostringstream> log_text = std::make_shared<std::ostringstream>();
    std::shared_ptr<spdlog::logger> log;
    zoom_config zoom_cfg;
    cache_config cache_cfg;
    std::vector<std::unique_ptr<replica>> replicas;

    SharedCache() {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log_text);
        log = std::make_shared<spdlog::logger>("shared-cache-test", sink);
        log->set_level(spdlog::level::debug);
        zoom_cfg.api_base_url = sim.base_url();
        zoom_cfg.oauth_token_url = sim.oauth_url();
        zoom_cfg.account_id = sim.settings().account_id;
        zoom_cfg.client_id = sim.settings().client_id;
        zoom_cfg.client_secret = sim.settings().client_secret;
        zoom_cfg.ca_file = sim.ca_file();
        zoom_cfg.request_timeout = 3000ms;
        zoom_cfg.requests_per_second = 100000;
    }

    ~SharedCache() override {
        for (auto& r : replicas) {
            r->zoom->stop();
            r->shared->stop();
            r->subscription->stop();
            r->commands->stop();
        }
        work.reset();
        for (auto& t : threads)
            t.join();
        for (auto& r : replicas)
            r->tokens.reset();
    }

    redis::options redis_options(std::chrono::milliseconds command_timeout = 2000ms) const {
        auto o = redis.client_options();
        o.connect_timeout = 2000ms;
        o.command_timeout = command_timeout;
        return o;
    }

    shared_redis::settings shared_settings(char key = 'k', char previous = 0) const {
        shared_redis::settings s;
        s.key_prefix = "test-broker:";
        s.encryption_key = secret(hex_key(key));
        if (previous)
            s.previous_encryption_key = secret(hex_key(previous));
        s.request_timeout = zoom_cfg.request_timeout;
        s.cache = cache_cfg;
        return s;
    }

    // A started replica; call start_threads() once all are made.
    replica& add_replica(shared_redis::settings s, redis::options o) {
        auto r = std::make_unique<replica>();
        r->m.enable_redis();
        r->zoom = std::make_unique<zoom_client>(ioc.get_executor(), zoom_cfg, log, r->m);
        r->commands = redis::connection::create(ioc.get_executor(), o, log, &r->m);
        r->shared = std::make_unique<shared_redis>(ioc.get_executor(), r->commands, std::move(s), r->m, log);
        shared_redis* tier = r->shared.get();
        r->subscription = redis::subscriber::create(
            ioc.get_executor(), std::move(o), log, tier->channels(),
            [tier](std::string_view channel, std::string_view message) {
                tier->on_message(channel, message);
            },
            [tier] { tier->on_subscribed(); }, tier->health_check_interval(),
            [tier](std::chrono::steady_clock::time_point sent) { tier->on_alive(sent); });
        r->tokens = std::make_unique<token_service>(
            ioc.get_executor(), *r->zoom, cache_cfg, r->m, log,
            [] { return std::chrono::system_clock::now(); }, r->shared.get());
        r->zoom->start();
        r->commands->start();
        r->subscription->start();
        r->shared->start();
        replicas.push_back(std::move(r));
        return *replicas.back();
    }
    replica& add_replica() { return add_replica(shared_settings(), redis_options()); }

    // Runs the io_context on two threads and waits until every replica has a Zoom access token and
    // a Redis connection.
    void start_threads() {
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { ioc.run(); });
        for (auto& r : replicas) {
            ASSERT_TRUE(eventually([&] { return r->zoom->ready().ready; }))
                << "a Zoom client never got ready";
            ASSERT_TRUE(eventually([&] { return r->shared->up(); })) << "a replica never reached Redis";
            ASSERT_TRUE(eventually([&] { return r->shared->local_copies_allowed(); }))
                << "a replica's subscription never proved alive";
        }
    }

    static net::awaitable<void> run_one(token_service* s, token_query q, std::shared_ptr<answer> a) {
        a->r = co_await s->answer(q, a->body);
    }

    // Starts an answer on the io_context.
    std::future<std::shared_ptr<answer>> start(replica& r, std::string user,
                                               token_type type = token_type::zak) {
        auto a = std::make_shared<answer>();
        auto done = std::make_shared<std::promise<std::shared_ptr<answer>>>();
        auto f = done->get_future();
        // A named query, not a braced temporary: gcc 12 destroys those twice as coroutine arguments.
        token_query q{std::move(user), type, std::nullopt, std::nullopt};
        net::co_spawn(ioc, run_one(r.tokens.get(), std::move(q), a), [a, done](std::exception_ptr e) {
            if (e)
                done->set_exception(e);
            else
                done->set_value(a);
        });
        return f;
    }

    std::shared_ptr<answer> get(replica& r, std::string user, token_type type = token_type::zak) {
        auto f = start(r, std::move(user), type);
        if (f.wait_for(60s) != std::future_status::ready)
            throw std::runtime_error("no answer within 60 s");
        return f.get();
    }

    // True when the replica answers `user` from its own memory, without any I/O.
    static bool local_hit(replica& r, const std::string& user) {
        std::string body;
        token_service::ticket t;
        return r.tokens->look_up(token_query{user, token_type::zak, std::nullopt, std::nullopt}, body, t) ==
               token_service::lookup::hit;
    }

    net::awaitable<result<void>> forget_on(replica& r, std::string user) {
        co_return co_await r.tokens->forget_everywhere(std::move(user));
    }
    result<void> forget(replica& r, std::string user) {
        auto f = net::co_spawn(ioc, forget_on(r, std::move(user)), net::use_future);
        if (f.wait_for(60s) != std::future_status::ready)
            throw std::runtime_error("DELETE did not finish within 60 s");
        return f.get();
    }
};

TEST_F(SharedCache, NinetyConcurrentRequestsOverThreeReplicasMakeOneZoomCall) {
    auto& a = add_replica();
    auto& b = add_replica();
    auto& c = add_replica();
    start_threads();
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 1000ms, .times = -1}, "slow@example.com");
    std::vector<std::future<std::shared_ptr<answer>>> pending;
    for (int i = 0; i < 30; ++i)
        for (auto* r : {&a, &b, &c})
            pending.push_back(start(*r, "slow@example.com"));
    std::set<std::string> tokens;
    int fresh = 0;
    for (auto& f : pending) {
        ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
        auto ans = f.get();
        ASSERT_TRUE(ans->r) << ans->r.error().message;
        tokens.insert(ans->token());
        fresh += ans->cached() ? 0 : 1;
    }
    EXPECT_EQ(sim.token_calls("slow@example.com"), 1u);
    EXPECT_EQ(tokens.size(), 1u);
    // The fetching replica's own requests are fresh; the other two answered from Redis (cached).
    EXPECT_EQ(fresh, 30);
    int shared_hits = 0, waits = 0;
    for (auto* r : {&a, &b, &c}) {
        shared_hits += r->counts("token_broker_shared_cache_hits_total 1") ? 1 : 0;
        waits += r->counts("token_broker_replica_waits_total 1") ? 1 : 0;
    }
    EXPECT_EQ(shared_hits, 2);
    EXPECT_EQ(waits, 2);
}

TEST_F(SharedCache, ATokenFetchedByOneIsServedByAnotherFromRedisWithoutAZoomCall) {
    auto& a = add_replica();
    auto& b = add_replica();
    start_threads();
    auto first = get(a, "jdoe@example.com");
    ASSERT_TRUE(first->r);
    EXPECT_FALSE(first->cached());
    auto second = get(b, "jdoe@example.com");
    ASSERT_TRUE(second->r) << second->r.error().message;
    EXPECT_TRUE(second->cached());
    EXPECT_EQ(*second->r, answer_source::cached);
    EXPECT_EQ(second->token(), first->token());
    EXPECT_EQ(second->json().at("expires_at"), first->json().at("expires_at"));
    EXPECT_EQ(sim.token_calls("jdoe@example.com"), 1u);
    // B keeps its own copy now: the next answer is a local hit, without Redis.
    EXPECT_TRUE(local_hit(b, "jdoe@example.com"));
    // onbehalf is never shared: each replica fetches its own.
    ASSERT_TRUE(get(a, "jdoe@example.com", token_type::onbehalf)->r);
    ASSERT_TRUE(get(b, "jdoe@example.com", token_type::onbehalf)->r);
    EXPECT_EQ(sim.token_calls("jdoe@example.com"), 3u);
}

TEST_F(SharedCache, AnUnknownUserCostsOneZoomCallForAll) {
    auto& a = add_replica();
    auto& b = add_replica();
    auto& c = add_replica();
    start_threads();
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 300ms, .times = -1}, "unknown-slow");
    std::vector<std::future<std::shared_ptr<answer>>> pending;
    for (int i = 0; i < 10; ++i)
        for (auto* r : {&a, &b, &c})
            pending.push_back(start(*r, "unknown-slow"));
    for (auto& f : pending) {
        ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
        auto ans = f.get();
        ASSERT_FALSE(ans->r);
        EXPECT_EQ(ans->r.error().code, errc::user_not_found);
    }
    EXPECT_EQ(sim.token_calls("unknown-slow"), 1u);
    // And later, on a replica that never asked: still no Zoom call.
    auto& d = add_replica();
    ASSERT_TRUE(eventually([&] { return d.zoom->ready().ready && d.shared->up(); }));
    auto later = get(d, "unknown-slow");
    ASSERT_FALSE(later->r);
    EXPECT_EQ(later->r.error().code, errc::user_not_found);
    EXPECT_EQ(sim.token_calls("unknown-slow"), 1u);
}

TEST_F(SharedCache, AFailedFetchReachesTheWaitingReplicasAsTheSameError) {
    zoom_cfg.request_timeout = 1000ms;
    auto& a = add_replica();
    auto& b = add_replica();
    start_threads();
    sim.inject({.what = zoom_sim::fault::kind::hang, .times = -1}, "stuck");
    auto on_a = start(a, "stuck");
    ASSERT_TRUE(eventually([&] { return sim.token_calls("stuck") == 1; }));
    auto on_b = start(b, "stuck");
    for (auto* f : {&on_a, &on_b}) {
        ASSERT_EQ(f->wait_for(60s), std::future_status::ready);
        auto ans = f->get();
        ASSERT_FALSE(ans->r);
        EXPECT_EQ(ans->r.error().code, errc::upstream_timeout);
    }
    EXPECT_EQ(sim.token_calls("stuck"), 1u);
}

TEST_F(SharedCache, DeleteOnOneReplicaMakesEveryReplicaFetchAFreshToken) {
    auto& a = add_replica();
    auto& b = add_replica();
    auto& c = add_replica();
    start_threads();
    ASSERT_TRUE(get(a, "leaver")->r);
    ASSERT_TRUE(get(b, "leaver")->cached());
    ASSERT_TRUE(get(c, "leaver")->cached());
    ASSERT_TRUE(local_hit(b, "leaver") && local_hit(c, "leaver"));
    ASSERT_EQ(sim.token_calls("leaver"), 1u);

    auto deleted = forget(a, "leaver");
    ASSERT_TRUE(deleted) << deleted.error().message;
    // The 204 comes once every replica has said it forgot: no waiting for them afterwards.
    EXPECT_FALSE(local_hit(a, "leaver"));
    EXPECT_FALSE(local_hit(b, "leaver")) << "the DELETE was answered before this replica forgot";
    EXPECT_FALSE(local_hit(c, "leaver")) << "the DELETE was answered before this replica forgot";

    auto on_b = get(b, "leaver");
    ASSERT_TRUE(on_b->r);
    EXPECT_FALSE(on_b->cached());
    // (The simulator's token can be byte-identical within one second: the Zoom call count is the proof.)
    EXPECT_EQ(sim.token_calls("leaver"), 2u);
    auto on_c = get(c, "leaver");
    EXPECT_EQ(on_c->token(), on_b->token());
    EXPECT_EQ(sim.token_calls("leaver"), 2u);
}

TEST_F(SharedCache, RedisHoldsNoUserIdTokenOrSecretInClear) {
    auto& a = add_replica();
    auto& b = add_replica();
    start_threads();
    const std::vector<std::string> users{"alice@example.com", "bob@example.com", "unknown-carol@example.com"};
    std::vector<std::string> tokens;
    for (const auto& u : users) {
        auto first = get(a, u);
        auto second = get(b, u);
        if (first->r)
            tokens.push_back(first->token());
        if (second->r)
            tokens.push_back(second->token());
    }
    ASSERT_TRUE(get(a, "ttl-user@example.com")->r);
    ASSERT_EQ(tokens.size(), 4u);
    auto contents = redis.contents();
    ASSERT_GE(contents.size(), 6u); // at least two token entries, an unknown user, the sets
    std::vector<std::string> forbidden = users;
    forbidden.push_back("ttl-user@example.com");
    forbidden.push_back("example.com");
    forbidden.insert(forbidden.end(), tokens.begin(), tokens.end());
    for (const auto& t : tokens)
        forbidden.push_back(t.substr(t.rfind('.') + 1)); // the signature alone
    for (const auto& t : sim.issued_access_tokens())
        forbidden.push_back(t);
    forbidden.push_back(sim.settings().client_secret);
    forbidden.push_back(hex_key('k'));
    for (const auto& text : contents)
        for (const auto& f : forbidden)
            EXPECT_EQ(text.find(f), std::string::npos) << "Redis holds \"" << f << "\" in clear";
    for (const auto& key : redis.command({"KEYS", "*"}).elements)
        EXPECT_TRUE(key.text.starts_with("test-broker:")) << key.text;
}

TEST_F(SharedCache, AValueUnderAnotherKeyOrTamperedWithIsAMissNotAnError) {
    auto& writer = add_replica(shared_settings('o'), redis_options()); // another encryption key
    auto& a = add_replica();
    auto& b = add_replica();
    start_threads();
    const cache_key key{"moved@example.com", token_type::zak, std::nullopt};
    ASSERT_TRUE(get(writer, "moved@example.com")->r);
    // The other key's value, put where this key's replicas look: it does not open.
    const auto theirs = writer.shared->names_of(key).entry;
    const auto ours = a.shared->names_of(key).entry;
    ASSERT_NE(theirs, ours);
    // The writer stores its entry after it has answered: wait until it is there.
    redis::reply value;
    ASSERT_TRUE(eventually([&] {
        value = redis.command({"GET", theirs});
        return value.type == redis::reply::kind::string;
    }));
    ASSERT_TRUE(redis.command({"SET", ours, value.text, "PX", "600000"}).is_status("OK"));
    auto on_a = get(a, "moved@example.com");
    ASSERT_TRUE(on_a->r) << on_a->r.error().message;
    EXPECT_FALSE(on_a->cached());
    EXPECT_EQ(sim.token_calls("moved@example.com"), 2u);
    EXPECT_TRUE(a.counts("token_broker_redis_undecryptable_values_total 1"));

    // A's own value, one byte flipped: B does not serve it either.
    auto sealed = redis.command({"GET", ours});
    ASSERT_EQ(sealed.type, redis::reply::kind::string);
    sealed.text[sealed.text.size() / 2] ^= 0x01;
    ASSERT_TRUE(redis.command({"SET", ours, sealed.text, "PX", "600000"}).is_status("OK"));
    auto on_b = get(b, "moved@example.com");
    ASSERT_TRUE(on_b->r) << on_b->r.error().message;
    EXPECT_FALSE(on_b->cached());
    EXPECT_EQ(sim.token_calls("moved@example.com"), 3u);
    EXPECT_TRUE(b.counts("token_broker_redis_undecryptable_values_total 1"));
}

// A registered replica that never confirms (a process that registered and then kept its
// registration without hearing anything): the DELETE cannot be confirmed, so it is 503, after the
// confirmation bound and not before; this replica has forgotten the user all the same. Something
// merely subscribed to the DELETE channel, not registered, is not waited for.
TEST_F(SharedCache, ADeleteThatARegisteredReplicaNeverConfirmsIsUnavailable) {
    auto s = shared_settings();
    s.forget_confirm_timeout = 1500ms;
    auto& a = add_replica(s, redis_options());
    std::atomic<int> heard{0};
    auto silent = redis::subscriber::create(
        ioc.get_executor(), redis_options(), log, {"test-broker:forget"},
        [&](std::string_view, std::string_view) { ++heard; }, [] {});
    silent->start();
    start_threads();
    ASSERT_TRUE(eventually([&] {
        return redis.command({"PUBSUB", "NUMSUB", "test-broker:forget"}).elements.size() == 2 &&
               redis.command({"PUBSUB", "NUMSUB", "test-broker:forget"}).elements[1].integer == 2;
    }));
    ASSERT_TRUE(get(a, "unconfirmed@example.com")->r);
    ASSERT_TRUE(forget(a, "unconfirmed@example.com")) << "an outside subscriber is not waited for";
    EXPECT_TRUE(eventually([&] { return heard.load() == 1; })) << "it heard the DELETE all the same";

    ASSERT_TRUE(get(a, "unconfirmed@example.com")->r);
    // Registered until the year 2286, never confirming.
    ASSERT_EQ(redis.command({"ZADD", "test-broker:replicas", "9999999999999", "never-confirms"}).integer, 1);
    const auto started = std::chrono::steady_clock::now();
    auto deleted = forget(a, "unconfirmed@example.com");
    const auto took = std::chrono::steady_clock::now() - started;
    silent->stop();
    ASSERT_FALSE(deleted);
    EXPECT_EQ(deleted.error().code, errc::cache_unavailable);
    EXPECT_GE(took, 1500ms);
    EXPECT_FALSE(local_hit(a, "unconfirmed@example.com"));
    log->flush();
    EXPECT_NE(log_text->str().find("0 of 1 registered replicas confirmed"), std::string::npos)
        << log_text->str();
}

TEST_F(SharedCache, AfterARotationTheOldKeysEntriesAreStillServed) {
    auto& before = add_replica(shared_settings('o'), redis_options());
    auto& after = add_replica(shared_settings('n', 'o'), redis_options());
    start_threads();
    const auto first = get(before, "rotated@example.com");
    ASSERT_TRUE(first->r);
    auto second = get(after, "rotated@example.com");
    ASSERT_TRUE(second->r) << second->r.error().message;
    EXPECT_TRUE(second->cached());
    EXPECT_EQ(second->token(), first->token());
    EXPECT_EQ(sim.token_calls("rotated@example.com"), 1u);
    // DELETE with the new key removes what the old one wrote too; the replica that has only the old
    // key cannot read whom the DELETE is for, so it drops every local copy and says it did.
    ASSERT_TRUE(get(before, "other@example.com")->r);
    ASSERT_TRUE(local_hit(before, "rotated@example.com") && local_hit(before, "other@example.com"));
    ASSERT_TRUE(forget(after, "rotated@example.com"));
    EXPECT_FALSE(local_hit(before, "rotated@example.com"));
    EXPECT_FALSE(local_hit(before, "other@example.com"));
    EXPECT_TRUE(before.counts("token_broker_redis_undecryptable_values_total 1"));
    for (const auto& text : redis.contents())
        EXPECT_EQ(
            text.find(before.shared->names_of({"rotated@example.com", token_type::zak, std::nullopt}).entry),
            std::string::npos);
}

// During a rotation a look reads the previous key's names first, in a call of their own (in a
// cluster they are in another hash slot): a revoked mark under either key's names makes the claim
// `revoked`, a value under the previous names is found, and neither takes the lock; only a look that
// finds nothing under either takes it.
TEST_F(SharedCache, DuringARotationAMarkOrAValueUnderEitherNamesSettlesTheLookWithoutTheLock) {
    auto& old_only = add_replica(shared_settings('o'), redis_options());
    auto& rotated = add_replica(shared_settings('n', 'o'), redis_options());
    start_threads();
    const cache_key key{"marked@example.com", token_type::zak, std::nullopt};
    const auto current = rotated.shared->names_of(key);
    const auto previous = old_only.shared->names_of(key); // the rotated replica's previous names
    ASSERT_NE(current.entry, previous.entry);
    const auto claim_of = [&](const cache_key& k) {
        auto f = net::co_spawn(ioc, rotated.shared->acquire(k, false), net::use_future);
        if (f.wait_for(60s) != std::future_status::ready)
            throw std::runtime_error("no claim within 60 s");
        return f.get();
    };
    const auto lock_taken = [&](const shared_key_names& names) {
        return redis.command({"EXISTS", names.lock}).integer == 1;
    };

    ASSERT_TRUE(redis.command({"SET", previous.revoked, "1", "PX", "60000"}).is_status("OK"));
    EXPECT_EQ(claim_of(key).what, shared_tokens::claim::kind::revoked) << "marked under the previous names";
    EXPECT_FALSE(lock_taken(current));
    ASSERT_EQ(redis.command({"DEL", previous.revoked}).integer, 1);
    ASSERT_TRUE(redis.command({"SET", current.revoked, "1", "PX", "60000"}).is_status("OK"));
    EXPECT_EQ(claim_of(key).what, shared_tokens::claim::kind::revoked) << "marked under the current names";
    EXPECT_FALSE(lock_taken(current));
    ASSERT_EQ(redis.command({"DEL", current.revoked}).integer, 1);

    // A token that the replica with only the previous key shared.
    const auto shared = get(old_only, key.user_id);
    ASSERT_TRUE(shared->r);
    auto found = claim_of(key);
    ASSERT_EQ(found.what, shared_tokens::claim::kind::found);
    EXPECT_EQ(found.entry.what, shared_entry::kind::token);
    EXPECT_EQ(found.entry.token.reveal(), shared->token());
    EXPECT_FALSE(found.held);
    EXPECT_FALSE(lock_taken(current));

    // Nothing under either name: the lock under the current names is taken for this replica.
    const cache_key other{"nobody-yet@example.com", token_type::zak, std::nullopt};
    auto fetch = claim_of(other);
    EXPECT_EQ(fetch.what, shared_tokens::claim::kind::fetch);
    EXPECT_TRUE(fetch.held);
    EXPECT_TRUE(lock_taken(rotated.shared->names_of(other)));
}

TEST_F(SharedCache, WhileRedisIsDownEveryReplicaAnswersAloneAndDeleteIsUnavailable) {
    auto& a = add_replica(shared_settings(), redis_options(250ms));
    auto& b = add_replica(shared_settings(), redis_options(250ms));
    start_threads();
    ASSERT_TRUE(get(a, "before@example.com")->r);
    ASSERT_TRUE(get(b, "before@example.com")->cached());

    redis.stop();
    ASSERT_TRUE(eventually([&] { return !a.shared->up() && !b.shared->up(); }));
    // Misses from Zoom, each replica on its own, and then hits from its own memory. (What it held
    // before Redis went is dropped once: it could no longer tell whether a forget came.)
    auto hit = get(a, "before@example.com");
    ASSERT_TRUE(hit->r);
    auto miss_a = get(a, "during@example.com");
    ASSERT_TRUE(miss_a->r) << miss_a->r.error().message;
    EXPECT_FALSE(miss_a->cached());
    EXPECT_TRUE(local_hit(a, "during@example.com")) << "a lone replica keeps its own copies";
    auto miss_b = get(b, "during@example.com");
    ASSERT_TRUE(miss_b->r) << miss_b->r.error().message;
    EXPECT_FALSE(miss_b->cached());
    EXPECT_EQ(sim.token_calls("during@example.com"), 2u);
    auto deleted = forget(a, "before@example.com");
    ASSERT_FALSE(deleted);
    EXPECT_EQ(deleted.error().code, errc::cache_unavailable);
    EXPECT_FALSE(local_hit(a, "before@example.com")) << "this replica forgets all the same";
    EXPECT_TRUE(a.counts("token_broker_redis_up 0"));

    redis.restart();
    ASSERT_TRUE(eventually([&] { return a.shared->up() && b.shared->up(); })) << "no reconnection";
    ASSERT_TRUE(eventually([&] { return a.counts("token_broker_redis_up 1"); }));
    // They share again: a token one fetches is the other's cached answer, from one Zoom call. Asked
    // until it holds, for a new user each time: right after the restart a command may still meet the
    // short command timeout on a loaded machine, and that replica then fetches alone, as it should.
    std::string shared_user;
    ASSERT_TRUE(eventually([&] {
        shared_user = "after-" + std::to_string(sim.token_calls()) + "@example.com";
        auto again_a = get(a, shared_user);
        auto again_b = get(b, shared_user);
        return again_a->r && !again_a->cached() && again_b->r && again_b->cached() &&
               again_b->token() == again_a->token() && sim.token_calls(shared_user) == 1u;
    })) << "the replicas never shared again";
    EXPECT_TRUE(forget(b, shared_user));
}

TEST_F(SharedCache, ALockLeftByADeadReplicaHoldsTheOthersUpUntilItExpiresThenOneFetches) {
    zoom_cfg.request_timeout = 2000ms;
    auto& a = add_replica();
    auto& b = add_replica();
    start_threads();
    const cache_key key{"orphan@example.com", token_type::zak, std::nullopt};
    // A replica that took the lock and died: the lock lives request_timeout + 1 s, never released.
    const auto taken = std::chrono::steady_clock::now();
    ASSERT_TRUE(redis.command({"SET", a.shared->names_of(key).lock, "dead-replica", "NX", "PX", "3000"})
                    .is_status("OK"));
    auto on_a = start(a, "orphan@example.com");
    auto on_b = start(b, "orphan@example.com");
    // While the lock lives, nobody calls Zoom.
    while (redis.command({"PTTL", a.shared->names_of(key).lock}).integer > 100) {
        EXPECT_EQ(sim.token_calls("orphan@example.com"), 0u);
        std::this_thread::sleep_for(20ms);
    }
    for (auto* f : {&on_a, &on_b}) {
        ASSERT_EQ(f->wait_for(60s), std::future_status::ready);
        auto ans = f->get();
        ASSERT_TRUE(ans->r) << ans->r.error().message;
    }
    EXPECT_GE(std::chrono::steady_clock::now() - taken, 2900ms);
    EXPECT_EQ(sim.token_calls("orphan@example.com"), 1u) << "one of them fetched, the other waited on it";
}

// How many scripts Redis ran since its statistics were reset: EVALSHA and EVAL calls, less the
// failed ones (an EVALSHA that Redis answered NOSCRIPT is followed by an EVAL of the same script).
long long scripts_run(test::redis_server& server) {
    const auto stats = server.command({"INFO", "commandstats"}).text;
    const auto field = [&](const std::string& command, const std::string& name) -> long long {
        const auto line = stats.find("cmdstat_" + command + ":");
        if (line == std::string::npos)
            return 0;
        const auto at = stats.find(name + "=", line);
        return at == std::string::npos ? 0 : std::stoll(stats.substr(at + name.size() + 1));
    };
    long long n = 0;
    for (const std::string command : {"evalsha", "eval"})
        n += field(command, "calls") - field(command, "failed_calls");
    return n;
}

TEST_F(SharedCache, AWaiterOnALockLooksAgainWhenTheLockLapsesNotOnATimer) {
    zoom_cfg.request_timeout = 2000ms;
    // A long invalidation lease: the registrations' renewals (scripts too) do not blur the count.
    auto s = shared_settings();
    s.invalidation_lease = 30s;
    auto& a = add_replica(s, redis_options());
    auto& b = add_replica(std::move(s), redis_options());
    start_threads();
    const cache_key key{"patient@example.com", token_type::zak, std::nullopt};
    ASSERT_TRUE(redis.command({"CONFIG", "RESETSTAT"}).is_status("OK"));
    ASSERT_TRUE(redis.command({"SET", a.shared->names_of(key).lock, "dead-replica", "NX", "PX", "2500"})
                    .is_status("OK"));
    auto on_a = start(a, "patient@example.com");
    auto on_b = start(b, "patient@example.com");
    for (auto* f : {&on_a, &on_b}) {
        ASSERT_EQ(f->wait_for(60s), std::future_status::ready);
        auto ans = f->get();
        ASSERT_TRUE(ans->r) << ans->r.error().message;
    }
    EXPECT_EQ(sim.token_calls("patient@example.com"), 1u);
    // Each replica looked once, then once more when the dead replica's lock lapsed; one of them took
    // it and stored (one script), the other looked once more when woken by that store, and a lock
    // renewal or a registration may fall in between. Waiters that looked every 150 ms would have run
    // some 30 scripts in these 2.5 s.
    EXPECT_LE(scripts_run(redis), 10)
        << "the waiters looked again without news: " << redis.command({"INFO", "commandstats"}).text;
}

TEST_F(SharedCache, ARevocationReachesEveryReplicaAndOneThatNeverHeardItReadsItFromRedis) {
    auto& a = add_replica();
    auto& b = add_replica();
    start_threads();
    const std::string user = "Leaver@Example.com";
    ASSERT_TRUE(get(a, user)->r);
    ASSERT_TRUE(get(b, user)->cached());

    auto revoked = net::co_spawn(ioc, a.tokens->revoke_everywhere(user, 3600s), net::use_future);
    ASSERT_EQ(revoked.wait_for(60s), std::future_status::ready);
    auto r = revoked.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(a.tokens->revoked(user));
    EXPECT_TRUE(b.tokens->revoked("leaver@example.com")) << "marked when it confirmed the forget";
    EXPECT_FALSE(local_hit(b, user));
    // The mark in Redis: named like the user's other keys (an email lower-cased), for the time given.
    const cache_key key{"leaver@example.com", token_type::zak, std::nullopt};
    const auto mark = a.shared->names_of(key).revoked;
    EXPECT_TRUE(mark.starts_with("test-broker:u:")) << mark;
    EXPECT_TRUE(mark.ends_with(":revoked")) << mark;
    const auto pttl = redis.command({"PTTL", mark}).integer;
    EXPECT_GT(pttl, 3500 * 1000);
    EXPECT_LE(pttl, 3600 * 1000);

    // A replica that never heard the news (it did not exist then) still caches and shares nothing.
    auto& late = add_replica();
    ASSERT_TRUE(eventually([&] { return late.shared->up() && late.shared->local_copies_allowed(); }));
    EXPECT_FALSE(late.tokens->revoked(user));
    const auto calls = sim.token_calls(user);
    auto first = get(late, user);
    ASSERT_TRUE(first->r) << first->r.error().message;
    EXPECT_FALSE(first->cached());
    EXPECT_FALSE(local_hit(late, user)) << "not cached";
    auto second = get(late, user);
    ASSERT_TRUE(second->r);
    EXPECT_FALSE(second->cached()) << "not shared either";
    EXPECT_EQ(sim.token_calls(user), calls + 2) << "each request went to Zoom";

    // user.activated on one replica clears the mark everywhere.
    auto cleared = net::co_spawn(ioc, a.tokens->reinstate_everywhere("LEAVER@example.com"), net::use_future);
    ASSERT_EQ(cleared.wait_for(60s), std::future_status::ready);
    ASSERT_TRUE(cleared.get());
    EXPECT_EQ(redis.command({"EXISTS", mark}).integer, 0);
    EXPECT_TRUE(eventually([&] { return !b.tokens->revoked(user); })) << "the others hear it";
    ASSERT_TRUE(get(late, user)->r);
    EXPECT_TRUE(get(late, user)->cached()) << "cached again";
}

TEST(ForgetMessage, ARevocationOrReinstatementIsTaggedBetweenTheNonceAndTheSeal) {
    const std::string nonce(32, 'a');
    // The message read is views into the text: each text is kept while its views are used.
    const std::string plain_text = nonce + ":sealed:bytes";
    auto plain = read_forget_message(plain_text);
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->head, nonce);
    EXPECT_EQ(plain->sealed, "sealed:bytes");
    EXPECT_EQ(plain->revoked_for, 0ms);
    EXPECT_FALSE(plain->reinstate);

    const std::string revoke_text = nonce + ":revoke=3600000:sealed";
    auto revoke = read_forget_message(revoke_text);
    ASSERT_TRUE(revoke);
    EXPECT_EQ(revoke->head, nonce + ":revoke=3600000");
    EXPECT_EQ(revoke->sealed, "sealed");
    EXPECT_EQ(revoke->revoked_for, 3600000ms);

    const std::string reinstate_text = nonce + ":reinstate:sealed";
    auto reinstate = read_forget_message(reinstate_text);
    ASSERT_TRUE(reinstate);
    EXPECT_TRUE(reinstate->reinstate);
    EXPECT_EQ(reinstate->head, nonce + ":reinstate");
    EXPECT_EQ(reinstate->sealed, "sealed");

    // A tag that does not read stays in what must be sealed: the seal fails, and the replica drops
    // every copy rather than guess.
    for (const std::string bad : {"revoke=:x", "revoke=12", "revoke=-5:x", "revoke=0:x", "revoke=1x:y"}) {
        const std::string text = nonce + ":" + bad;
        auto m = read_forget_message(text);
        ASSERT_TRUE(m) << bad;
        EXPECT_EQ(m->revoked_for, 0ms) << bad;
        EXPECT_EQ(m->head, nonce) << bad;
        EXPECT_EQ(m->sealed, bad) << bad;
    }
    EXPECT_FALSE(read_forget_message("short:x"));
    EXPECT_FALSE(read_forget_message(std::string(33, 'a')));
}

} // namespace
} // namespace token_broker
