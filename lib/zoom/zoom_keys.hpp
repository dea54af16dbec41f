// Where the Zoom account's shared state lives in Redis (CONTRACT.md section 7): the budget and the
// 429 block (shared_budget.hpp), the access token and its lock (shared_access_token.hpp). Their names
// start with redis.key_prefix P, then the Redis Cluster hash tag {Pzoom}: all of them share one hash
// slot, apart from the users' keys (their scripts and commands touch several of them at once: the
// token under both encryption keys' names), and with the prefix in the tag each deployment that shares
// a cluster has names, and most likely a slot, of its own.
#pragma once

#include <string>
#include <string_view>

namespace token_broker {

// P + "{" + P + "zoom}:", which every name of the Zoom account's keys starts with.
inline std::string zoom_keys_start(std::string_view key_prefix) {
    std::string start(key_prefix);
    start.append("{").append(key_prefix).append("zoom}:");
    return start;
}

} // namespace token_broker
