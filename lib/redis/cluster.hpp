// A Redis Cluster (redis+cluster://, CONTRACT.md section 7 "Redis that survives a node"; the facts in
// REDIS-FACTS.md "Cluster"): one redis::connection per master, each command sent to the master of
// its key's slot (cluster_map.hpp's command_key and key_slot).
//
// The slot map comes from CLUSTER SLOTS, asked of the known masters and then the seeds in turn: at
// start, whenever a master's connection goes down (a failover moves slots), after every -MOVED, and
// every few seconds besides; until one answers, the next try waits 100 ms doubling to 5 s. Masters
// that leave the map have their connections stopped; new ones get one.
//
// A command's answer decides what comes next, within its command_timeout: -MOVED updates the map at
// once (and asks for a full one) and sends the command to the node named; -ASK sends ASKING and the
// command to the node named, once, the map unchanged; -TRYAGAIN (a multi-key command while its slot
// migrates) sends it again after a short wait. Anything else is the answer.
//
// A forget's WAIT is asked of the master of the slot written when it has replicas connected.
//
// up() is true while the map covers every slot and every master's connection is up: a cluster with
// a master unreachable is down as a whole, and the broker carries on as a lone replica (section 7).
#pragma once

#include "redis/client.hpp"
#include "redis/cluster_map.hpp"
#include "redis/options.hpp"
#include "redis/up_waiters.hpp"

#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <optional>

namespace token_broker {
class metrics;
}

namespace token_broker::redis {

class connection;

class cluster : public client, public std::enable_shared_from_this<cluster> {
public:
    // Does no I/O. o.connect_to is target::cluster and o.cluster_seeds not empty. `log` must not be
    // null. `m`, when given, counts commands (once each, redirections included) and shows
    // token_broker_redis_up; it must have had enable_redis() called and outlive the cluster. Throws
    // std::runtime_error naming redis.ca_file when o.tls and it cannot be loaded.
    static std::shared_ptr<cluster> create(net::any_io_executor ex, options o,
                                           std::shared_ptr<spdlog::logger> log, metrics* m = nullptr);
    ~cluster() override;

    void start() override;
    void stop() override;
    bool up() const noexcept override { return up_.load(std::memory_order_acquire); }
    net::awaitable<bool> wait_up(std::chrono::steady_clock::time_point until) override;
    // `f` is called on the cluster's strand.
    void on_state(std::function<void(bool up)> f) override;
    net::awaitable<result<reply>> exec(std::vector<std::string> args) override;
    net::awaitable<result<reply>> exec(std::vector<std::string> args,
                                       std::chrono::milliseconds timeout) override;
    // WAIT on the master of `key`'s slot when INFO replication there counts connected replicas.
    net::awaitable<result<void>> confirm_replicated(std::string_view key) override;
    // Every master's connection made again, and the map asked for again.
    void reconnect_now() override;

private:
    cluster(net::any_io_executor ex, options o, std::shared_ptr<spdlog::logger> log, metrics* m);

    // The connection to `node`, made and started when there is none (a node that a -MOVED or -ASK
    // names before the map does).
    std::shared_ptr<connection> node(const node_address& at);
    struct node_connection {
        node_address at;
        std::shared_ptr<connection> c;
    };
    // The master of `slot` (any master when nullopt) and the connection to it; nullopt when the map
    // names none (or there is no map yet) or no connection to it is made.
    std::optional<node_connection> route(std::optional<std::uint16_t> slot) const;
    bool has_map() const;
    net::awaitable<result<reply>> send(std::vector<std::string> args,
                                       std::chrono::steady_clock::time_point deadline);

    // The map keeper, on the strand: asks for the map when it is wanted or due, until stopped.
    static net::awaitable<void> keep_map(std::shared_ptr<cluster> self);
    // One CLUSTER SLOTS asked of the masters, then the seeds, in turn; false when none answered.
    net::awaitable<bool> refresh();
    void want_map();                    // any thread
    void update_state(std::string why); // on the strand
    net::awaitable<bool> wait_up_on_strand(std::chrono::steady_clock::time_point until);

    net::any_io_executor strand_;
    options opts_;
    std::shared_ptr<spdlog::logger> log_;
    metrics* metrics_;
    std::function<void(bool)> on_state_;
    std::atomic<bool> up_{false};
    std::atomic<bool> stopped_{false};
    std::atomic<bool> map_wanted_{true};
    bool reported_ = false;         // a state was logged at warning/info level already (on the strand)
    net::steady_timer map_timer_;   // the map keeper's sleep: cancelled by want_map()
    detail::up_waiters up_waiters_; // wait_up() calls, on the strand

    mutable std::mutex mutex_; // guards what follows
    std::shared_ptr<const slot_map> map_;
    std::vector<node_connection> nodes_; // a few: looked through, no string made per command
    // The connection to `at` in nodes_, or null; with mutex_ held.
    const std::shared_ptr<connection>* find(const node_address& at) const;
};

} // namespace token_broker::redis
