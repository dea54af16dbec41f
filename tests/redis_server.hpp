// A real redis-server for a test: started on a loopback port with its own temporary directory, no
// persistence and a password; stopped (and its directory removed) when the object goes. It can be
// stopped and started again on the same port (outage tests), paused, and serve TLS only (rediss://
// tests).
// Header-only, for every test that needs Redis.
#pragma once

#include "redis/options.hpp"
#include "redis/reply.hpp"
#include "test_certs.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <optional>
#include <random>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace token_broker::test {

// The files of a TLS-only server: its certificate and key, and the CA its clients trust.
struct redis_tls_files {
    std::string cert_file;
    std::string key_file;
    std::string ca_file;
};

// A copy of a hiredis reply (the test's blocking client) in the broker's own form.
inline redis::reply copy_reply(const redisReply& r) {
    redis::reply out;
    switch (r.type) {
    case REDIS_REPLY_STATUS:
        out.type = redis::reply::kind::status;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_ERROR:
        out.type = redis::reply::kind::error;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STRING:
        out.type = redis::reply::kind::string;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_INTEGER:
        out.type = redis::reply::kind::integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.type = redis::reply::kind::array;
        for (std::size_t i = 0; i < r.elements; ++i)
            out.elements.push_back(copy_reply(*r.element[i]));
        break;
    default:
        break;
    }
    return out;
}

// Commands on a new plain connection to 127.0.0.1:port (hiredis's blocking client), after AUTH
// `password` when there is one; the last reply. Throws std::runtime_error when nothing answers or
// AUTH is refused.
inline redis::reply commands_at(std::uint16_t port, const std::string& password,
                                const std::vector<std::vector<std::string>>& commands) {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == nullptr || c->err != 0) {
        std::string why = c != nullptr ? c->errstr : "out of memory";
        if (c != nullptr)
            redisFree(c);
        throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port) + ": " + why);
    }
    redisSetTimeout(c, tv);
    auto run = [&](const std::vector<std::string>& a) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& s : a) {
            argv.push_back(s.data());
            lens.push_back(s.size());
        }
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(c, static_cast<int>(a.size()), argv.data(), lens.data()));
        if (r == nullptr) {
            std::string why = c->errstr;
            redisFree(c);
            throw std::runtime_error("127.0.0.1:" + std::to_string(port) + " did not answer: " + why);
        }
        redis::reply out = copy_reply(*r);
        freeReplyObject(r);
        return out;
    };
    if (!password.empty()) {
        redis::reply auth = run({"AUTH", password});
        if (auth.is_error()) {
            redisFree(c);
            throw std::runtime_error("127.0.0.1:" + std::to_string(port) + " refused AUTH: " + auth.text);
        }
    }
    redis::reply out;
    for (const auto& args : commands)
        out = run(args);
    redisFree(c);
    return out;
}

// A loopback port below Linux's ephemeral range (32768 and up), so that no client socket of this or
// another test takes it as its local port while a server is down (a connection to a closed port in
// that range can even connect to itself), and free now: bound and closed again here. The server
// binds it itself, so another process may still take it first; its launch then fails and another
// port is tried.
inline std::uint16_t candidate_server_port() {
    static std::mt19937 random(std::random_device{}());
    for (;;) {
        const auto port = static_cast<std::uint16_t>(20000 + random() % 12000);
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            throw std::runtime_error("socket() failed");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (free)
            return port;
    }
}

// Starts `args` (args[0] is the program, found on PATH) and waits until its log file `log_path` has
// `ready_line`: its pid; -1 when it exited first (a port taken) or was not ready within `bound` (it is
// then killed).
inline pid_t start_until_logged(std::vector<std::string> args, const std::string& log_path,
                                std::string_view ready_line, std::chrono::seconds bound) {
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::execvp(argv[0], argv.data());
        ::_exit(127);
    }
    const auto logged = [&] {
        std::ifstream in(log_path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str().find(ready_line) != std::string::npos;
    };
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid)
            return -1;
        if (logged())
            return pid;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
}

// SIGKILLs `pid` (when it is > 0) and reaps it; `pid` is -1 afterwards.
inline void kill_and_reap(pid_t& pid) {
    if (pid <= 0)
        return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
}

class redis_server {
public:
    // Starts the server (throws std::runtime_error when it does not answer within the startup bound).
    // `extra` goes on its command line after the test's own settings (e.g. "--cluster-enabled yes").
    explicit redis_server(std::optional<redis_tls_files> tls = std::nullopt,
                          std::string password = "redis-test-password", std::vector<std::string> extra = {})
        : tls_(std::move(tls)), password_(std::move(password)), extra_(std::move(extra)) {
        std::string pattern = (std::filesystem::temp_directory_path() / "token-broker-redis-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("cannot make a temporary directory for redis-server");
        dir_ = pattern;
        for (int attempt = 0;; ++attempt) {
            port_ = candidate_server_port();
            if (launch())
                break;
            if (attempt == 20)
                throw std::runtime_error("redis-server did not start: " + log_text());
        }
    }

    ~redis_server() {
        kill_now();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    const std::string& password() const noexcept { return password_; }
    bool running() const noexcept { return pid_ > 0; }

    // Options for a client of this server: 127.0.0.1, its port and password (and TLS with its CA).
    redis::options client_options() const {
        redis::options o;
        o.host = "127.0.0.1";
        o.port = port_;
        o.password = secret(password_);
        if (tls_) {
            o.tls = true;
            o.ca_file = tls_->ca_file;
        }
        // Generous for a loaded machine: the tests that need a short one set it themselves.
        o.connect_timeout = std::chrono::milliseconds(5000);
        o.command_timeout = std::chrono::milliseconds(5000);
        return o;
    }

    // Freezes the server (SIGSTOP): connections stay open, connecting still succeeds (the kernel
    // accepts), but nothing is answered: Redis as slow as it gets. resume() (SIGCONT) ends it.
    void pause() const {
        if (pid_ > 0)
            ::kill(pid_, SIGSTOP);
    }
    void resume() const {
        if (pid_ > 0)
            ::kill(pid_, SIGCONT);
    }

    // Stops the server (SIGTERM, then waits for it to exit). Connections to it break.
    void stop() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGCONT); // a paused server would not hear the SIGTERM
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    // Kills the server at once (SIGKILL), as a crash of its machine would.
    void kill() { kill_now(); }

    // Starts it again on the same port, empty (nothing is saved). Throws when it cannot.
    void restart() {
        stop();
        for (int attempt = 0; attempt < 50; ++attempt) {
            if (launch())
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the port may be in use a moment
        }
        throw std::runtime_error("redis-server did not start again on port " + std::to_string(port_) + ": " +
                                 log_text());
    }

    // One command on a new plain connection (hiredis's blocking client), authenticated; the reply.
    // Throws std::runtime_error when the server cannot be reached. Not for a TLS-only server.
    redis::reply command(const std::vector<std::string>& args) const {
        if (tls_)
            throw std::logic_error("redis_server::command: a TLS-only server has no plain port");
        return commands_at(port_, password_, {args});
    }

    // Every key and every value (strings, set and sorted set members) the server holds; a key of
    // another type appears as "unexpected type T of a key". Not for a TLS-only server.
    std::vector<std::string> contents() const {
        std::vector<std::string> out;
        for (const auto& k : command({"KEYS", "*"}).elements) {
            out.push_back(k.text);
            const auto type = command({"TYPE", k.text}).text;
            if (type == "string") {
                out.push_back(command({"GET", k.text}).text);
            } else if (type == "set") {
                for (const auto& m : command({"SMEMBERS", k.text}).elements)
                    out.push_back(m.text);
            } else if (type == "zset") {
                for (const auto& m : command({"ZRANGE", k.text, "0", "-1", "WITHSCORES"}).elements)
                    out.push_back(m.text);
            } else {
                out.push_back("unexpected type " + type + " of a key");
            }
        }
        return out;
    }

private:
    std::string log_path() const { return dir_ + "/redis.log"; }

    std::string log_text() const {
        std::ifstream in(log_path());
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

    // Starts redis-server on port_ and waits until it is ready; false when it exited (port taken) or
    // was not ready within the bound (it is then killed).
    bool launch() {
        std::error_code ignored;
        std::filesystem::remove(log_path(), ignored);
        const std::string port = std::to_string(port_);
        std::vector<std::string> args{"redis-server",
                                      "--bind",
                                      "127.0.0.1",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--dir",
                                      dir_,
                                      "--logfile",
                                      log_path(),
                                      "--requirepass",
                                      password_,
                                      "--daemonize",
                                      "no",
                                      "--enable-debug-command",
                                      "local"};
        if (tls_) {
            args.insert(args.end(), {"--port", "0", "--tls-port", port, "--tls-cert-file", tls_->cert_file,
                                     "--tls-key-file", tls_->key_file, "--tls-ca-cert-file", tls_->ca_file,
                                     "--tls-auth-clients", "no"});
        } else {
            args.insert(args.end(), {"--port", port});
        }
        args.insert(args.end(), extra_.begin(), extra_.end());
        pid_ = start_until_logged(std::move(args), log_path(), "Ready to accept connections",
                                  std::chrono::seconds(30));
        return pid_ > 0;
    }

    void kill_now() { kill_and_reap(pid_); }

    std::optional<redis_tls_files> tls_;
    std::string password_;
    std::vector<std::string> extra_;
    std::string dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

// A TLS-only redis-server with a certificate for 127.0.0.1 and redis.test from a test CA.
struct redis_tls_setup {
    redis_tls_setup() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "token-broker-redis-tls-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("mkdtemp");
        dir = pattern;
        zoom_sim::test_ca ca("token-broker redis test CA");
        auto leaf = ca.issue("redis.test", {"redis.test"}, {"127.0.0.1"});
        zoom_sim::write_file(dir + "/ca.pem", ca.cert_pem());
        zoom_sim::write_file(dir + "/cert.pem", leaf.cert);
        zoom_sim::write_file(dir + "/key.pem", leaf.key);
        zoom_sim::test_ca other("another CA");
        zoom_sim::write_file(dir + "/other-ca.pem", other.cert_pem());
        files = {dir + "/cert.pem", dir + "/key.pem", dir + "/ca.pem"};
    }
    ~redis_tls_setup() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    std::string dir;
    redis_tls_files files;
};

} // namespace token_broker::test
