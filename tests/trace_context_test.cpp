// W3C Trace Context (CONTRACT.md section 3, "Trace context"): the parser over the specification's
// valid and invalid cases, the trace a request adopts or starts, and, through a broker process
// and the simulator, the trace id in the audit and access lines and the traceparent and tracestate
// that the Zoom call carries.
#include "broker_process.hpp"
#include "core/digest.hpp"
#include "core/trace_context.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::broker_process;
using testing::client;
using testing::eventually;

const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string parent_id = "00f067aa0ba902b7";
const std::string valid = "00-" + trace_id + "-" + parent_id + "-01";

bool is_lower_hex(const std::string& s, std::size_t size) {
    return s.size() == size && s.find_first_not_of("0123456789abcdef") == std::string::npos &&
           s.find_first_not_of('0') != std::string::npos;
}

TEST(HexDigits, SixteenLowerCaseDigitsMostSignificantFirst) {
    const auto hex16 = [](std::uint64_t word) {
        std::string out(16, '?');
        write_hex16(out.data(), word);
        return out;
    };
    EXPECT_EQ(hex16(0), "0000000000000000");
    EXPECT_EQ(hex16(0x0123456789abcdefULL), "0123456789abcdef");
    EXPECT_EQ(hex16(0xfedcba9876543210ULL), "fedcba9876543210");
    EXPECT_EQ(hex16(~0ULL), "ffffffffffffffff");
    EXPECT_EQ(hex16(0xa09f10e2d3c4b5f6ULL), "a09f10e2d3c4b5f6");
    // Every digit value in every position, as the digest's own hex writer gives them.
    for (int shift = 0; shift < 64; shift += 4)
        for (std::uint64_t digit = 0; digit < 16; ++digit) {
            const std::uint64_t word = (digit << shift) | (0x5ULL << ((shift + 32) % 64));
            std::string bytes(8, '\0');
            for (int i = 0; i < 8; ++i)
                bytes[static_cast<std::size_t>(i)] = static_cast<char>(word >> (56 - 8 * i));
            EXPECT_EQ(hex16(word), lower_hex(bytes)) << shift << " " << digit;
        }
}

TEST(TraceParent, AValidOneGivesItsTraceIdAndFlags) {
    const auto f = parse_traceparent(valid);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->trace_id, trace_id);
    EXPECT_EQ(f->flags, "01");
    ASSERT_TRUE(parse_traceparent("00-" + trace_id + "-" + parent_id + "-00"));
    ASSERT_TRUE(parse_traceparent("00-" + trace_id + "-" + parent_id + "-ff"))
        << "unknown flags are no error";
}

TEST(TraceParent, ALaterVersionIsReadAsVersion00WithWhatItAddsIgnored) {
    const std::string later = "cc-" + trace_id + "-" + parent_id + "-01";
    ASSERT_TRUE(parse_traceparent(later));
    const std::string longer = later + "-what-the-future-will-be-like"; // the result points into it
    const auto f = parse_traceparent(longer);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->trace_id, trace_id);
    EXPECT_FALSE(parse_traceparent(later + ".what-the-future-will-be-like")) << "a field must follow a dash";
    EXPECT_FALSE(parse_traceparent(later + "x"));
}

// The invalid cases of the specification (section 3.2 and its test suite): each is ignored.
TEST(TraceParent, TheSpecificationsInvalidCasesAreRefused) {
    const std::string tp = trace_id, pp = parent_id;
    const std::vector<std::pair<std::string, std::string>> invalid{
        {"empty", ""},
        {"blank", "   "},
        {"version ff", "ff-" + tp + "-" + pp + "-01"},
        {"version not hex", "0x-" + tp + "-" + pp + "-01"},
        {"version upper case", "0A-" + tp + "-" + pp + "-01"},
        {"version 00 with more after it", valid + "-"},
        {"version 00 with a field after it", valid + "-what-the-future-will-be-like"},
        {"version 00 one character longer", valid + "1"},
        {"trace id one digit short", "00-" + tp.substr(1) + "-" + pp + "-01"},
        {"trace id one digit long", "00-" + tp + "0-" + pp + "-01"},
        {"parent id one digit short", "00-" + tp + "-" + pp.substr(1) + "-01"},
        {"flags one digit", "00-" + tp + "-" + pp + "-1"},
        {"flags three digits", "00-" + tp + "-" + pp + "-011"},
        {"trace id upper case", "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + pp + "-01"},
        {"parent id upper case", "00-" + tp + "-00F067AA0BA902B7-01"},
        {"flags upper case", "00-" + tp + "-" + pp + "-0A"},
        {"trace id all zero", "00-00000000000000000000000000000000-" + pp + "-01"},
        {"parent id all zero", "00-" + tp + "-0000000000000000-01"},
        {"trace id not hex", "00-4bf92f3577b34da6a3ce929d0e0e473g-" + pp + "-01"},
        {"parent id not hex", "00-" + tp + "-00f067aa0ba902bz-01"},
        {"flags not hex", "00-" + tp + "-" + pp + "-0g"},
        {"underscores for dashes", "00_" + tp + "_" + pp + "_01"},
        {"dots for dashes", "00." + tp + "." + pp + ".01"},
        {"a space inside", "00- " + tp.substr(1) + "-" + pp + "-01"},
        {"a later version too short", "cc-" + tp + "-" + pp + "-0"},
        {"a later version with upper case", "cc-" + tp + "-" + pp + "-0A"},
        {"a later version with a zero trace id", "cc-00000000000000000000000000000000-" + pp + "-01"},
    };
    for (const auto& [why, value] : invalid)
        EXPECT_FALSE(parse_traceparent(value)) << why << ": " << value;
}

TEST(TraceContext, AValidTraceparentIsAdoptedWithItsTracestate) {
    trace_context t;
    t.adopt(valid, false, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    EXPECT_TRUE(t.from_caller);
    EXPECT_EQ(t.trace_id, trace_id);
    EXPECT_EQ(t.flags, "01");
    EXPECT_EQ(t.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    t.adopt("00-" + trace_id + "-" + parent_id + "-02", false, "");
    EXPECT_EQ(t.flags, "00") << "only the sampled bit is carried on";
    t.adopt("00-" + trace_id + "-" + parent_id + "-03", false, "");
    EXPECT_EQ(t.flags, "01");
}

TEST(TraceContext, AnInvalidRepeatedOrMissingTraceparentStartsANewTraceAndDropsTracestate) {
    std::set<std::string> seen;
    for (const std::optional<std::string>& header :
         {std::optional<std::string>("ff-" + trace_id + "-" + parent_id + "-01"),
          std::optional<std::string>(valid), std::optional<std::string>()}) {
        trace_context t;
        t.adopt(header, header == valid, "congo=t61rcWkgMzE"); // the valid one is sent twice
        EXPECT_FALSE(t.from_caller);
        EXPECT_TRUE(is_lower_hex(t.trace_id, 32)) << t.trace_id;
        EXPECT_NE(t.trace_id, trace_id);
        EXPECT_EQ(t.flags, "00");
        EXPECT_EQ(t.tracestate, "");
        seen.insert(t.trace_id);
    }
    EXPECT_EQ(seen.size(), 3u) << "each new trace has an id of its own";
}

TEST(TraceContext, AChildTraceparentKeepsTheTraceIdAndFlagsWithANewParentIdEachTime) {
    trace_context t;
    t.adopt(valid, false, "");
    static const std::regex shape("00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])");
    std::set<std::string> parents;
    for (int i = 0; i < 3; ++i) {
        const auto child = t.child_traceparent();
        std::smatch m;
        ASSERT_TRUE(std::regex_match(child, m, shape)) << child;
        EXPECT_EQ(m[1], trace_id);
        EXPECT_TRUE(is_lower_hex(m[2], 16));
        EXPECT_NE(m[2], parent_id);
        EXPECT_EQ(m[3], "01");
        EXPECT_TRUE(parse_traceparent(child)) << "a child is itself valid";
        parents.insert(m[2]);
    }
    EXPECT_EQ(parents.size(), 3u);
}

// ---- through the broker ----------------------------------------------------------------------

using testing::caller_auth;

struct BrokerTrace : ::testing::Test {
    zoom_sim::simulator sim;
    std::unique_ptr<broker_process> broker;
    std::uint16_t port = 0;

    void SetUp() override {
        // Debug, for the access lines.
        broker = broker_process::start(sim, {{"log", {{"level", "debug"}}}});
        port = broker->wait_port();
        ASSERT_TRUE(eventually([&] {
            try {
                return client(port).get("/readyz").result_int() == 200;
            } catch (const std::exception&) {
                return false;
            }
        }));
    }

    // The Zoom token calls for `user`, in order.
    std::vector<zoom_sim::simulator::token_call> calls(const std::string& user) const {
        std::vector<zoom_sim::simulator::token_call> out;
        for (auto& c : sim.token_call_log())
            if (c.user == user)
                out.push_back(c);
        return out;
    }

    // The log line (as flushed so far) holding both `a` and `b`, or "" when none does yet.
    std::string line_with(const std::string& a, const std::string& b) const {
        std::istringstream lines(broker->output());
        for (std::string line; std::getline(lines, line);)
            if (line.find(a) != std::string::npos && line.find(b) != std::string::npos)
                return line;
        return {};
    }
    bool logged(const std::string& a, const std::string& b) const {
        return eventually([&] { return !line_with(a, b).empty(); }, 10s);
    }
};

std::string trace_id_of(const std::string& traceparent) {
    return traceparent.size() == 55 ? traceparent.substr(3, 32) : std::string();
}

TEST_F(BrokerTrace, AValidTraceparentIsLoggedAndCarriedToZoomWithANewParentIdAndTheTracestate) {
    const auto r = client(port).get("/token/jdoe@example.com", caller_auth + "traceparent: " + valid +
                                                                   "\r\ntracestate: congo=t61rcWkgMzE\r\n"
                                                                   "tracestate: rojo=00f067aa0ba902b7\r\n"
                                                                   "X-Request-Id: traced-1\r\n");
    ASSERT_EQ(r.result_int(), 200) << r.body();
    const auto zoom = calls("jdoe@example.com");
    ASSERT_EQ(zoom.size(), 1u);
    EXPECT_EQ(trace_id_of(zoom[0].traceparent), trace_id) << zoom[0].traceparent;
    EXPECT_TRUE(parse_traceparent(zoom[0].traceparent)) << zoom[0].traceparent;
    EXPECT_EQ(zoom[0].traceparent.find(parent_id), std::string::npos) << "the Zoom call is a span of its own";
    EXPECT_EQ(zoom[0].traceparent.substr(53), "01");
    EXPECT_EQ(zoom[0].tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");

    EXPECT_TRUE(logged("audit", "request_id=traced-1 trace_id=" + trace_id)) << broker->output();
    EXPECT_TRUE(logged("access request_id=traced-1", "trace_id=" + trace_id)) << broker->output();
}

TEST_F(BrokerTrace, AnInvalidTraceparentIsIgnoredAndTheNewTraceIdIsLoggedAndSentWithoutTracestate) {
    const std::string upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + parent_id + "-01";
    const auto r = client(port).get("/token/upper@example.com", caller_auth + "traceparent: " + upper +
                                                                    "\r\ntracestate: congo=t61rcWkgMzE\r\n"
                                                                    "X-Request-Id: traced-2\r\n");
    ASSERT_EQ(r.result_int(), 200) << r.body();
    const auto zoom = calls("upper@example.com");
    ASSERT_EQ(zoom.size(), 1u);
    const auto started = trace_id_of(zoom[0].traceparent);
    EXPECT_TRUE(parse_traceparent(zoom[0].traceparent)) << zoom[0].traceparent;
    EXPECT_NE(started, trace_id);
    EXPECT_EQ(zoom[0].traceparent.substr(53), "00");
    EXPECT_EQ(zoom[0].tracestate, "") << "dropped with the invalid traceparent";
    EXPECT_TRUE(logged("audit", "request_id=traced-2 trace_id=" + started)) << broker->output();
    EXPECT_TRUE(logged("access request_id=traced-2", "trace_id=" + started)) << broker->output();
}

TEST_F(BrokerTrace, WithoutATraceparentTheRequestGetsATraceIdOfItsOwn) {
    ASSERT_EQ(
        client(port).get("/token/plain@example.com", caller_auth + "X-Request-Id: traced-3\r\n").result_int(),
        200);
    ASSERT_EQ(client(port)
                  .get("/token/plain2@example.com", caller_auth + "X-Request-Id: traced-4\r\n")
                  .result_int(),
              200);
    const auto first = calls("plain@example.com"), second = calls("plain2@example.com");
    ASSERT_EQ(first.size(), 1u);
    ASSERT_EQ(second.size(), 1u);
    const auto a = trace_id_of(first[0].traceparent), b = trace_id_of(second[0].traceparent);
    EXPECT_TRUE(is_lower_hex(a, 32)) << first[0].traceparent;
    EXPECT_NE(a, b);
    EXPECT_TRUE(logged("audit", "request_id=traced-3 trace_id=" + a)) << broker->output();
    EXPECT_TRUE(logged("audit", "request_id=traced-4 trace_id=" + b)) << broker->output();
}

TEST_F(BrokerTrace, TwoTraceparentHeadersAreNoTrace) {
    const auto r = client(port).get("/token/twice@example.com", caller_auth + "traceparent: " + valid +
                                                                    "\r\ntraceparent: " + valid + "\r\n");
    ASSERT_EQ(r.result_int(), 200) << r.body();
    const auto zoom = calls("twice@example.com");
    ASSERT_EQ(zoom.size(), 1u);
    EXPECT_NE(trace_id_of(zoom[0].traceparent), trace_id);
}

TEST_F(BrokerTrace, EveryZoomCallOfABatchCarriesTheBatchsTrace) {
    client c(port);
    const std::string body =
        R"({"requests": [{"user_id": "b1@example.com"}, {"user_id": "b2@example.com"}]})";
    c.send("POST /tokens HTTP/1.1\r\nHost: localhost\r\n" + caller_auth + "traceparent: " + valid +
           "\r\nX-Request-Id: traced-5\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body);
    const auto r = c.read();
    ASSERT_EQ(r.result_int(), 200) << r.body();
    std::set<std::string> parents;
    for (const auto* user : {"b1@example.com", "b2@example.com"}) {
        const auto zoom = calls(user);
        ASSERT_EQ(zoom.size(), 1u) << user;
        EXPECT_EQ(trace_id_of(zoom[0].traceparent), trace_id) << zoom[0].traceparent;
        parents.insert(zoom[0].traceparent.substr(36, 16));
        EXPECT_TRUE(logged("audit", "user=" + std::string(user))) << broker->output();
        EXPECT_NE(line_with("user=" + std::string(user), "trace_id=" + trace_id), "") << broker->output();
    }
    EXPECT_EQ(parents.size(), 2u) << "each Zoom call is a span of its own";
}

} // namespace
} // namespace token_broker
