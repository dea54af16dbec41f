// The names of the shared tier's Redis keys (the layout is in shared_redis.hpp): each user's keys
// named after a keyed hash of the user id (redis::sealer::key_name), under the current encryption key
// and, during a rotation, the previous one; and the keys each script is given.
//
// Hash slots (Redis Cluster): the hash in a user's names is in braces, a hash tag, so that all of one
// user's keys under one encryption key are in one slot, and each script below is given keys of that
// one slot. Under the previous encryption key the hash differs: those names are in another slot, and
// a script reaches them in a call of its own.
#pragma once

#include "cache/shared_tokens.hpp"
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

// One user's keys under one encryption key, as a forget needs them (one hash slot).
struct shared_user_keys {
    std::string generation, index, unknown, revoked;
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

    // A user's keys under every encryption key in use: the current one's, then during a rotation the
    // previous one's.
    std::vector<shared_user_keys> user_keys_of(const std::string& user_id) const;

private:
    std::string prefix_;
    const redis::sealer& sealer_;
};

// The KEYS of each script of shared_scripts.cpp, from the names above; each list is of one slot.
namespace shared_script_keys {

// The values a look reads under the current key: the entry and the unknown-user entry, and when
// `waiting` on another replica's fetch its error too.
std::vector<std::string> look_values(const shared_key_names& names, bool waiting);
// look: `values` (look_values, or none), then the lock, the generation and the revoked mark.
std::vector<std::string> look(const std::vector<std::string>& values, const shared_key_names& names);
// look_back, during a rotation: the revoked mark under the previous key, then the values there (the
// entry and the unknown-user entry).
std::vector<std::string> look_back(const shared_key_names& previous);
// store: the key written (the entry, the unknown-user entry or the error, for `written`; the entry
// when nothing is written), the fetch's lock, the generation, and for a token the set of entries.
std::vector<std::string> store(const shared_key_names& names, const std::string& lock,
                               std::optional<shared_entry::kind> written);
// forget, one call for each encryption key in use (`user`, from user_keys_of): the generation, the
// set of entries, the unknown-user entry, and for a revocation the revoked mark.
std::vector<std::vector<std::string>> forget(const std::vector<shared_user_keys>& user, bool revoke);
// reinstate, one call for each encryption key in use: the revoked mark.
std::vector<std::vector<std::string>> reinstate(const std::vector<shared_user_keys>& user);

} // namespace shared_script_keys

} // namespace token_broker
