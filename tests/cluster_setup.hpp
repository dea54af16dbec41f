// A Redis Cluster for a test (CONTRACT.md section 7, "Redis that survives a node"; REDIS-FACTS.md,
// "Cluster"): three redis-server masters on loopback (tests/redis_server.hpp, each with
// --cluster-enabled and a node timeout of 2 s) made one cluster with `redis-cli --cluster create
// ... --cluster-replicas 0`, ready (cluster_state:ok on every node) when constructed. Besides the
// servers: what a test asks of the cluster by hand: where a slot lives, every key it holds, and a
// slot moved from one master to another the way `redis-cli --cluster reshard` moves it (SETSLOT
// IMPORTING and MIGRATING, MIGRATE of every key, SETSLOT NODE on every master), in steps, so that a
// test can run traffic while the nodes answer -ASK and then -MOVED. Header-only.
#pragma once

#include "redis_server.hpp"
#include "test_support.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace token_broker::test {

class cluster_setup {
public:
    static constexpr const char* password = "cluster-test-password";

    // Starts the masters (and `replicas` replicas of each, which redis-cli pairs with them: nodes
    // holds the masters first) and makes them a cluster; throws std::runtime_error when it does not
    // become ok within 20 s.
    explicit cluster_setup(int masters = 3, int replicas = 0) {
        std::string create = "redis-cli --no-auth-warning -a " + std::string(password) + " --cluster create";
        for (int i = 0; i < masters * (1 + replicas); ++i) {
            nodes.push_back(std::make_unique<redis_server>(
                std::nullopt, password,
                std::vector<std::string>{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                         "--cluster-node-timeout", "2000", "--masterauth", password,
                                         "--repl-diskless-sync-delay", "0"}));
            create += " 127.0.0.1:" + std::to_string(nodes.back()->port());
        }
        create += " --cluster-replicas " + std::to_string(replicas) + " --cluster-yes >/dev/null 2>&1";
        if (std::system(create.c_str()) != 0)
            throw std::runtime_error("redis-cli could not create the cluster: " + create);
        if (!testing::eventually([&] { return ok(); }, std::chrono::seconds(20)))
            throw std::runtime_error("the cluster never became ok");
        // A replica that has not finished its first sync would take over from its master with nothing:
        // every master must see its replicas online.
        const auto synced = [&] {
            int online = 0;
            for (const auto& n : nodes) {
                const auto info = n->command({"INFO", "replication"}).text;
                for (auto at = info.find("state=online"); at != std::string::npos;
                     at = info.find("state=online", at + 1))
                    ++online;
            }
            return online == masters * replicas;
        };
        if (!testing::eventually(synced, std::chrono::seconds(20)))
            throw std::runtime_error("the cluster's replicas never finished their first sync");
    }

    // redis+cluster://127.0.0.1:P1,127.0.0.1:P2,... with every master as a seed (or those of `seeds`,
    // indexes into nodes).
    std::string url(std::optional<std::vector<std::size_t>> seeds = std::nullopt) const {
        std::vector<std::size_t> which;
        if (seeds) {
            which = *seeds;
        } else {
            for (std::size_t i = 0; i < nodes.size(); ++i)
                which.push_back(i);
        }
        std::string hosts;
        for (auto i : which)
            hosts +=
                (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(nodes.at(i)->port());
        return "redis+cluster://" + hosts;
    }

    // True when every running node says cluster_state:ok and knows every slot to be served.
    bool ok() const {
        for (const auto& n : nodes) {
            if (!n->running())
                continue;
            try {
                const auto info = n->command({"CLUSTER", "INFO"}).text;
                if (info.find("cluster_state:ok") == std::string::npos ||
                    info.find("cluster_slots_ok:16384") == std::string::npos)
                    return false;
            } catch (const std::exception&) {
                return false;
            }
        }
        return true;
    }

    // True when every running node says cluster_state:fail (a master is down for longer than the node
    // timeout, and nobody can take its slots over).
    bool failed() const {
        for (const auto& n : nodes)
            if (n->running() &&
                n->command({"CLUSTER", "INFO"}).text.find("cluster_state:fail") == std::string::npos)
                return false;
        return true;
    }

    const redis_server& first_running() const {
        for (const auto& n : nodes)
            if (n->running())
                return *n;
        throw std::runtime_error("no node of the cluster is running");
    }

    std::string id_of(std::size_t node) const { return nodes.at(node)->command({"CLUSTER", "MYID"}).text; }

    // The slot of `key`, as the servers compute it.
    int slot_of(const std::string& key) const {
        return static_cast<int>(first_running().command({"CLUSTER", "KEYSLOT", key}).integer);
    }

    // The index (into nodes) of the master that serves `slot`, as node `asked` (default: the first
    // running one) sees it in CLUSTER SLOTS; nullopt when it names none.
    std::optional<std::size_t> owner_of(int slot, std::optional<std::size_t> asked = std::nullopt) const {
        const auto& n = asked ? *nodes.at(*asked) : first_running();
        for (const auto& range : n.command({"CLUSTER", "SLOTS"}).elements) {
            if (range.elements.size() < 3 || slot < range.elements[0].integer ||
                slot > range.elements[1].integer)
                continue;
            const auto port = range.elements[2].elements.at(1).integer;
            for (std::size_t i = 0; i < nodes.size(); ++i)
                if (nodes[i]->port() == port)
                    return i;
        }
        return std::nullopt;
    }

    // Every key that running node `node` holds (SCAN).
    std::set<std::string> keys_of(std::size_t node) const {
        std::set<std::string> out;
        std::string cursor = "0";
        do {
            const auto r = nodes.at(node)->command({"SCAN", cursor, "COUNT", "1000"});
            if (r.elements.size() != 2)
                throw std::runtime_error("SCAN answered " + r.text);
            cursor = r.elements[0].text;
            for (const auto& k : r.elements[1].elements)
                out.insert(k.text);
        } while (cursor != "0");
        return out;
    }

    // Every key the running masters hold.
    std::set<std::string> keys() const {
        std::set<std::string> out;
        for (std::size_t i = 0; i < nodes.size(); ++i)
            if (nodes[i]->running())
                out.merge(keys_of(i));
        return out;
    }

    // The slots of `keys`.
    std::set<int> slots_of(const std::set<std::string>& keys) const {
        std::set<int> out;
        for (const auto& k : keys)
            out.insert(slot_of(k));
        return out;
    }

    // A slot moved from master `from` to master `to` in the steps of `redis-cli --cluster reshard`:
    // begin() marks it importing on `to` and migrating on `from` (from then on `from` answers -ASK for
    // a key it does not hold, and -TRYAGAIN for a command on several keys of which only some are
    // there); move_keys() migrates its keys, a few at a time; end() gives the slot to `to` on every
    // master (from then on the others answer -MOVED). Each throws std::runtime_error when a node
    // refuses.
    class slot_migration {
    public:
        slot_migration(const cluster_setup& cluster, int slot, std::size_t from, std::size_t to)
            : c_(cluster), slot_(std::to_string(slot)), from_(from), to_(to) {}

        void begin() const {
            expect_ok(c_.nodes.at(to_)->command({"CLUSTER", "SETSLOT", slot_, "IMPORTING", c_.id_of(from_)}),
                      "SETSLOT IMPORTING");
            expect_ok(c_.nodes.at(from_)->command({"CLUSTER", "SETSLOT", slot_, "MIGRATING", c_.id_of(to_)}),
                      "SETSLOT MIGRATING");
        }

        // Migrates up to `batch` keys of the slot that `from` still holds, one MIGRATE each, `pause`
        // between them; how many it found (0: the slot is empty on `from`).
        std::size_t move_keys(std::size_t batch = 10,
                              std::chrono::milliseconds pause = std::chrono::milliseconds(0)) const {
            const auto found = c_.nodes.at(from_)
                                   ->command({"CLUSTER", "GETKEYSINSLOT", slot_, std::to_string(batch)})
                                   .elements;
            for (const auto& key : found) {
                const auto r = c_.nodes.at(from_)->command({"MIGRATE", "127.0.0.1",
                                                            std::to_string(c_.nodes.at(to_)->port()), "", "0",
                                                            "5000", "AUTH", password, "KEYS", key.text});
                // NOKEY: deleted since it was listed.
                if (!r.is_status("OK") && !r.is_status("NOKEY"))
                    throw std::runtime_error("MIGRATE of " + key.text + " answered " + r.text);
                if (pause.count() > 0)
                    std::this_thread::sleep_for(pause);
            }
            return found.size();
        }

        // Moves every key left, then gives the slot to `to` (`to` first, then `from`, then the others,
        // as redis-cli does). A key may still come to `from` between the last MIGRATE and SETSLOT (a
        // command on a key it holds): SETSLOT then refuses, and the keys are moved again.
        void end() const {
            for (int attempt = 0;; ++attempt) {
                while (move_keys(100) > 0) {
                }
                const auto id = c_.id_of(to_);
                expect_ok(c_.nodes.at(to_)->command({"CLUSTER", "SETSLOT", slot_, "NODE", id}),
                          "SETSLOT NODE (to)");
                const auto r = c_.nodes.at(from_)->command({"CLUSTER", "SETSLOT", slot_, "NODE", id});
                if (r.is_status("OK"))
                    break;
                if (attempt == 10)
                    throw std::runtime_error("SETSLOT NODE on the old master answered " + r.text);
            }
            for (std::size_t i = 0; i < c_.nodes.size(); ++i)
                if (i != from_ && i != to_ && c_.nodes[i]->running())
                    expect_ok(c_.nodes[i]->command({"CLUSTER", "SETSLOT", slot_, "NODE", c_.id_of(to_)}),
                              "SETSLOT NODE (others)");
        }

    private:
        static void expect_ok(const redis::reply& r, const std::string& what) {
            if (!r.is_status("OK"))
                throw std::runtime_error(what + " answered " + r.text);
        }

        const cluster_setup& c_;
        std::string slot_;
        std::size_t from_;
        std::size_t to_;
    };

    std::vector<std::unique_ptr<redis_server>> nodes;
};

} // namespace token_broker::test
