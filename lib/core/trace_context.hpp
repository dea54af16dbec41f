// W3C Trace Context, level 1 (CONTRACT.md section 3, "Trace context"): the trace a request belongs
// to, taken from the caller's `traceparent` when it is valid, else started here, and the
// `traceparent` that a call made for the request carries on. No I/O: the HTTP layer hands in the
// header values as received.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace token_broker {

// The parts of a valid traceparent that matter here: the trace id and the flags (lower-case hex).
struct traceparent_fields {
    std::string_view trace_id; // 32 hex digits, not all zero
    std::string_view flags;    // 2 hex digits
};

// Parses a traceparent header value as the specification says a receiver must (section 3.2 and
// its "versioning of traceparent"): version 2 lower-case hex digits other than "ff"; for version
// "00" exactly `version-traceid(32)-parentid(16)-flags(2)`, 55 characters; for a later version at
// least those 55, followed by nothing or by "-" and more (what a later version adds is ignored).
// Every hex digit lower case; neither id all zeros. std::nullopt for anything else. The views point
// into `value`.
std::optional<traceparent_fields> parse_traceparent(std::string_view value) noexcept;

// The trace of one request.
struct trace_context {
    std::string trace_id;   // 32 lower-case hex digits
    std::string flags;      // "01" when the caller's trace is sampled, else "00" (a new one too)
    std::string tracestate; // the caller's, passed on unchanged; empty for a trace started here
    bool from_caller = false;

    // Takes the caller's trace when `traceparent` is valid (and `repeated` false: two traceparent
    // headers are no trace at all, as the specification says), with `tracestate` as received;
    // otherwise starts a new trace id and drops `tracestate`. Reuses the strings' capacity.
    void adopt(std::optional<std::string_view> traceparent, bool repeated, std::string_view tracestate);

    // Starts a new trace: a random trace id, flags "00", no tracestate.
    void start_new();

    // No trace yet (an empty trace id), keeping the strings' capacity: what a request starts with
    // until its header says whether the caller sent one.
    void clear() noexcept;

    // The traceparent for a call made for this request: version 00, this trace id, a new random
    // parent id (the call's own span), these flags.
    std::string child_traceparent() const;
};

} // namespace token_broker
