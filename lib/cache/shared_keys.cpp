#include "cache/shared_keys.hpp"

#include "core/user_identity.hpp"

namespace token_broker {
namespace {

// The names of a cache key's Redis keys, from its user's name (prefix + "u:" + the keyed hash of the
// user id); the type and the ttl are not secret and follow in clear, so that a user's keys can be
// found.
shared_key_names names_from(const std::string& user, const cache_key& key) {
    const auto entry =
        user + ":" + std::string(to_string(key.type)) + ":" + (key.ttl ? std::to_string(*key.ttl) : "-");
    return {entry,          entry + ":lock", entry + ":error", user + ":unknown",
            user + ":keys", user + ":gen",   user + ":revoked"};
}

} // namespace

shared_key_space::shared_key_space(std::string prefix, const redis::sealer& sealer)
    : prefix_(std::move(prefix)), sealer_(sealer) {}

shared_key_names shared_key_space::names_of(const cache_key& key) const {
    return names_from(sealer_.key_name(prefix_, "u", user_identity(key.user_id)), key);
}

std::optional<shared_key_names> shared_key_space::previous_names_of(const cache_key& key) const {
    auto user = sealer_.previous_key_name(prefix_, "u", user_identity(key.user_id));
    if (!user)
        return std::nullopt;
    return names_from(*user, key);
}

shared_key_space::user_keys shared_key_space::user_keys_of(const std::string& user_id) const {
    // The user's keys do not depend on the cache key's type and ttl: any will do.
    const cache_key any{user_id, token_type::zak, std::nullopt};
    user_keys k;
    auto add = [&k](shared_key_names n) {
        k.generations.push_back(std::move(n.generation));
        k.sets.push_back(std::move(n.index));
        k.unknown.push_back(std::move(n.unknown));
        k.revoked.push_back(std::move(n.revoked));
    };
    add(names_of(any));
    if (auto old = previous_names_of(any))
        add(std::move(*old));
    return k;
}

} // namespace token_broker
