// Redis Sentinel without I/O (CONTRACT.md section 7, "Redis that survives a node"; the redis.io
// "Sentinel clients" guidelines): the question a sentinel is asked and how its answer reads, the ROLE
// check on the address it gives, the +switch-master message, and the order in which sentinels are
// asked. The reconnecting link does the asking (reconnecting_link.cpp); the handshake does the ROLE
// check (link.cpp); the application listens for +switch-master.
#pragma once

#include "core/error.hpp"
#include "redis/options.hpp"
#include "redis/reply.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {

// The channel a sentinel publishes a completed failover on.
inline constexpr std::string_view switch_master_channel = "+switch-master";

// SENTINEL get-master-addr-by-name NAME.
std::vector<std::string> master_address_query(const std::string& master_name);

// The master's address from a sentinel's answer to master_address_query: [ip, port]. An error
// (errc::cache_unavailable, with a message for the log) when the sentinel does not know the master
// (nil), refused (an error reply) or answered something else.
result<address> master_address_of(const reply& r);

// Why the answer to ROLE says the server is not a master (["master", offset, replicas] is one), or
// nullopt when it is one.
std::optional<std::string> role_refusal(const reply& r);

// A +switch-master message: "NAME OLDIP OLDPORT NEWIP NEWPORT".
struct switch_master {
    std::string master_name;
    address from;
    address to;
};
// nullopt when `payload` is not one.
std::optional<switch_master> parse_switch_master(std::string_view payload);

// The sentinels in the order to ask them: as configured at first; one that answered moves to the
// front (the guidelines' advice, so that a sentinel that is down is not asked first every time).
class sentinel_list {
public:
    explicit sentinel_list(std::vector<address> sentinels) : order_(std::move(sentinels)) {}
    const std::vector<address>& in_order() const noexcept { return order_; }
    // The sentinel at `i` of in_order() answered: it moves to the front.
    void answered(std::size_t i);

private:
    std::vector<address> order_;
};

// The options of a link to the sentinel at `a`: AUTH with o.sentinel_password and no user, no SELECT,
// and TLS as o says (the same CA).
options sentinel_link_options(const options& o, const address& a);

// The options of a link to the master at `a`, as the sentinels named it: o with that host and port;
// its handshake ends with ROLE (handshake_commands).
options master_link_options(const options& o, const address& a);

} // namespace token_broker::redis
