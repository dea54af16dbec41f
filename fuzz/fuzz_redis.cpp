// Fuzzes the Redis state machines (redis/pipeline.hpp, redis/subscription.hpp) with the input as
// what Redis sends: byte 0 chooses the size of the pieces it is fed in (1 to 64 bytes, as reads of a
// socket would bring it), byte 1 which of the 8 commands sent are abandoned (their callers timed
// out), the rest are the bytes. Each machine is fed the bytes twice, whole and in pieces.
//
// Besides the sanitizers, each input is checked against what the headers promise:
// - the pipeline completes every command exactly once; replies go to commands in the order they
//   were sent, never to an abandoned one; once it reports a failure, every command has completed and
//   it stays failed;
// - the subscription reports `subscribed` at most once, publications only on the channels asked
//   for, `alive` only for the SUBSCRIBE (right after `subscribed`) and for the PING sent, once each;
//   after a failure it reports nothing more;
// - both see the same thing whole and in pieces, unless the reply budget ran out (the budget counts
//   the bytes of a reply not yet parsed, so where it runs out depends on the pieces): then what one
//   delivered before its failure is where the other began.
#include "redis/pipeline.hpp"
#include "redis/protocol.hpp"
#include "redis/subscription.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace token_broker;
using namespace token_broker::redis;

constexpr std::size_t budget = 4096;
constexpr std::size_t commands = 8;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "fuzz_redis: broken promise: %s\n", what);
        std::abort();
    }
}

// What a machine delivered, in order, and how it ended.
struct run {
    std::vector<std::string> delivered;
    std::optional<std::string> failure;

    bool over_budget() const { return failure && failure->find("max_reply_bytes") != std::string::npos; }
};

// Feeds `bytes` to `received` in pieces of `piece` bytes until it reports a failure.
template <class Feed>
std::optional<std::string> feed(std::string_view bytes, std::size_t piece, Feed received) {
    for (std::size_t at = 0; at < bytes.size(); at += piece)
        if (auto failure = received(bytes.substr(at, piece)))
            return failure;
    return received(std::string_view());
}

std::string describe(const reply& r) {
    std::string out =
        std::to_string(static_cast<int>(r.type)) + ":" + r.text + ":" + std::to_string(r.integer);
    for (const auto& e : r.elements)
        out += "[" + describe(e) + "]";
    return out;
}

run drive_pipeline(std::string_view bytes, std::size_t piece, std::uint8_t abandoned) {
    pipeline p(budget);
    run out;
    std::array<int, commands> completed{};
    std::array<pipeline::ticket, commands> tickets{};
    std::size_t last_reply = 0; // 1 + the index of the last command given a reply
    for (std::size_t i = 0; i < commands; ++i) {
        const std::vector<std::string> args{"GET", "k" + std::to_string(i)};
        tickets[i] = p.push(format_command(std::span<const std::string>(args)), [&, i](result<reply> r) {
            require(++completed[i] == 1, "a command completes once");
            if (!r)
                return;
            require((abandoned >> i & 1) == 0, "an abandoned command is given no reply");
            require(i + 1 > last_reply, "replies go to commands in order");
            last_reply = i + 1;
            out.delivered.push_back(std::to_string(i) + "=" + describe(*r));
        });
    }
    require(!p.take_output().empty(), "the commands are written");
    for (std::size_t i = 0; i < commands; ++i)
        if (abandoned >> i & 1) {
            p.abandon(tickets[i], "abandoned");
            require(completed[i] == 1, "an abandoned command completes at once");
        }
    out.failure = feed(bytes, piece, [&](std::string_view b) { return p.received(b); });
    if (out.failure) {
        require(p.failed(), "a failure reported is the pipeline's");
        require(std::all_of(completed.begin(), completed.end(), [](int n) { return n == 1; }),
                "a failure completes every command");
        require(p.received("+OK\r\n") == out.failure, "a failure is permanent");
    }
    p.fail("the end");
    require(std::all_of(completed.begin(), completed.end(), [](int n) { return n == 1; }),
            "fail() completes every command");
    require(p.in_flight() == 0, "nothing is in flight after fail()");
    return out;
}

run drive_subscription(std::string_view bytes, std::size_t piece) {
    using clock = subscription::clock;
    const auto subscribed_at = clock::time_point() + std::chrono::hours(1);
    const auto pinged_at = subscribed_at + std::chrono::seconds(1);
    subscription s({"a", "b"}, budget);
    s.subscribe(subscribed_at);
    require(s.ping(pinged_at).has_value(), "the first PING may go");
    run out;
    bool subscribed = false, subscribe_alive = false, ping_alive = false;
    out.failure = feed(bytes, piece, [&](std::string_view b) -> std::optional<std::string> {
        auto o = s.received(b);
        for (const auto& e : o.events) {
            switch (e.type) {
            case subscription::event::kind::subscribed:
                require(!subscribed, "subscribed once");
                subscribed = true;
                out.delivered.push_back("subscribed");
                break;
            case subscription::event::kind::message:
                require(e.channel == "a" || e.channel == "b", "publications on the channels asked for");
                out.delivered.push_back("message:" + e.channel + ":" + e.payload);
                break;
            case subscription::event::kind::alive:
                if (e.sent == subscribed_at) {
                    require(subscribed && !subscribe_alive && out.delivered.back() == "subscribed",
                            "the SUBSCRIBE proves the link alive once, when it is confirmed");
                    subscribe_alive = true;
                } else {
                    require(e.sent == pinged_at && !ping_alive, "a PING proves the link alive once");
                    ping_alive = true;
                }
                out.delivered.push_back("alive");
                break;
            }
        }
        require(!o.refused || o.failure, "a refusal is a failure");
        return o.failure;
    });
    require(s.subscribed() == subscribed, "subscribed() says what the events said");
    if (out.failure) {
        const auto after = s.received("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n");
        require(after.failure && after.events.empty(), "nothing after a failure");
    }
    return out;
}

// The runs saw the same thing, or one ran out of budget where the other had not yet.
void require_alike(const run& whole, const run& pieces, const char* what) {
    if (!whole.over_budget() && !pieces.over_budget()) {
        require(whole.delivered == pieces.delivered &&
                    whole.failure.has_value() == pieces.failure.has_value(),
                what);
        return;
    }
    const bool whole_shorter = whole.delivered.size() < pieces.delivered.size();
    const auto& shorter = whole_shorter ? whole : pieces;
    const auto& longer = whole_shorter ? pieces : whole;
    // Only the budget may stop one run before the other.
    require(shorter.delivered.size() == longer.delivered.size() || shorter.over_budget(), what);
    require(std::equal(shorter.delivered.begin(), shorter.delivered.end(), longer.delivered.begin()), what);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2)
        return 0;
    const std::size_t piece = 1 + data[0] % 64;
    const std::uint8_t abandoned = data[1];
    const std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);

    require_alike(drive_pipeline(bytes, bytes.size() + 1, abandoned), drive_pipeline(bytes, piece, abandoned),
                  "the pipeline sees the same whole and in pieces");
    require_alike(drive_subscription(bytes, bytes.size() + 1), drive_subscription(bytes, piece),
                  "the subscription sees the same whole and in pieces");
    return 0;
}
