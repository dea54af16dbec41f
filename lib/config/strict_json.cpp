#include "config/strict_json.hpp"

#include "core/json_scan.hpp"

#include <boost/json/parse.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

namespace token_broker::config_detail {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

struct file_closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

// A path as configuration keys are written: "auth.keys[2].name".
std::string dotted(const std::vector<json_step>& path) {
    std::string p;
    for (const json_step& step : path) {
        if (const auto* index = std::get_if<std::size_t>(&step)) {
            // Appended piece by piece: `"[" + std::to_string(...)` makes GCC 12 at -O3 report a
            // false -Wrestrict overlap (release preset).
            p += '[';
            p += std::to_string(*index);
            p += ']';
            continue;
        }
        if (!p.empty())
            p += '.';
        p += std::get<std::string>(step);
    }
    return p;
}

} // namespace

// Joins a file's name and a dotted key found in it: "keys.json[0].name", "keys.json: keys".
std::string key_in_file(const std::string& file, const std::string& key) {
    if (file.empty())
        return key;
    if (key.empty() || key.front() == '[')
        return file + key;
    return file + ": " + key;
}

// Parses the JSON text of the file `file`. Errors name its line and column but never quote the
// text, which may hold a secret. Keys are reported relative to `key_root` (see key_in_file).
json::value parse_json(std::string_view text, const std::string& file, const std::string& key_root) {
    // RFC 8259 section 8.1 lets a parser ignore a UTF-8 byte-order mark, which some editors write.
    // One of UTF-16 or UTF-32 says the file is not UTF-8 at all.
    if (text.starts_with("\xEF\xBB\xBF"))
        text.remove_prefix(3);
    else if (text.starts_with("\xFE\xFF") || text.starts_with("\xFF\xFE") ||
             text.starts_with(std::string_view("\0\0\xFE\xFF", 4)))
        throw config_error(file, "starts with a UTF-16 or UTF-32 byte-order mark: save it as UTF-8");
    // A repeated key is as likely a mistake as a misspelt one, and json::parse would keep the last
    // value silently.
    const json_scan scan = scan_json(text);
    if (scan.repeated)
        throw config_error(key_in_file(key_root, dotted(*scan.repeated)), "repeated key");
    const std::size_t consumed = scan.consumed;
    std::string error;
    if (scan.error)
        error = scan.error.message();
    else if (consumed < text.size())
        error = "unexpected text after the JSON value";
    if (!error.empty()) {
        const std::string_view before = text.substr(0, consumed);
        const auto line = std::count(before.begin(), before.end(), '\n') + 1;
        const auto line_start = before.rfind('\n');
        const auto column = consumed - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
        throw config_error(file, "invalid JSON: line " + std::to_string(line) + ", column " +
                                     std::to_string(column) + ": " + error);
    }
    return json::parse(text); // cannot fail: the text was just checked
}

// Reads the whole file at `path` into `content`. On failure sets `ec` (ENOENT, EACCES, EISDIR...).
bool try_read_file(const fs::path& path, std::string& content, std::error_code& ec) {
    std::unique_ptr<std::FILE, file_closer> file(std::fopen(path.c_str(), "rb"));
    if (!file) {
        ec.assign(errno, std::generic_category());
        return false;
    }
    content.clear();
    char buffer[8192];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get()))
        content.append(buffer, n);
    if (std::ferror(file.get())) {
        ec.assign(errno, std::generic_category());
        return false;
    }
    return true;
}

// Throws config_error(key, "cannot read <path>: <reason>") unless the file at `path` can be read.
void check_readable_file(const std::string& path, const std::string& key) {
    std::string content;
    std::error_code ec;
    if (!try_read_file(path, content, ec))
        throw config_error(key, "cannot read " + path + ": " + ec.message());
}

std::string join_key(const std::string& parent, std::string_view name) {
    return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// Reads the members of the object `v` with `fields`; any other member is an unknown key.
void read_object(const json::value& v, const std::string& key, std::initializer_list<field> fields) {
    const json::object* object = v.if_object();
    if (!object)
        throw config_error(key, "must be an object");
    for (const auto& member : *object) {
        const std::string_view name(member.key().data(), member.key().size());
        const std::string member_key = join_key(key, name);
        const auto f =
            std::find_if(fields.begin(), fields.end(), [&](const field& f) { return f.name == name; });
        if (f == fields.end())
            throw config_error(member_key, "unknown key");
        f->read(member.value(), member_key);
    }
}

std::string read_string(const json::value& v, const std::string& key) {
    if (const json::string* s = v.if_string())
        return std::string(s->data(), s->size());
    throw config_error(key, "must be a string");
}

bool read_bool(const json::value& v, const std::string& key) {
    if (const bool* b = v.if_bool())
        return *b;
    throw config_error(key, "must be true or false");
}

std::int64_t read_integer(const json::value& v, const std::string& key, const integer_rule& rule) {
    std::optional<std::int64_t> number;
    bool above_max = false;
    if (const std::int64_t* n = v.if_int64())
        number = *n;
    else if (const std::uint64_t* u = v.if_uint64()) {
        if (*u <= std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            number = std::int64_t(*u);
        else
            above_max = true;
    }
    above_max = above_max || (number && *number > rule.max);
    if (above_max && !rule.too_large.empty())
        throw config_error(key, std::string(rule.too_large));
    if (!number || above_max || *number < rule.min)
        throw config_error(key, std::string(rule.reason));
    return *number;
}

bool is_visible_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

} // namespace token_broker::config_detail
