#include "cache/shared_keys.hpp"

#include "core/user_identity.hpp"

namespace token_broker {
namespace {

// The names of a cache key's Redis keys, from its user's name (prefix + "u:{" + the keyed hash of the
// user id + "}": the hash tag); the type and the ttl are not secret and follow in clear, so that a
// user's keys can be found.
shared_key_names names_from(const std::string& user, const cache_key& key) {
    std::string entry = user;
    entry.append(":").append(to_string(key.type)).append(":");
    entry.append(key.ttl ? std::to_string(*key.ttl) : std::string("-"));
    return {entry,          entry + ":lock", entry + ":error", user + ":unknown",
            user + ":keys", user + ":gen",   user + ":revoked"};
}

shared_user_keys user_keys_from(shared_key_names n) {
    return {std::move(n.generation), std::move(n.index), std::move(n.unknown), std::move(n.revoked)};
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

std::vector<shared_user_keys> shared_key_space::user_keys_of(const std::string& user_id) const {
    // The user's keys do not depend on the cache key's type and ttl: any will do.
    const cache_key any{user_id, token_type::zak, std::nullopt};
    std::vector<shared_user_keys> keys;
    keys.push_back(user_keys_from(names_of(any)));
    if (auto old = previous_names_of(any))
        keys.push_back(user_keys_from(std::move(*old)));
    return keys;
}

namespace shared_script_keys {

std::vector<std::string> look_values(const shared_key_names& names, bool waiting) {
    if (waiting)
        return {names.entry, names.unknown, names.error};
    return {names.entry, names.unknown};
}

std::vector<std::string> look(const std::vector<std::string>& values, const shared_key_names& names) {
    std::vector<std::string> keys = values;
    keys.push_back(names.lock);
    keys.push_back(names.generation);
    keys.push_back(names.revoked);
    return keys;
}

std::vector<std::string> look_back(const shared_key_names& previous) {
    return {previous.revoked, previous.entry, previous.unknown};
}

std::vector<std::string> store(const shared_key_names& names, const std::string& lock,
                               std::optional<shared_entry::kind> written) {
    std::vector<std::string> keys{names.entry, lock, names.generation};
    if (!written)
        return keys;
    switch (*written) {
    case shared_entry::kind::token:
        keys.push_back(names.index);
        break;
    case shared_entry::kind::unknown_user:
        keys[0] = names.unknown;
        break;
    case shared_entry::kind::error:
        keys[0] = names.error;
        break;
    }
    return keys;
}

std::vector<std::vector<std::string>> forget(const std::vector<shared_user_keys>& user, bool revoke) {
    std::vector<std::vector<std::string>> calls;
    for (const auto& u : user) {
        auto& keys = calls.emplace_back(std::vector<std::string>{u.generation, u.index, u.unknown});
        if (revoke)
            keys.push_back(u.revoked);
    }
    return calls;
}

std::vector<std::vector<std::string>> reinstate(const std::vector<shared_user_keys>& user) {
    std::vector<std::vector<std::string>> calls;
    for (const auto& u : user)
        calls.push_back({u.revoked});
    return calls;
}

} // namespace shared_script_keys

} // namespace token_broker
