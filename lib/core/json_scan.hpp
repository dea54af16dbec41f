// Reading JSON text more strictly than boost::json::parse does, with Boost.JSON's own parser: where
// a syntax error is (an offset, for messages that must not quote the text: it may hold a secret),
// and the first member name that one object holds twice, which json::parse lets pass silently
// (keeping the last value). Used by the configuration and by the POST /tokens body.
#pragma once

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace token_broker {

// One step of the path to a value in a JSON document: a member's name, or an element's index (from 0).
using json_step = std::variant<std::string, std::size_t>;

struct json_scan {
    // The first member name given twice in one object: the path to it, ending with that name (as
    // decoded: "a" and "\u0061" are the same name). Reading stopped there.
    std::optional<std::vector<json_step>> repeated;
    // Why the text is not one JSON value (a repeated name aside), or nothing.
    boost::system::error_code error;
    // How many bytes were read: all of them for a valid text; fewer before an error, or when text
    // follows the value (`error` is then not set).
    std::size_t consumed = 0;

    // One JSON value, the whole text, no name repeated.
    bool valid(std::size_t size) const noexcept { return !repeated && !error && consumed == size; }
};

// Reads `text` (standard JSON only: no comments, no trailing commas). Throws only std::bad_alloc.
json_scan scan_json(std::string_view text);

} // namespace token_broker
