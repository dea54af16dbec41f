// Callers' keys as configured (CONTRACT.md section 2): only the SHA-256 of each key is known to the
// broker. Read from auth.keys in the configuration file and from auth.keys_file, at start and on
// SIGHUP.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace boost::json {
class value;
}

namespace token_broker {

struct auth_config;

// A caller's key as configured: only its SHA-256 is known to the broker.
struct caller_key {
    std::string name;
    std::array<std::uint8_t, 32> sha256{};
    std::vector<std::string> users; // patterns: exact ids, or with '*' as a wildcard anywhere
};

// Parses a list of caller keys, as found under "auth.keys" or in a keys_file: a JSON array of objects
// {"name": non-empty and unique, "sha256": 64 hex digits, "users": array of non-empty strings, which
// may be empty}. Two keys with the same sha256 are an error too.
// `where` names the place for error messages ("auth.keys", or the keys file's name); an element's
// key is `where` followed by "[index]". Throws config_error.
std::vector<caller_key> parse_caller_keys(const boost::json::value& list, std::string_view where);

// Reads a keys_file: a JSON array of keys, or an object {"keys": [...]}. Errors name the file, e.g.
// "config: keys.json[0].sha256: ..." or "config: keys.json: keys[0].name: ...".
// Throws config_error.
std::vector<caller_key> load_keys_file(const std::filesystem::path& path);

// The caller keys with auth.keys_file read anew (for SIGHUP): the keys of the configuration file
// followed by those of the keys file, checked as at start. Throws config_error.
std::vector<caller_key> reload_caller_keys(const auth_config& auth);

// Reads auth.keys_file and appends its keys to auth.keys, setting auth.keys_from_file; a name or
// digest used in both is an error. Errors are config_error("auth.keys_file", ...). For load_config.
void load_auth_keys_file(auth_config& auth);

} // namespace token_broker
