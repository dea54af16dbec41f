// Appending JSON text to a buffer without building a boost::json::value first: used where answers and
// log lines are formatted on the hot path. The escaping itself is Boost.JSON's.
#pragma once

#include <string>
#include <string_view>

namespace token_broker {

// Appends `s` as a JSON string literal (quoted and escaped) to `out`.
void append_json_string(std::string& out, std::string_view s);

// Same, into an fmt/spdlog memory buffer.
template <class Buffer>
void append_json_string_to(Buffer& out, std::string_view s);

} // namespace token_broker
