// The token-broker executable as a child process of a test, with its own configuration file,
// caller keys file and captured output: for the tests of signals, exit statuses and replicas.
#pragma once

#include "auth/auth.hpp"
#include "server_harness.hpp"
#include "test_support.hpp"
#include "zoom_simulator.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

extern char** environ;

namespace token_broker::testing {

using namespace std::chrono_literals;

inline std::string keys_json(const std::string& name, const std::string& plain) {
    return boost::json::serialize(boost::json::object{
        {"keys", boost::json::array{{{"name", name}, {"sha256", hex(sha256(plain))}, {"users", {"*"}}}}}});
}

// Where a broker process finds Zoom: the simulator of the test's own process, or the zoom-sim program
// (tests/sim_program.hpp).
struct zoom_endpoint {
    std::string api_base_url;
    std::string oauth_token_url;
    std::string account_id;
    std::string client_id;
    std::string client_secret;
    std::string ca_file;

    zoom_endpoint(std::string api, std::string oauth, std::string account, std::string client,
                  std::string client_secret_, std::string ca)
        : api_base_url(std::move(api)), oauth_token_url(std::move(oauth)), account_id(std::move(account)),
          client_id(std::move(client)), client_secret(std::move(client_secret_)), ca_file(std::move(ca)) {}
    zoom_endpoint(const zoom_sim::simulator& sim) // NOLINT: implicit, as every test passes its simulator
        : zoom_endpoint(sim.base_url(), sim.oauth_url(), sim.settings().account_id, sim.settings().client_id,
                        sim.settings().client_secret, sim.ca_file()) {}
};

// The broker as a child process, its stdout in a file; killed at the end if still running.
// The configuration insists on a real port, so start() tries ports until the broker binds one: the
// broker itself holds the port from then on (no "find a free port, close it, reuse it" race).
class broker_process {
public:
    // `extra`: more configuration: a block that the configuration has already ("zoom") is merged
    // key by key, any other (a "redis" block, say) is added.
    // `webhook_secret`: the webhook listener on too (the port after the token port), with that
    // secret token; webhook_port() says where.
    static std::unique_ptr<broker_process> start(const zoom_endpoint& sim,
                                                 const boost::json::object& extra = {},
                                                 const std::string& webhook_secret = "") {
        // Ports from 10000 to 19999: below Linux's ephemeral range (32768 and up), so that no
        // outgoing connection of a test running beside this one holds the port picked, and apart
        // from the test Redis servers' (20000 to 31999, tests/redis_server.hpp).
        static int started = 0;
        std::string last_output;
        for (int attempt = 0; attempt < 40; ++attempt) {
            const auto port = static_cast<std::uint16_t>(
                10000 + (::getpid() * 7 + (started++) * 61 + attempt * 131) % 10000);
            auto p = std::make_unique<broker_process>(sim, port, extra, webhook_secret);
            if (p->wait_port() == port)
                return p;
            last_output = p->output();
        }
        throw std::runtime_error("no port could be bound; the last broker said: " + last_output);
    }

    broker_process(const zoom_endpoint& sim, std::uint16_t port, const boost::json::object& extra = {},
                   const std::string& webhook_secret = "") {
        // One directory per broker: a test may run several at once.
        dir_ = std::filesystem::temp_directory_path() /
               ("token-broker-process-" + std::to_string(::getpid()) + "-" + std::to_string(port));
        std::filesystem::create_directories(dir_);
        keys_file_ = dir_ / "keys.json";
        write_keys("first", "first-key-0123456789");
        boost::json::object cfg_object{
            {"server", boost::json::object{{"port", port}, {"drain_timeout_ms", 5000}}},
            {"zoom",
             {{"api_base_url", sim.api_base_url},
              {"oauth_token_url", sim.oauth_token_url},
              {"account_id", sim.account_id},
              {"client_id", sim.client_id},
              {"client_secret", sim.client_secret},
              {"ca_file", sim.ca_file}}},
            {"auth", {{"keys_file", keys_file_.string()}}}};
        if (!webhook_secret.empty()) {
            webhook_port_ = static_cast<std::uint16_t>(port + 1);
            cfg_object["webhook"] =
                boost::json::object{{"port", webhook_port_}, {"secret_token", webhook_secret}};
        }
        for (const auto& [k, v] : extra) {
            auto* into = cfg_object.if_contains(k);
            if (into && into->is_object() && v.is_object()) {
                for (const auto& [kk, vv] : v.as_object())
                    into->as_object()[kk] = vv;
            } else {
                cfg_object[k] = v;
            }
        }
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

    // The webhook listener's port (0 when it is off).
    std::uint16_t webhook_port() const { return webhook_port_; }

    // The process id, for /proc; -1 once it has exited.
    pid_t pid() const { return pid_; }

    // The exit status, or -1 if it has not exited within `limit`.
    int wait_exit(std::chrono::milliseconds limit) { return wait_for_exit(pid_, limit); }

private:
    std::filesystem::path dir_;
    std::filesystem::path keys_file_;
    pid_t pid_ = -1;
    std::uint16_t webhook_port_ = 0;
};

// The caller key every broker_process accepts (its keys file, see write_keys), as a header line.
inline const std::string caller_auth = "Authorization: Bearer first-key-0123456789\r\n";

// One answer from a broker process: status 0 and the error's text when none came.
struct answer {
    int status = 0;
    std::string body;
    std::chrono::steady_clock::duration took{};

    bool cached() const { return body.find(R"("cached":true)") != std::string::npos; }
    std::string token() const {
        const auto v = boost::json::parse(body);
        return std::string(v.as_object().at("token").as_string());
    }
};

// GET `target` with the caller key; never throws.
inline answer get_with_key(std::uint16_t port, const std::string& target,
                           std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto started = std::chrono::steady_clock::now();
    try {
        client c(port, limit);
        const auto r = c.get(target, caller_auth);
        return {static_cast<int>(r.result_int()), r.body(), std::chrono::steady_clock::now() - started};
    } catch (const std::exception& e) {
        return {0, e.what(), std::chrono::steady_clock::now() - started};
    }
}

// GET /token/{user} with the caller key; never throws.
inline answer get_token(std::uint16_t port, const std::string& user,
                        std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return get_with_key(port, "/token/" + user, limit);
}

// DELETE /token/{user} with the caller key: the status.
inline int delete_token(std::uint16_t port, const std::string& user) {
    client c(port);
    c.send("DELETE /token/" + user + " HTTP/1.1\r\nHost: localhost\r\n" + caller_auth + "\r\n");
    return static_cast<int>(c.read().result_int());
}

// The body of /readyz, or the error's text when no answer came.
inline std::string readyz(std::uint16_t port) {
    try {
        return client(port).get("/readyz").body();
    } catch (const std::exception& e) {
        return e.what();
    }
}

} // namespace token_broker::testing
