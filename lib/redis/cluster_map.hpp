// What a Redis Cluster client decides without I/O (CONTRACT.md section 7, "Redis that survives a
// node"; docs of the facts in REDIS-FACTS.md "Cluster"): the hash slot of a key, the map of slots to
// master nodes read from CLUSTER SLOTS, and the redirections (-MOVED, -ASK) a node answers with.
#pragma once

#include "core/error.hpp"
#include "redis/reply.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {

inline constexpr std::uint16_t cluster_slots = 16384;

// CRC16 (XMODEM) of the key's hash tag, the part between the first '{' and the next '}' when that is
// not empty, else of the whole key; modulo 16384.
std::uint16_t key_slot(std::string_view key) noexcept;

// The key a command is routed by: EVAL, EVALSHA (and their _RO forms), FCALL: the first of KEYS, or
// none when numkeys is 0; commands without keys (PUBLISH, PING, ROLE, WAIT, SCRIPT, CLUSTER, ...):
// none; any other command: its first argument. Command names in any case.
std::optional<std::string_view> command_key(std::span<const std::string> args) noexcept;

struct node_address {
    std::string host;
    std::uint16_t port = 0;
    friend bool operator==(const node_address&, const node_address&) = default;
};
std::string to_string(const node_address& a);

// Which master serves each slot.
class slot_map {
public:
    // The master of `slot`; nullptr when no node serves it (a cluster not yet fully covered).
    const node_address* master_of(std::uint16_t slot) const noexcept;
    // Every master, once each, in the order first seen.
    const std::vector<node_address>& masters() const noexcept { return masters_; }
    // Whether every slot has a master.
    bool complete() const noexcept;
    // Whether CLUSTER SLOTS listed a replica of the master of `slot` (a write there can be WAITed for).
    bool has_replicas(std::uint16_t slot) const noexcept;

    // Records that `slot` now lives on `node` (a -MOVED answer), until the next full read.
    void move(std::uint16_t slot, const node_address& node);

    // From a CLUSTER SLOTS reply: an array of [start, end, [host, port, id...], replicas...]. A
    // master's empty host means the node that answered (`asked`). Anything else is bad input:
    // errc::cache_unavailable naming what was wrong.
    static result<slot_map> read(const reply& r, const node_address& asked);

private:
    std::uint16_t index_of(const node_address& node);

    static constexpr std::uint16_t none = 0xffff;
    std::array<std::uint16_t, cluster_slots> owner_{}; // index into masters_, or none
    std::vector<node_address> masters_;
    std::vector<bool> replicated_; // by index into masters_
};

// A node's answer that sends the command elsewhere: "-MOVED <slot> <host>:<port>" (the slot moved:
// update the map, send it there) or "-ASK <slot> <host>:<port>" (being migrated: send ASKING and the
// command there, once, without changing the map). nullopt for any other reply, or one that does not
// read (a host:port without a port, a slot out of range).
struct redirect {
    enum class kind { moved, ask };
    kind what = kind::moved;
    std::uint16_t slot = 0;
    node_address to;
};
std::optional<redirect> read_redirect(const reply& r, const node_address& asked);

// Whether a node answered -TRYAGAIN (a multi-key command during a slot's migration): retry shortly.
bool is_try_again(const reply& r) noexcept;

} // namespace token_broker::redis
