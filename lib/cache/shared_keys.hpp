// The names of the shared tier's Redis keys (the layout is in shared_redis.hpp): each user's keys
// named after a keyed hash of the user id (redis::sealer::key_name), under the current encryption key
// and, during a rotation, the previous one.
#pragma once

#include "cache/token_cache.hpp"
#include "redis/sealed.hpp"

#include <optional>
#include <string>
#include <vector>

namespace token_broker {

// One cache key's Redis keys, and its user's.
struct shared_key_names {
    std::string entry, lock, error;                  // the cache key's own
    std::string unknown, index, generation, revoked; // its user's
};

class shared_key_space {
public:
    // Keeps a reference to `sealer`, which must outlive it.
    shared_key_space(std::string prefix, const redis::sealer& sealer);

    const std::string& prefix() const noexcept { return prefix_; }

    // Under the current encryption key. An email's keys are named after its lower-cased form, so that
    // a forget of any spelling removes them (core/user_identity.hpp).
    shared_key_names names_of(const cache_key& key) const;
    // Under the previous encryption key, during a rotation; nullopt otherwise.
    std::optional<shared_key_names> previous_names_of(const cache_key& key) const;

    // A user's keys under every encryption key in use (the current one first), as a forget needs
    // them: the generations, the sets of entries, the unknown-user entries and the revoked marks.
    struct user_keys {
        std::vector<std::string> generations, sets, unknown, revoked;
    };
    user_keys user_keys_of(const std::string& user_id) const;

private:
    std::string prefix_;
    const redis::sealer& sealer_;
};

} // namespace token_broker
