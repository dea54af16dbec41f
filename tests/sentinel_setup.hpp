// A Redis that survives a node, for a test (CONTRACT.md section 7, "Redis that survives a node"):
// one master and one replica (tests/redis_server.hpp, the replica made one with REPLICAOF) and three
// redis-sentinel processes on loopback, each with its own configuration file in a temporary
// directory (sentinels rewrite theirs), a password of their own (so that redis.sentinel_password is
// used) and short timings: down after 1 s, failover timeout 3 s. Everything is killed when the object
// goes. Header-only.
#pragma once

#include "redis_server.hpp"
#include "test_support.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <hiredis/hiredis.h>
#include <memory>
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

inline redis::reply command_at(std::uint16_t port, const std::string& password,
                               const std::vector<std::string>& args) {
    return commands_at(port, password, {args});
}

// One redis-sentinel process monitoring `master_name` at 127.0.0.1:master_port.
class sentinel_process {
public:
    // With `tls`: TLS only, to its clients and to the servers it watches (with that certificate
    // and CA); command() is then unusable (plain only).
    sentinel_process(const std::string& dir, const std::string& master_name, std::uint16_t master_port,
                     const std::string& data_password, const std::string& password,
                     const redis_tls_files* tls = nullptr)
        : dir_(dir), password_(password) {
        for (int attempt = 0; attempt < 20; ++attempt) {
            port_ = candidate_server_port();
            std::ofstream conf(config_path());
            if (tls)
                conf << "port 0\ntls-port " << port_ << "\ntls-cert-file " << tls->cert_file
                     << "\ntls-key-file " << tls->key_file << "\ntls-ca-cert-file " << tls->ca_file
                     << "\ntls-auth-clients no\ntls-replication yes\n";
            else
                conf << "port " << port_ << "\n";
            conf << "bind 127.0.0.1\ndaemonize no\n"
                 << "logfile " << log_path() << "\ndir " << dir_ << "\n"
                 << "requirepass " << password_ << "\n"
                 << "sentinel sentinel-pass " << password_ << "\n"
                 << "sentinel monitor " << master_name << " 127.0.0.1 " << master_port << " 2\n"
                 << "sentinel auth-pass " << master_name << " " << data_password << "\n"
                 << "sentinel down-after-milliseconds " << master_name << " 1000\n"
                 << "sentinel failover-timeout " << master_name << " 3000\n"
                 << "sentinel parallel-syncs " << master_name << " 1\n";
            conf.close();
            if (launch())
                return;
        }
        throw std::runtime_error("redis-sentinel did not start");
    }
    ~sentinel_process() { kill_now(); }
    sentinel_process(const sentinel_process&) = delete;
    sentinel_process& operator=(const sentinel_process&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    redis::reply command(const std::vector<std::string>& args) const {
        return command_at(port_, password_, args);
    }

private:
    std::string config_path() const { return dir_ + "/sentinel-" + std::to_string(port_) + ".conf"; }
    std::string log_path() const { return dir_ + "/sentinel-" + std::to_string(port_) + ".log"; }

    bool launch() {
        pid_ = start_until_logged({"redis-sentinel", config_path()}, log_path(), "+monitor master",
                                  std::chrono::seconds(20));
        return pid_ > 0;
    }

    void kill_now() { kill_and_reap(pid_); }

    std::string dir_;
    std::string password_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

// One master, one replica, three sentinels monitoring the master (ready to name it when
// constructed; wait_ready_to_fail_over() before a failover).
class sentinel_setup {
public:
    static constexpr const char* master_name = "tbmaster";
    static constexpr const char* sentinel_password = "sentinel-test-password";

    sentinel_setup() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "token-broker-sentinel-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("mkdtemp");
        dir_ = pattern;
        // Either may become the other's replica after a failover: both know the password.
        // A replica's first sync starts at once (Redis 7 waits 5 s for more replicas by default).
        for (auto* s : {&master, &replica}) {
            s->command({"CONFIG", "SET", "masterauth", s->password()});
            s->command({"CONFIG", "SET", "repl-diskless-sync-delay", "0"});
        }
        replica.command({"REPLICAOF", "127.0.0.1", std::to_string(master.port())});
        // The first sync done (the replica says so), and then a write made after it reaches the
        // replica: Redis 7 streams to a new replica only from its first ACK, up to a second later.
        const auto synced = [&] {
            const auto role = replica.command({"ROLE"});
            return role.elements.size() > 3 && role.elements[3].text == "connected";
        };
        const auto streams = [&] {
            return commands_at(master.port(), master.password(),
                               {{"SET", "sentinel-setup", "synced"}, {"WAIT", "1", "100"}})
                       .integer >= 1;
        };
        if (!testing::eventually(synced, std::chrono::seconds(20)) ||
            !testing::eventually(streams, std::chrono::seconds(20)))
            throw std::runtime_error("the replica did not sync with the master");
        for (int i = 0; i < 3; ++i)
            sentinels.push_back(std::make_unique<sentinel_process>(dir_, master_name, master.port(),
                                                                   master.password(), sentinel_password));
    }

    // Waits until a failover can happen: each sentinel knows the replica and the two other sentinels
    // (they find each other through hello messages, every 2 s). Throws when they do not within 20 s.
    void wait_ready_to_fail_over() const {
        for (const auto& s : sentinels)
            if (!testing::eventually(
                    [&] {
                        return s->command({"SENTINEL", "REPLICAS", master_name}).elements.size() == 1 &&
                               s->command({"SENTINEL", "SENTINELS", master_name}).elements.size() == 2;
                    },
                    std::chrono::seconds(20)))
                throw std::runtime_error("the sentinels did not find the replica and each other");
    }
    ~sentinel_setup() {
        sentinels.clear();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    // The port of the master sentinel `i` names now; 0 when it names none or cannot be asked.
    std::uint16_t master_port_by(std::size_t i) const {
        try {
            const auto a = sentinels[i]->command({"SENTINEL", "get-master-addr-by-name", master_name});
            return a.elements.size() == 2 ? static_cast<std::uint16_t>(std::stoi(a.elements[1].text)) : 0;
        } catch (const std::exception&) {
            return 0;
        }
    }

    // redis+sentinel://127.0.0.1:P1,.../tbmaster with `first` (ports) before the three sentinels.
    std::string url(const std::vector<std::uint16_t>& first = {}) const {
        std::string hosts;
        std::vector<std::uint16_t> ports = first;
        for (const auto& s : sentinels)
            ports.push_back(s->port());
        for (auto p : ports)
            hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
        return "redis+sentinel://" + hosts + "/" + master_name;
    }

    redis_server master;
    redis_server replica;
    std::vector<std::unique_ptr<sentinel_process>> sentinels;

private:
    std::string dir_;
};

} // namespace token_broker::test
