#include "core/trace_context.hpp"

#include "core/digest.hpp"

#include <cstdint>
#include <random>

namespace token_broker {
namespace {

bool all_zero(std::string_view s) noexcept {
    return s.find_first_not_of('0') == std::string_view::npos;
}

// Random ids from a per-thread SplitMix64 stream (Steele, Lea and Flood) seeded once from the
// system: ids need to be unique and evenly spread, not secret, and this runs for every request that
// brings no trace of its own. Each output is a bijective mix of a counter: no two in a stream repeat.
std::uint64_t random_word() noexcept {
    thread_local std::uint64_t state = [] {
        std::random_device rd;
        return (std::uint64_t(rd()) << 32) ^ rd();
    }();
    std::uint64_t z = (state += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
}

// `digits` (a multiple of 16) random lower-case hex digits, never all zero. Written in place, sixteen
// digits a word.
void random_hex(std::string& out, std::size_t digits) {
    out.resize(digits);
    char* const text = out.data();
    for (;;) {
        std::uint64_t any = 0;
        for (std::size_t at = 0; at < digits; at += 16) {
            const auto word = random_word();
            any |= word;
            write_hex16(text + at, word);
        }
        if (any != 0)
            return;
    }
}

constexpr std::size_t traceparent_size = 55; // 2 + 1 + 32 + 1 + 16 + 1 + 2

} // namespace

std::optional<traceparent_fields> parse_traceparent(std::string_view value) noexcept {
    if (value.size() < traceparent_size)
        return std::nullopt;
    const auto version = value.substr(0, 2);
    if (!is_lower_hex(version) || version == "ff")
        return std::nullopt;
    if (version == "00" ? value.size() != traceparent_size
                        : value.size() > traceparent_size && value[traceparent_size] != '-')
        return std::nullopt;
    if (value[2] != '-' || value[35] != '-' || value[52] != '-')
        return std::nullopt;
    const auto trace_id = value.substr(3, 32);
    const auto parent_id = value.substr(36, 16);
    const auto flags = value.substr(53, 2);
    if (!is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags))
        return std::nullopt;
    if (all_zero(trace_id) || all_zero(parent_id))
        return std::nullopt;
    return traceparent_fields{trace_id, flags};
}

void trace_context::adopt(std::optional<std::string_view> traceparent, bool repeated,
                          std::string_view state) {
    const auto fields = traceparent && !repeated ? parse_traceparent(*traceparent) : std::nullopt;
    if (!fields)
        return start_new();
    trace_id.assign(fields->trace_id);
    // Version 00 defines only the sampled bit (the lowest); the others are sent as zero (3.2.2.5).
    const char low = fields->flags[1];
    const int low_value = low <= '9' ? low - '0' : low - 'a' + 10;
    flags.assign(low_value & 1 ? "01" : "00");
    tracestate.assign(state);
    from_caller = true;
}

void trace_context::start_new() {
    random_hex(trace_id, 32);
    flags.assign("00");
    tracestate.clear();
    from_caller = false;
}

void trace_context::clear() noexcept {
    trace_id.clear();
    flags.clear();
    tracestate.clear();
    from_caller = false;
}

std::string trace_context::child_traceparent() const {
    std::string parent_id;
    random_hex(parent_id, 16);
    std::string out;
    out.reserve(traceparent_size);
    out.append("00-").append(trace_id).append("-").append(parent_id).append("-").append(flags);
    return out;
}

} // namespace token_broker
