#include "redis/pipeline.hpp"

#include <utility>

namespace token_broker::redis {
namespace {

result<reply> failed_with(const std::string& why) {
    return make_error(errc::cache_unavailable, why);
}

} // namespace

pipeline::pipeline(std::size_t max_reply_bytes) : reader_(max_reply_bytes) {}

pipeline::ticket pipeline::push(std::string request, completion done) {
    const ticket id = next_id_++;
    if (failed()) {
        done(failed_with(*failure_));
        return id;
    }
    output_ += request;
    commands_.push_back(command{id, std::move(done)});
    return id;
}

std::string pipeline::take_output() {
    sent_ = commands_.size();
    return std::exchange(output_, std::string());
}

std::optional<std::string> pipeline::received(std::string_view bytes) {
    if (failed())
        return failure_;
    if (!reader_.feed(bytes)) {
        fail("redis protocol error: " + reader_.error());
        return failure_;
    }
    // Every complete reply is taken before the caller feeds more, so that the reader holds at most
    // one reply's budget besides what one feed brings.
    while (!failed()) {
        auto next = reader_.take();
        if (!next) {
            fail(next.error().message);
            break;
        }
        if (!next->has_value())
            return std::nullopt;
        // Redis answers only what it was sent: anything else means the stream is not what it seems.
        if (sent_ == 0) {
            fail("redis sent a reply to no command");
            break;
        }
        complete_next(std::move(**next));
    }
    return failure_;
}

void pipeline::complete_next(reply r) {
    command c = std::move(commands_.front());
    commands_.pop_front();
    --sent_;
    if (c.done)
        c.done(std::move(r));
}

void pipeline::abandon(ticket t, const std::string& why) {
    for (auto& c : commands_) {
        if (c.id != t)
            continue;
        if (auto done = std::exchange(c.done, completion()))
            done(failed_with(why));
        return;
    }
}

void pipeline::fail(const std::string& why) {
    if (failed())
        return;
    failure_ = why;
    output_.clear();
    sent_ = 0;
    // Taken out first: a completion may push (and be answered at once with the failure).
    auto pending = std::exchange(commands_, {});
    for (auto& c : pending)
        if (c.done)
            c.done(failed_with(why));
}

} // namespace token_broker::redis
