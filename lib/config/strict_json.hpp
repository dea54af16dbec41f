// The strict JSON reader under the configuration: a file's text to a JSON value (a repeated key is
// an error; a syntax error names its line and column and never quotes the text, which may hold a
// secret), and readers of typed members whose errors name the member's full dotted key. Shared by
// lib/config and lib/auth/caller_keys; not a public interface.
#pragma once

#include "config/config.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>

namespace token_broker::config_detail {

// Reads the whole file at `path` into `content`. On failure sets `ec` (ENOENT, EACCES, EISDIR...).
bool try_read_file(const std::filesystem::path& path, std::string& content, std::error_code& ec);

// Throws config_error(key, "cannot read <path>: <reason>") unless the file at `path` can be read.
void check_readable_file(const std::string& path, const std::string& key);

// Joins a file's name and a dotted key found in it: "keys.json[0].name", "keys.json: keys".
std::string key_in_file(const std::string& file, const std::string& key);

// Parses the JSON text of the file `file`, after a UTF-8 byte-order mark if there is one. Keys are
// reported relative to `key_root` (see key_in_file). Throws config_error.
boost::json::value parse_json(std::string_view text, const std::string& file, const std::string& key_root);

// "parent.name", or "name" at the top.
std::string join_key(const std::string& parent, std::string_view name);

// How one member of an object is read: `read(value, full dotted key)`.
struct field {
    std::string_view name;
    std::function<void(const boost::json::value&, const std::string&)> read;
};

// Reads the members of the object `v` with `fields`; any other member is an unknown key.
void read_object(const boost::json::value& v, const std::string& key, std::initializer_list<field> fields);

std::string read_string(const boost::json::value& v, const std::string& key);
bool read_bool(const boost::json::value& v, const std::string& key);

struct integer_rule {
    std::int64_t min;
    std::int64_t max;
    std::string_view reason;    // for anything but an integer from min to max...
    std::string_view too_large; // ...except one above max, when this is not empty
};

std::int64_t read_integer(const boost::json::value& v, const std::string& key, const integer_rule& rule);

// Visible ASCII only: no space, no control character, nothing above 0x7e.
bool is_visible_ascii(std::string_view text);

} // namespace token_broker::config_detail
