#include "auth/caller_keys.hpp"

#include "config/config.hpp"
#include "config/strict_json.hpp"

#include <boost/algorithm/hex.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <system_error>
#include <utility>

namespace token_broker {

using namespace config_detail;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

std::array<std::uint8_t, 32> read_sha256(const json::value& v, const std::string& key) {
    const std::string text = read_string(v, key);
    if (text.size() != 64 ||
        !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
        throw config_error(key, "must be 64 hexadecimal digits: the SHA-256 of the key");
    std::array<std::uint8_t, 32> digest{};
    boost::algorithm::unhex(text.begin(), text.end(), digest.begin());
    return digest;
}

// Patterns hold visible ASCII only, as user ids do (CONTRACT.md section 3): one with anything else
// could never match.
std::vector<std::string> read_user_patterns(const json::value& v, const std::string& key) {
    const json::array* list = v.if_array();
    if (!list)
        throw config_error(key, "must be an array of user ids or patterns");
    std::vector<std::string> users;
    for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string element_key = key + "[" + std::to_string(i) + "]";
        const json::string* user = (*list)[i].if_string();
        if (!user || user->empty())
            throw config_error(element_key, "must be a non-empty string");
        if (!is_visible_ascii(*user))
            throw config_error(element_key, "must hold only visible ASCII characters (no spaces or control "
                                            "characters): no user id holds anything else");
        users.emplace_back(user->data(), user->size());
    }
    return users;
}

} // namespace

std::vector<caller_key> parse_caller_keys(const json::value& list, std::string_view where) {
    const json::array* elements = list.if_array();
    if (!elements)
        throw config_error(std::string(where), "must be an array of keys");
    std::vector<caller_key> keys;
    keys.reserve(elements->size());
    for (std::size_t i = 0; i < elements->size(); ++i) {
        const std::string at = std::string(where) + "[" + std::to_string(i) + "]";
        caller_key key;
        bool has_name = false, has_sha256 = false, has_users = false;
        read_object((*elements)[i], at,
                    {
                        {"name",
                         [&](const json::value& v, const std::string& k) {
                             key.name = read_string(v, k);
                             if (key.name.empty())
                                 throw config_error(k, "must be a non-empty string");
                             if (!is_visible_ascii(key.name))
                                 throw config_error(k,
                                                    "must hold only visible ASCII characters (no spaces "
                                                    "or control characters): it is written into log lines");
                             has_name = true;
                         }},
                        {"sha256",
                         [&](const json::value& v, const std::string& k) {
                             key.sha256 = read_sha256(v, k);
                             has_sha256 = true;
                         }},
                        {"users",
                         [&](const json::value& v, const std::string& k) {
                             key.users = read_user_patterns(v, k);
                             has_users = true;
                         }},
                    });
        if (!has_name)
            throw config_error(at + ".name", "is required");
        if (!has_sha256)
            throw config_error(at + ".sha256", "is required");
        if (!has_users)
            throw config_error(at + ".users", R"(is required: [] for nobody, ["*"] for every user)");
        for (std::size_t j = 0; j < keys.size(); ++j) {
            const std::string other = std::string(where) + "[" + std::to_string(j) + "]";
            if (keys[j].name == key.name)
                throw config_error(at + ".name", "\"" + key.name + "\" is also the name of " + other);
            if (keys[j].sha256 == key.sha256)
                throw config_error(at + ".sha256", "is also the sha256 of " + other);
        }
        keys.push_back(std::move(key));
    }
    return keys;
}

std::vector<caller_key> load_keys_file(const fs::path& path) {
    const std::string file = path.string();
    std::string text;
    std::error_code ec;
    if (!try_read_file(path, text, ec))
        throw config_error(file, "cannot read: " + ec.message());
    const json::value root = parse_json(text, file, file);
    if (root.is_array())
        return parse_caller_keys(root, file);
    const json::object* object = root.if_object();
    if (!object)
        throw config_error(file, R"(must hold a JSON array of keys or an object {"keys": [...]})");
    for (const auto& member : *object) {
        if (member.key() != "keys")
            throw config_error(key_in_file(file, std::string(member.key().data(), member.key().size())),
                               "unknown key");
    }
    const json::value* keys = object->if_contains("keys");
    if (!keys)
        throw config_error(key_in_file(file, "keys"), "is required");
    return parse_caller_keys(*keys, key_in_file(file, "keys"));
}

void load_auth_keys_file(auth_config& auth) {
    std::vector<caller_key> file_keys;
    try {
        file_keys = load_keys_file(auth.keys_file);
    } catch (const config_error& e) {
        throw config_error("auth.keys_file", e.key() + ": " + e.reason());
    }
    for (const caller_key& key : file_keys) {
        for (const caller_key& other : auth.keys) {
            if (key.name == other.name)
                throw config_error("auth.keys_file", auth.keys_file + ": key name \"" + key.name +
                                                         "\" is also used in auth.keys");
            if (key.sha256 == other.sha256)
                throw config_error("auth.keys_file", auth.keys_file + ": key \"" + key.name +
                                                         "\" has the same sha256 as \"" + other.name +
                                                         "\" in auth.keys");
        }
    }
    auth.keys_from_file = file_keys.size();
    auth.keys.insert(auth.keys.end(), std::make_move_iterator(file_keys.begin()),
                     std::make_move_iterator(file_keys.end()));
}

std::vector<caller_key> reload_caller_keys(const auth_config& auth) {
    auth_config fresh = auth;
    fresh.keys.resize(auth.keys.size() - auth.keys_from_file);
    fresh.keys_from_file = 0;
    if (!fresh.keys_file.empty())
        load_auth_keys_file(fresh);
    return std::move(fresh.keys);
}

} // namespace token_broker
