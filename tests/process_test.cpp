// The token-broker executable as operators run it: signals (SIGHUP reloads caller keys, SIGTERM
// drains requests in flight and exits 0) and its exit status for a port it cannot bind.
#include "auth/auth.hpp"
#include "broker_harness.hpp"
#include "redis_server.hpp"
#include "test_support.hpp"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::client;

using testing::hex;

std::string keys_json(const std::string& name, const std::string& plain) {
    return boost::json::serialize(boost::json::object{
        {"keys", boost::json::array{{{"name", name}, {"sha256", hex(sha256(plain))}, {"users", {"*"}}}}}});
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The broker as a child process, its stdout in a file; killed at the end if still running.
// The configuration insists on a real port, so start() tries ports until the broker binds one: the
// broker itself holds the port from then on (no "find a free port, close it, reuse it" race).
class broker_process {
public:
    // `extra`: more top-level configuration blocks (a "redis" block, say).
    static std::unique_ptr<broker_process> start(const zoom_sim::simulator& sim,
                                                 const boost::json::object& extra = {}) {
        static int started = 0;
        for (int attempt = 0; attempt < 20; ++attempt) {
            const auto port = static_cast<std::uint16_t>(
                20000 + (::getpid() * 7 + (started++) * 61 + attempt * 131) % 30000);
            auto p = std::make_unique<broker_process>(sim, port, extra);
            if (p->wait_port() == port)
                return p;
        }
        throw std::runtime_error("no port could be bound");
    }

    broker_process(const zoom_sim::simulator& sim, std::uint16_t port,
                   const boost::json::object& extra = {}) {
        // One directory per broker: a test may run several at once.
        dir_ = std::filesystem::temp_directory_path() /
               ("token-broker-process-" + std::to_string(::getpid()) + "-" + std::to_string(port));
        std::filesystem::create_directories(dir_);
        keys_file_ = dir_ / "keys.json";
        write_keys("first", "first-key-0123456789");
        boost::json::object cfg_object{
            {"server", boost::json::object{{"port", port}, {"drain_timeout_ms", 5000}}},
            {"zoom",
             {{"api_base_url", sim.base_url()},
              {"oauth_token_url", sim.oauth_url()},
              {"account_id", sim.settings().account_id},
              {"client_id", sim.settings().client_id},
              {"client_secret", sim.settings().client_secret},
              {"ca_file", sim.ca_file()}}},
            {"auth", {{"keys_file", keys_file_.string()}}}};
        for (const auto& [k, v] : extra)
            cfg_object[k] = v;
        const auto cfg = boost::json::serialize(cfg_object);
        std::ofstream(dir_ / "config.json") << cfg;
        const std::string config_path = (dir_ / "config.json").string();
        const std::string out = (dir_ / "stdout.log").string();
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        std::vector<char*> argv{const_cast<char*>(TOKEN_BROKER_BINARY), const_cast<char*>("--config"),
                                const_cast<char*>(config_path.c_str()), nullptr};
        if (posix_spawn(&pid_, TOKEN_BROKER_BINARY, &actions, nullptr, argv.data(), environ) != 0)
            throw std::runtime_error("cannot start the broker");
        posix_spawn_file_actions_destroy(&actions);
    }
    ~broker_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        std::filesystem::remove_all(dir_);
    }

    void write_keys(const std::string& name, const std::string& plain) const {
        std::ofstream(keys_file_) << keys_json(name, plain);
    }
    void write_raw_keys(const std::string& text) const { std::ofstream(keys_file_) << text; }
    std::string output() const { return read_file(dir_ / "stdout.log"); }

    // Waits for the "listening on" line and returns the port; 0 if the broker exits or never says.
    std::uint16_t wait_port() {
        static constexpr std::string_view marker = "listening on http://127.0.0.1:";
        for (int i = 0; i < 500; ++i) {
            const auto text = output();
            if (auto at = text.find(marker); at != std::string::npos)
                return static_cast<std::uint16_t>(std::stoi(text.substr(at + marker.size(), 5)));
            int status = 0;
            if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return 0;
            }
            std::this_thread::sleep_for(10ms);
        }
        return 0;
    }

    void signal(int sig) const { ::kill(pid_, sig); }

    // The exit status, or -1 if it has not exited within `limit`.
    int wait_exit(std::chrono::milliseconds limit) {
        for (auto waited = 0ms; waited < limit; waited += 10ms) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(10ms);
        }
        return -1;
    }

private:
    std::filesystem::path dir_;
    std::filesystem::path keys_file_;
    pid_t pid_ = -1;
};

int status_with_key(std::uint16_t port, const std::string& key) {
    client c(port);
    return static_cast<int>(c.get("/token/p", "Authorization: Bearer " + key + "\r\n").result_int());
}

// Polls until `f` holds, for up to 5 s.
template <class F>
bool eventually(F f) {
    for (int i = 0; i < 500; ++i) {
        if (f())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

TEST(Process, SighupReloadsTheKeysFileAndABadFileKeepsTheOldKeys) {
    zoom_sim::simulator sim;
    auto started = broker_process::start(sim);
    auto& broker = *started;
    const auto port = broker.wait_port();
    EXPECT_EQ(status_with_key(port, "first-key-0123456789"), 200);
    EXPECT_EQ(status_with_key(port, "second-key-0123456789"), 401);

    broker.write_keys("second", "second-key-0123456789");
    broker.signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return status_with_key(port, "second-key-0123456789") == 200; }));
    EXPECT_EQ(status_with_key(port, "first-key-0123456789"), 401);

    broker.write_raw_keys("[{\"name\": \"broken\"");
    broker.signal(SIGHUP);
    EXPECT_TRUE(eventually(
        [&] { return broker.output().find("keeping the current caller keys") != std::string::npos; }));
    EXPECT_EQ(status_with_key(port, "second-key-0123456789"), 200);

    broker.signal(SIGTERM);
    EXPECT_EQ(broker.wait_exit(5s), 0);
}

TEST(Process, SigtermLetsTheRequestInFlightFinishThenExitsZero) {
    zoom_sim::simulator sim;
    sim.inject({.what = zoom_sim::fault::kind::delay, .delay = 800ms, .times = -1}, "slow");
    auto started = broker_process::start(sim);
    auto& broker = *started;
    const auto port = broker.wait_port();
    auto in_flight = std::async(std::launch::async, [&] {
        client c(port);
        return c.get("/token/slow", "Authorization: Bearer first-key-0123456789\r\n");
    });
    ASSERT_TRUE(eventually([&] { return sim.token_calls("slow") == 1; }));
    broker.signal(SIGTERM);
    auto res = in_flight.get();
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res[http::field::connection], "close");
    EXPECT_EQ(broker.wait_exit(5s), 0) << broker.output();
    EXPECT_NE(broker.output().find("drained"), std::string::npos);
}

TEST(Process, APortThatCannotBeBoundExitsOne) {
    zoom_sim::simulator sim;
    net::io_context ioc;
    net::ip::tcp::acceptor taken(ioc, {net::ip::make_address("127.0.0.1"), 0});
    broker_process broker(sim, taken.local_endpoint().port());
    EXPECT_EQ(broker.wait_exit(5s), 1);
    EXPECT_NE(broker.output().find("cannot listen"), std::string::npos) << broker.output();
}

// Two broker processes naming one Redis (CONTRACT.md section 7) behave as one broker: one OAuth
// call for both, a token fetched by one is served by the other as cached without a Zoom call, and a
// DELETE on one makes the other fetch anew. The wiring of the process, not only the library.
TEST(Process, TwoReplicasShareOneRedis) {
    zoom_sim::simulator sim;
    test::redis_server redis;
    const boost::json::object extra{{"redis",
                                     {{"url", "redis://127.0.0.1:" + std::to_string(redis.port())},
                                      {"password", redis.password()},
                                      {"encryption_key", std::string(64, 'a')}}}};
    auto a = broker_process::start(sim, extra);
    auto b = broker_process::start(sim, extra);
    ASSERT_TRUE(a && b);
    const std::uint16_t ports[] = {a->wait_port(), b->wait_port()};
    for (auto port : ports) {
        EXPECT_TRUE(eventually([&] {
            return client(port).get("/readyz").body() == R"({"status":"ready","redis":"up"})";
        })) << client(port).get("/readyz").body();
    }
    EXPECT_EQ(sim.oauth_calls(), 1u) << "the second replica takes the access token the first put in Redis";

    const std::string auth = "Authorization: Bearer first-key-0123456789\r\n";
    const auto first = client(ports[0]).get("/token/alice@example.com", auth);
    ASSERT_EQ(first.result_int(), 200) << first.body();
    EXPECT_NE(first.body().find(R"("cached":false)"), std::string::npos) << first.body();
    const auto second = client(ports[1]).get("/token/alice@example.com", auth);
    ASSERT_EQ(second.result_int(), 200) << second.body();
    EXPECT_NE(second.body().find(R"("cached":true)"), std::string::npos) << second.body();
    EXPECT_EQ(sim.token_calls("alice@example.com"), 1u);

    client del(ports[1]);
    del.send("DELETE /token/alice@example.com HTTP/1.1\r\nHost: localhost\r\n" + auth + "\r\n");
    EXPECT_EQ(del.read().result_int(), 204);
    // The other replica hears of the DELETE through Redis and drops its own copy.
    EXPECT_TRUE(eventually([&] {
        const auto r = client(ports[0]).get("/token/alice@example.com", auth);
        return r.result_int() == 200 && sim.token_calls("alice@example.com") == 2;
    }));
    EXPECT_EQ(sim.oauth_calls(), 1u);
}

} // namespace
} // namespace token_broker
