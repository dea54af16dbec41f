// The Redis state machines alone, without a socket: the pipeline of commands (connection) and the
// subscription (subscriber), fed byte strings the way a socket would feed them, split anywhere.
#include "redis/pipeline.hpp"
#include "redis/protocol.hpp"
#include "redis/subscription.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using event_kind = subscription::event::kind;

std::string command(std::vector<std::string> args) {
    return format_command(std::span<const std::string>(args));
}

// What each command pushed was completed with, by the order they were pushed in.
struct completions {
    std::vector<std::vector<result<reply>>> by_command;

    pipeline::completion record() {
        const std::size_t i = by_command.size();
        by_command.emplace_back();
        return [this, i](result<reply> r) { by_command[i].push_back(std::move(r)); };
    }
    // How many commands have completed (each must have completed once at most).
    std::size_t done() const {
        std::size_t n = 0;
        for (const auto& c : by_command) {
            EXPECT_LE(c.size(), 1u);
            n += c.empty() ? 0 : 1;
        }
        return n;
    }
    const result<reply>& of(std::size_t i) const { return by_command.at(i).at(0); }
};

// Three commands sent together and their replies: a bulk string, an error, a status.
struct three_commands {
    pipeline p;
    completions c;
    static inline const std::string replies = "$5\r\nhello\r\n-NOSCRIPT No matching script\r\n+OK\r\n";

    three_commands() {
        p.push(command({"GET", "k"}), c.record());
        p.push(command({"EVALSHA", "abc", "0"}), c.record());
        p.push(command({"SET", "k", "v"}), c.record());
        EXPECT_EQ(p.take_output(),
                  command({"GET", "k"}) + command({"EVALSHA", "abc", "0"}) + command({"SET", "k", "v"}));
    }

    void expect_every_reply_to_its_command() const {
        ASSERT_EQ(c.done(), 3u);
        ASSERT_TRUE(c.of(0).has_value());
        EXPECT_EQ(c.of(0)->type, reply::kind::string);
        EXPECT_EQ(c.of(0)->text, "hello");
        ASSERT_TRUE(c.of(1).has_value()) << "an error reply is a reply, not a failure";
        EXPECT_TRUE(c.of(1)->is_error());
        EXPECT_EQ(c.of(1)->text, "NOSCRIPT No matching script");
        ASSERT_TRUE(c.of(2).has_value());
        EXPECT_TRUE(c.of(2)->is_status("OK"));
    }
};

TEST(RedisPipeline, RepliesSplitAtEveryByteBoundaryGoToTheirCommandsInOrder) {
    for (std::size_t split = 0; split <= three_commands::replies.size(); ++split) {
        SCOPED_TRACE("split at " + std::to_string(split));
        three_commands t;
        EXPECT_EQ(t.p.received(std::string_view(three_commands::replies).substr(0, split)), std::nullopt);
        EXPECT_EQ(t.p.received(std::string_view(three_commands::replies).substr(split)), std::nullopt);
        t.expect_every_reply_to_its_command();
        EXPECT_EQ(t.p.in_flight(), 0u);
    }
}

TEST(RedisPipeline, OneByteAtATimeCompletesEachCommandOnItsReplysLastByte) {
    three_commands t;
    const std::string_view bytes = three_commands::replies;
    const std::vector<std::size_t> reply_ends{11, 11 + 30, bytes.size()};
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        EXPECT_EQ(t.p.received(bytes.substr(i, 1)), std::nullopt);
        std::size_t complete = 0;
        while (complete < reply_ends.size() && reply_ends[complete] <= i + 1)
            ++complete;
        ASSERT_EQ(t.c.done(), complete) << "after byte " << i;
    }
    t.expect_every_reply_to_its_command();
}

TEST(RedisPipeline, RedisRefusalsAreDeliveredAsErrorReplies) {
    pipeline p;
    completions c;
    for (int i = 0; i < 3; ++i)
        p.push(command({"SET", "k", "v"}), c.record());
    p.take_output();
    EXPECT_EQ(p.received("-ERR wrong number of arguments\r\n-READONLY You can't write against a read only "
                         "replica.\r\n-OOM command not allowed\r\n"),
              std::nullopt);
    ASSERT_EQ(c.done(), 3u);
    for (std::size_t i = 0; i < 3; ++i)
        ASSERT_TRUE(c.of(i).has_value() && c.of(i)->is_error());
    EXPECT_TRUE(c.of(0)->text.starts_with("ERR"));
    EXPECT_TRUE(c.of(1)->text.starts_with("READONLY"));
    EXPECT_TRUE(c.of(2)->text.starts_with("OOM"));
    EXPECT_FALSE(p.failed());
}

TEST(RedisPipeline, AnAbandonedCommandsLateReplyIsDiscardedNotGivenToTheNext) {
    pipeline p;
    completions c;
    const auto timed_out = p.push(command({"EVAL", "lock", "0"}), c.record());
    p.push(command({"GET", "k"}), c.record());
    p.take_output();

    p.abandon(timed_out, "redis did not answer within command_timeout_ms");
    ASSERT_EQ(c.done(), 1u);
    ASSERT_FALSE(c.of(0).has_value());
    EXPECT_EQ(c.of(0).error().message, "redis did not answer within command_timeout_ms");
    EXPECT_EQ(c.of(0).error().code, errc::cache_unavailable);
    EXPECT_EQ(p.in_flight(), 2u) << "its reply is still to come";

    // Redis resumes (after a stall) and answers both, the abandoned command's reply first.
    EXPECT_EQ(p.received(":1\r\n$6\r\nmine"), std::nullopt);
    EXPECT_EQ(c.done(), 1u) << "the late reply went to nobody";
    EXPECT_EQ(p.received("!!\r\n"), std::nullopt);
    ASSERT_EQ(c.done(), 2u);
    ASSERT_TRUE(c.of(1).has_value());
    EXPECT_EQ(c.of(1)->text, "mine!!");

    p.abandon(timed_out, "again");
    EXPECT_EQ(c.by_command[0].size(), 1u) << "a command completes once";
    EXPECT_EQ(p.in_flight(), 0u);
}

TEST(RedisPipeline, AbandonAfterItsReplyDoesNothing) {
    pipeline p;
    completions c;
    const auto t = p.push(command({"PING"}), c.record());
    p.take_output();
    EXPECT_EQ(p.received("+PONG\r\n"), std::nullopt);
    p.abandon(t, "too late");
    ASSERT_EQ(c.by_command[0].size(), 1u);
    EXPECT_TRUE(c.of(0)->is_status("PONG"));
}

TEST(RedisPipeline, ADisconnectFailsEveryPendingCommandWithOneError) {
    pipeline p;
    completions c;
    const std::size_t n = 5;
    for (std::size_t i = 0; i < n; ++i)
        p.push(command({"GET", "k" + std::to_string(i)}), c.record());
    p.take_output();
    p.push(command({"GET", "not yet written"}), c.record());
    EXPECT_EQ(p.received("+first\r\n"), std::nullopt);

    p.fail("redis closed the connection");
    ASSERT_EQ(c.done(), n + 1);
    EXPECT_TRUE(c.of(0).has_value());
    for (std::size_t i = 1; i <= n; ++i) {
        ASSERT_FALSE(c.of(i).has_value());
        EXPECT_EQ(c.of(i).error().message, "redis closed the connection");
    }
    EXPECT_EQ(p.in_flight(), 0u);
    EXPECT_EQ(p.take_output(), "") << "nothing left to write";

    // Later: the first reason stays, and whatever comes fails at once with it.
    p.fail("another reason");
    EXPECT_EQ(p.failure(), "redis closed the connection");
    p.push(command({"GET", "late"}), c.record());
    ASSERT_EQ(c.done(), n + 2);
    EXPECT_EQ(c.of(n + 1).error().message, "redis closed the connection");
    EXPECT_EQ(p.received("+OK\r\n"), "redis closed the connection");
}

TEST(RedisPipeline, AReplyToNoCommandFailsTheLink) {
    {
        pipeline p;
        EXPECT_EQ(p.received("+OK\r\n"), "redis sent a reply to no command");
        EXPECT_TRUE(p.failed());
    }
    {
        // A command queued but not handed to the socket cannot have been answered.
        pipeline p;
        completions c;
        p.push(command({"GET", "k"}), c.record());
        EXPECT_EQ(p.received("$1\r\nx\r\n"), "redis sent a reply to no command");
        ASSERT_EQ(c.done(), 1u);
        EXPECT_FALSE(c.of(0).has_value());
    }
    {
        // One reply too many, in the same piece as the expected one.
        pipeline p;
        completions c;
        p.push(command({"GET", "k"}), c.record());
        p.take_output();
        EXPECT_EQ(p.received("+OK\r\n+EXTRA\r\n"), "redis sent a reply to no command");
        ASSERT_EQ(c.done(), 1u);
        EXPECT_TRUE(c.of(0).has_value());
    }
}

// Nested deeper than hiredis's reader accepts.
std::string too_deep() {
    std::string deep;
    for (int i = 0; i < 20; ++i)
        deep += "*1\r\n";
    return deep + ":1\r\n";
}

TEST(RedisPipeline, GarbageIsAProtocolErrorThatFailsEveryCommand) {
    for (std::string garbage : {"?what\r\n"s, "HTTP/1.1 400 Bad Request\r\n"s, "$abc\r\n"s, too_deep()}) {
        SCOPED_TRACE(garbage);
        pipeline p;
        completions c;
        p.push(command({"GET", "a"}), c.record());
        p.push(command({"GET", "b"}), c.record());
        p.take_output();
        const auto failure = p.received("+OK\r\n" + garbage);
        ASSERT_TRUE(failure.has_value());
        EXPECT_TRUE(failure->starts_with("redis protocol error")) << *failure;
        ASSERT_EQ(c.done(), 2u);
        EXPECT_TRUE(c.of(0).has_value()) << "a reply before the garbage is still delivered";
        ASSERT_FALSE(c.of(1).has_value());
        EXPECT_EQ(c.of(1).error().message, *failure);
        EXPECT_EQ(p.received("+OK\r\n"), failure) << "a protocol error is permanent";
    }
}

TEST(RedisPipeline, AReplyOverTheBudgetFailsTheLink) {
    const std::size_t budget = 256;
    const std::vector<std::string> too_large{
        "$1000\r\n" + std::string(300, 'x'), // a string whose bytes pass the budget while they arrive
        "*100000000\r\n",                    // an array header announcing more than could fit
        "*2\r\n$200\r\n" + std::string(200, 'y') + "\r\n$200\r\n" + std::string(200, 'z') + "\r\n",
    };
    for (const auto& reply_bytes : too_large) {
        SCOPED_TRACE(reply_bytes.substr(0, 12));
        pipeline p(budget);
        completions c;
        p.push(command({"GET", "small"}), c.record());
        p.push(command({"GET", "large"}), c.record());
        p.take_output();
        std::optional<std::string> failure;
        // Fed in small pieces, as a socket would: the budget holds whatever the split.
        const std::string bytes = "$100\r\n" + std::string(100, 's') + "\r\n" + reply_bytes;
        for (std::size_t i = 0; i < bytes.size() && !failure; i += 50)
            failure = p.received(std::string_view(bytes).substr(i, 50));
        ASSERT_TRUE(failure.has_value());
        EXPECT_NE(failure->find("redis.max_reply_bytes"), std::string::npos) << *failure;
        ASSERT_EQ(c.done(), 2u);
        EXPECT_TRUE(c.of(0).has_value()) << "a reply within the budget passes";
        EXPECT_FALSE(c.of(1).has_value());
    }
}

TEST(RedisPipeline, ACompletionMayPushTheNextCommand) {
    pipeline p;
    completions c;
    auto second = c.record();
    p.push(command({"EVALSHA", "abc", "0"}), [&](result<reply> r) {
        // As script::run does: NOSCRIPT answered with EVAL.
        EXPECT_TRUE(r.has_value() && r->is_error());
        p.push(command({"EVAL", "return 1", "0"}), std::move(second));
    });
    p.take_output();
    EXPECT_EQ(p.received("-NOSCRIPT No matching script\r\n"), std::nullopt);
    EXPECT_EQ(p.take_output(), command({"EVAL", "return 1", "0"}));
    EXPECT_EQ(p.received(":1\r\n"), std::nullopt);
    ASSERT_EQ(c.done(), 1u);
    EXPECT_EQ(c.of(0)->integer, 1);
}

// The subscription: what SUBSCRIBE a b, then a publication on each, make Redis send.
const std::string subscribed_stream = "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
                                      "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
                                      "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nfirst\r\n"
                                      "*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$7\r\nsec\r\nnd\r\n";

using clock = subscription::clock;
const clock::time_point t0 = clock::time_point() + 1h;

std::vector<subscription::event> feed(subscription& s, std::string_view bytes,
                                      std::optional<std::string>* failure = nullptr) {
    auto out = s.received(bytes);
    if (failure)
        *failure = out.failure;
    else
        EXPECT_EQ(out.failure, std::nullopt);
    return out.events;
}

void expect_subscribed_then_messages(const std::vector<subscription::event>& got) {
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[0].type, event_kind::subscribed);
    EXPECT_EQ(got[1].type, event_kind::alive);
    EXPECT_EQ(got[1].sent, t0) << "alive as of when SUBSCRIBE was sent";
    EXPECT_EQ(got[2].type, event_kind::message);
    EXPECT_EQ(got[2].channel, "a");
    EXPECT_EQ(got[2].payload, "first");
    EXPECT_EQ(got[3].type, event_kind::message);
    EXPECT_EQ(got[3].channel, "b");
    EXPECT_EQ(got[3].payload, "sec\r\nnd");
}

TEST(RedisSubscription, ConfirmationsAndMessagesSplitAtEveryByteBoundary) {
    for (std::size_t split = 0; split <= subscribed_stream.size(); ++split) {
        SCOPED_TRACE("split at " + std::to_string(split));
        subscription s({"a", "b"});
        EXPECT_EQ(s.subscribe(t0), command({"SUBSCRIBE", "a", "b"}));
        auto got = feed(s, std::string_view(subscribed_stream).substr(0, split));
        EXPECT_EQ(s.subscribed(), split >= subscribed_stream.find("*3\r\n$7\r\nmessage"));
        auto rest = feed(s, std::string_view(subscribed_stream).substr(split));
        got.insert(got.end(), rest.begin(), rest.end());
        expect_subscribed_then_messages(got);
        EXPECT_TRUE(s.subscribed());
    }
}

TEST(RedisSubscription, OneByteAtATime) {
    subscription s({"a", "b"});
    s.subscribe(t0);
    std::vector<subscription::event> got;
    for (char byte : subscribed_stream) {
        auto more = feed(s, std::string_view(&byte, 1));
        got.insert(got.end(), more.begin(), more.end());
    }
    expect_subscribed_then_messages(got);
}

TEST(RedisSubscription, APongProvesTheLinkAliveWhenItsPingWasSentWithMessagesBetween) {
    subscription s({"a"});
    s.subscribe(t0);
    feed(s, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    ASSERT_TRUE(s.subscribed());

    const auto t1 = t0 + 1s;
    EXPECT_EQ(s.ping(t1), command({"PING"}));
    EXPECT_EQ(s.ping(t1 + 1s), std::nullopt) << "a PING still unanswered: the link is dead or half-open";

    const auto got = feed(s, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"
                             "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                             "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\ny\r\n");
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].type, event_kind::message);
    EXPECT_EQ(got[1].type, event_kind::alive);
    EXPECT_EQ(got[1].sent, t1);
    EXPECT_EQ(got[2].type, event_kind::message);
    EXPECT_EQ(got[2].payload, "y");

    const auto t2 = t1 + 2s;
    ASSERT_TRUE(s.ping(t2).has_value()) << "answered: the next PING may go";
    const auto pong = feed(s, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    ASSERT_EQ(pong.size(), 1u);
    EXPECT_EQ(pong[0].sent, t2);
}

TEST(RedisSubscription, APongForNoPingIsAProtocolError) {
    subscription s({"a"});
    s.subscribe(t0);
    std::optional<std::string> failure;
    feed(s, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n", &failure);
    EXPECT_EQ(failure, "redis answered a PING that was not sent");
}

TEST(RedisSubscription, AnErrorReplyIsARefusal) {
    subscription s({"a"});
    s.subscribe(t0);
    const auto out = s.received("-NOPERM this user has no permissions to access the 'a' channel\r\n");
    EXPECT_TRUE(out.refused);
    ASSERT_TRUE(out.failure.has_value());
    EXPECT_EQ(*out.failure,
              "SUBSCRIBE refused: NOPERM this user has no permissions to access the 'a' channel");
    EXPECT_FALSE(s.subscribed());
    EXPECT_TRUE(out.events.empty());
}

TEST(RedisSubscription, UnexpectedRepliesAreProtocolErrors) {
    const std::vector<std::string> unexpected{
        "+OK\r\n",
        ":1\r\n",
        "$7\r\nmessage\r\n",
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n",
        "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n$1\r\nx\r\n", // a channel not subscribed to
        "*3\r\n$9\r\nsubscribe\r\n$5\r\nother\r\n:1\r\n",    // a confirmation not asked for
        "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n:1\r\n",          // a payload that is not a string
        "*4\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n$1\r\ny\r\n",
        "*2\r\n$9\r\nsubscribe\r\n$1\r\na\r\n",
        "*-1\r\n",
        "?garbage\r\n",
    };
    for (const auto& bytes : unexpected) {
        SCOPED_TRACE(bytes);
        subscription s({"a"});
        s.subscribe(t0);
        auto out = s.received(bytes);
        ASSERT_TRUE(out.failure.has_value());
        EXPECT_FALSE(out.refused);
        EXPECT_TRUE(out.events.empty());
        // Permanent: what follows is not read.
        out = s.received("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        EXPECT_TRUE(out.failure.has_value());
        EXPECT_TRUE(out.events.empty());
        EXPECT_FALSE(s.subscribed());
    }
}

TEST(RedisSubscription, AReplyBeforeSubscribeIsAProtocolError) {
    subscription s({"a"});
    std::optional<std::string> failure;
    feed(s, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", &failure);
    EXPECT_EQ(failure, "redis sent a reply to no command");
}

TEST(RedisSubscription, AMessageOverTheBudgetFailsTheLink) {
    subscription s({"a"}, 1024);
    s.subscribe(t0);
    feed(s, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    std::optional<std::string> failure;
    const auto got =
        feed(s, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5000\r\n" + std::string(1100, 'x'), &failure);
    EXPECT_TRUE(got.empty());
    ASSERT_TRUE(failure.has_value());
    EXPECT_NE(failure->find("redis.max_reply_bytes"), std::string::npos) << *failure;
}

TEST(RedisSubscription, EventsBeforeAFailureAreStillDelivered) {
    subscription s({"a"});
    s.subscribe(t0);
    std::optional<std::string> failure;
    const auto got = feed(s,
                          "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
                          "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$4\r\nlast\r\n"
                          "+garbage\r\n",
                          &failure);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[2].payload, "last");
    EXPECT_TRUE(failure.has_value());
}

} // namespace
} // namespace token_broker::redis
