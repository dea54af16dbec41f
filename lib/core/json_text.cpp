#include "core/json_text.hpp"

#include <boost/json/serializer.hpp>
#include <spdlog/common.h>

namespace token_broker {
namespace {

template <class Append>
void serialize_string(std::string_view s, Append&& append) {
    boost::json::serializer sr;
    sr.reset(boost::json::string_view(s.data(), s.size()));
    char chunk[256];
    while (!sr.done()) {
        auto part = sr.read(chunk);
        append(part.data(), part.size());
    }
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
    serialize_string(s, [&](const char* p, std::size_t n) { out.append(p, n); });
}

template <class Buffer>
void append_json_string_to(Buffer& out, std::string_view s) {
    serialize_string(s, [&](const char* p, std::size_t n) { out.append(p, p + n); });
}

template void append_json_string_to<spdlog::memory_buf_t>(spdlog::memory_buf_t&, std::string_view);

} // namespace token_broker
