#include "cache/token_answer.hpp"

#include "core/json_text.hpp"

#include <fmt/chrono.h>

#include <algorithm>
#include <charconv>

namespace token_broker {

std::string format_rfc3339(time_point t) {
    const auto secs = std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(static_cast<std::time_t>(secs)));
}

std::string render_answer_prefix(std::string_view token, token_type type, std::string_view user_id,
                                 time_point expires_at) {
    std::string out;
    out.reserve(token.size() + user_id.size() + 96);
    out.append(R"({"token":)");
    append_json_string(out, token);
    out.append(R"(,"type":")").append(to_string(type)).append(R"(","user_id":)");
    append_json_string(out, user_id);
    out.append(R"(,"expires_at":")").append(format_rfc3339(expires_at)).append(R"(","expires_in":)");
    return out;
}

void render_answer(const secret& prefix, time_point expires_at, time_point now, answer_source source,
                   std::string& body) {
    body.assign(prefix.reveal());
    const auto left =
        std::max<std::int64_t>(0, std::chrono::floor<std::chrono::seconds>(expires_at - now).count());
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, left);
    body.append(digits, end);
    switch (source) {
    case answer_source::fresh:
        body.append(R"(,"cached":false})");
        break;
    case answer_source::cached:
        body.append(R"(,"cached":true})");
        break;
    case answer_source::stale:
        body.append(R"(,"cached":true,"stale":true})");
        break;
    }
}

} // namespace token_broker
