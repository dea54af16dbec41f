#include "redis/subscription.hpp"

#include <stdexcept>
#include <utility>

namespace token_broker::redis {
namespace {

bool is_string(const reply& r) noexcept {
    return r.type == reply::kind::string;
}

// [kind, ...] with `size` elements, the first a string: the shape of every push in SUBSCRIBE mode.
bool is_push(const reply& r, std::size_t size, std::string_view kind) {
    return r.type == reply::kind::array && r.elements.size() == size && is_string(r.elements[0]) &&
           r.elements[0].text == kind;
}

std::string command(std::string_view name, const std::vector<std::string>& args) {
    std::vector<std::string_view> c{name};
    c.insert(c.end(), args.begin(), args.end());
    return format_command(std::span<const std::string_view>(c));
}

} // namespace

subscription::subscription(std::vector<std::string> channels, std::size_t max_reply_bytes)
    : reader_(max_reply_bytes), channels_(std::move(channels)), known_(channels_.begin(), channels_.end()) {
    if (channels_.empty())
        throw std::invalid_argument("a redis subscription needs at least one channel");
}

std::string subscription::subscribe(clock::time_point now) {
    subscribe_sent_ = true;
    subscribe_time_ = now;
    unconfirmed_ = known_;
    return command("SUBSCRIBE", channels_);
}

std::optional<std::string> subscription::ping(clock::time_point now) {
    if (!pings_.empty())
        return std::nullopt;
    pings_.push_back(now);
    static const std::string ping_command = command("PING", {});
    return ping_command;
}

subscription::outcome subscription::received(std::string_view bytes) {
    outcome out;
    if (failure_) {
        out.failure = failure_;
        out.refused = refused_;
        return out;
    }
    if (!reader_.feed(bytes)) {
        fail(out, "redis protocol error: " + reader_.error());
        return out;
    }
    // Every complete reply is taken before more is fed: the reader holds at most one reply's budget.
    for (;;) {
        auto next = reader_.take();
        if (!next) {
            fail(out, next.error().message);
            return out;
        }
        if (!next->has_value() || !interpret(**next, out))
            return out;
    }
}

bool subscription::interpret(const reply& r, outcome& out) {
    if (!subscribe_sent_) {
        fail(out, "redis sent a reply to no command");
        return false;
    }
    if (r.is_error()) {
        fail(out, "SUBSCRIBE refused: " + r.text, true);
        return false;
    }
    if (is_push(r, 3, "message") && is_string(r.elements[1]) && is_string(r.elements[2])) {
        if (!known_.contains(r.elements[1].text)) {
            fail(out, "redis sent a publication on a channel not subscribed to");
            return false;
        }
        out.events.push_back(event{event::kind::message, r.elements[1].text, r.elements[2].text, {}});
        return true;
    }
    if (is_push(r, 3, "subscribe") && is_string(r.elements[1]) && r.elements[2].type == reply::kind::integer)
        return confirmed(r, out);
    if (is_push(r, 2, "pong"))
        return ponged(out);
    fail(out, "redis sent something else than a publication");
    return false;
}

bool subscription::confirmed(const reply& r, outcome& out) {
    const std::string& channel = r.elements[1].text;
    if (!known_.contains(channel)) {
        fail(out, "redis confirmed a channel not asked for");
        return false;
    }
    // A channel named twice is confirmed twice: only the first counts.
    if (unconfirmed_.erase(channel) == 1 && unconfirmed_.empty()) {
        out.events.push_back(event{event::kind::subscribed, {}, {}, {}});
        out.events.push_back(event{event::kind::alive, {}, {}, subscribe_time_});
    }
    return true;
}

bool subscription::ponged(outcome& out) {
    if (pings_.empty()) {
        fail(out, "redis answered a PING that was not sent");
        return false;
    }
    out.events.push_back(event{event::kind::alive, {}, {}, pings_.front()});
    pings_.pop_front();
    return true;
}

void subscription::fail(outcome& out, std::string why, bool refused) {
    failure_ = why;
    refused_ = refused;
    out.failure = std::move(why);
    out.refused = refused;
}

} // namespace token_broker::redis
