// A value that must never reach a log: a Zoom token, an access token, a client secret, a caller key.
// Formatting one with fmt/spdlog prints "[redacted]"; the value itself is only reachable through
// reveal(), which is called where the value is put on the wire and nowhere else.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace token_broker {

class secret {
public:
    secret() = default;
    explicit secret(std::string value) : value_(std::move(value)) {}

    const std::string& reveal() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }

    friend bool operator==(const secret&, const secret&) = default;

private:
    std::string value_;
};

} // namespace token_broker

template <>
struct fmt::formatter<token_broker::secret> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const token_broker::secret&, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format("[redacted]", ctx);
    }
};
