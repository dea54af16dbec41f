// The RESP layer alone, without a server: hiredis's reader behind redis::reader, fed the way a
// socket feeds it (in pieces split anywhere), and the command formatter.
#include "redis/link.hpp"
#include "redis/protocol.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace token_broker::redis {
namespace {

using namespace std::string_literals;
using kind = reply::kind;

// Every reply `bytes` holds, fed in two pieces split at `split`.
std::vector<reply> read_all(std::string_view bytes, std::size_t split) {
    reader r;
    std::vector<reply> out;
    auto drain = [&] {
        for (;;) {
            auto next = r.take();
            EXPECT_TRUE(next.has_value()) << next.error().message;
            if (!next.has_value() || !next->has_value())
                return;
            out.push_back(std::move(**next));
        }
    };
    EXPECT_TRUE(r.feed(bytes.substr(0, split)));
    drain();
    EXPECT_TRUE(r.feed(bytes.substr(split)));
    drain();
    return out;
}

// One of each kind, nested arrays, a nil bulk, a nil array and a bulk string holding CR LF and NUL.
const std::string stream = "+OK\r\n"
                           "-NOSCRIPT No matching script\r\n"
                           ":-42\r\n"
                           "$5\r\nhello\r\n"
                           "$-1\r\n"
                           "*-1\r\n"
                           "$6\r\na\r\n\0bc\r\n"s
                           "*3\r\n$7\r\nmessage\r\n*2\r\n:1\r\n*1\r\n+deep\r\n$0\r\n\r\n";

void expect_stream_replies(const std::vector<reply>& got) {
    ASSERT_EQ(got.size(), 8u);
    EXPECT_TRUE(got[0].is_status("OK"));
    EXPECT_TRUE(got[1].is_error());
    EXPECT_EQ(got[1].text, "NOSCRIPT No matching script");
    EXPECT_EQ(got[2].type, kind::integer);
    EXPECT_EQ(got[2].integer, -42);
    EXPECT_EQ(got[3].type, kind::string);
    EXPECT_EQ(got[3].text, "hello");
    EXPECT_TRUE(got[4].is_nil());
    EXPECT_TRUE(got[5].is_nil());
    EXPECT_EQ(got[6].type, kind::string);
    EXPECT_EQ(got[6].text, "a\r\n\0bc"s);
    const auto& a = got[7];
    ASSERT_EQ(a.type, kind::array);
    ASSERT_EQ(a.elements.size(), 3u);
    EXPECT_EQ(a.elements[0].text, "message");
    ASSERT_EQ(a.elements[1].type, kind::array);
    ASSERT_EQ(a.elements[1].elements.size(), 2u);
    EXPECT_EQ(a.elements[1].elements[0].integer, 1);
    ASSERT_EQ(a.elements[1].elements[1].elements.size(), 1u);
    EXPECT_TRUE(a.elements[1].elements[1].elements[0].is_status("deep"));
    EXPECT_EQ(a.elements[2].type, kind::string);
    EXPECT_EQ(a.elements[2].text, "");
}

TEST(RedisReader, RepliesSplitAtEveryByteBoundary) {
    for (std::size_t split = 0; split <= stream.size(); ++split) {
        SCOPED_TRACE("split at " + std::to_string(split));
        expect_stream_replies(read_all(stream, split));
    }
}

TEST(RedisReader, OneByteAtATime) {
    reader r;
    std::vector<reply> got;
    for (char c : stream) {
        ASSERT_TRUE(r.feed(std::string_view(&c, 1)));
        auto next = r.take();
        ASSERT_TRUE(next.has_value());
        if (next->has_value())
            got.push_back(std::move(**next));
    }
    expect_stream_replies(got);
    auto after = r.take();
    ASSERT_TRUE(after.has_value());
    EXPECT_FALSE(after->has_value()) << "no reply without bytes";
}

TEST(RedisReader, IncompleteReplyNeedsMoreBytes) {
    reader r;
    ASSERT_TRUE(r.feed("*2\r\n$3\r\nfoo\r\n"));
    auto next = r.take();
    ASSERT_TRUE(next.has_value());
    EXPECT_FALSE(next->has_value());
    ASSERT_TRUE(r.feed(":7\r\n"));
    next = r.take();
    ASSERT_TRUE(next.has_value());
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->elements.at(1).integer, 7);
}

TEST(RedisReader, GarbageIsAPermanentError) {
    reader r;
    ASSERT_TRUE(r.feed("+OK\r\n"));
    auto first = r.take();
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE(first->has_value());
    EXPECT_TRUE((*first)->is_status("OK"));

    r.feed("HTTP/1.1 400 Bad Request\r\n");
    auto bad = r.take();
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code, errc::cache_unavailable);
    EXPECT_NE(bad.error().message.find("protocol error"), std::string::npos) << bad.error().message;
    EXPECT_TRUE(r.failed());
    EXPECT_FALSE(r.error().empty());

    // Valid bytes afterwards do not revive it: the connection must be dropped.
    EXPECT_FALSE(r.feed("+OK\r\n"));
    EXPECT_FALSE(r.take().has_value());
}

// What link hands on from the handshake's reader to the machine that reads the rest of the stream.
TEST(RedisReader, UnparsedIsWhatFollowsTheLastReplyTaken) {
    reader r;
    ASSERT_TRUE(r.feed("+PONG\r\n*3\r\n$9\r\nsubscribe"));
    EXPECT_EQ(r.unparsed(), "+PONG\r\n*3\r\n$9\r\nsubscribe");
    auto first = r.take();
    ASSERT_TRUE(first.has_value() && first->has_value());
    EXPECT_TRUE((*first)->is_status("PONG"));
    EXPECT_EQ(r.unparsed(), "*3\r\n$9\r\nsubscribe");

    reader garbage;
    garbage.feed("?what\r\n");
    EXPECT_FALSE(garbage.take().has_value());
    EXPECT_EQ(garbage.unparsed(), "") << "nothing is handed on from a failed stream";
}

TEST(RedisReader, BadLengthIsAnError) {
    reader r;
    r.feed("$abc\r\n");
    EXPECT_FALSE(r.take().has_value());
    EXPECT_TRUE(r.failed());
}

TEST(RedisReader, NestingPastTheLimitIsAnError) {
    reader r;
    std::string deep;
    for (int i = 0; i < 20; ++i)
        deep += "*1\r\n";
    deep += ":1\r\n";
    r.feed(deep);
    EXPECT_FALSE(r.take().has_value());
    EXPECT_TRUE(r.failed());
}

// ---- what a reply may announce and hold (CONTRACT.md section 7, redis.max_reply_bytes) -----------------

bool names_the_budget(const result<std::optional<reply>>& r) {
    return !r.has_value() && r.error().code == errc::cache_unavailable &&
           r.error().message.find("max_reply_bytes") != std::string::npos;
}

// An array header is refused when its elements could not fit, before anything is allocated for them:
// one such header took 33 GB of address space and a core before.
TEST(RedisReaderBudget, AnArrayAnnouncingMoreElementsThanFitIsAnErrorAtOnce) {
    for (const char* header : {"*2147483647\r\n", "*100000000\r\n", "*1000000\r\n"}) {
        SCOPED_TRACE(header);
        reader r; // the default budget: 1 MiB, as redis.max_reply_bytes
        ASSERT_TRUE(r.feed(header));
        const auto next = r.take();
        EXPECT_TRUE(names_the_budget(next)) << (next ? "no error" : next.error().message);
        EXPECT_TRUE(r.failed());
    }
}

// A bulk string is allocated only once it is whole: its bytes are refused as soon as more of them
// are held than the budget allows, not when the announced length has arrived.
TEST(RedisReaderBudget, ABulkStringLargerThanTheBudgetFailsBeforeItIsWhole) {
    reader r;
    ASSERT_TRUE(r.feed("$1000000000\r\n"));
    const std::string chunk(16 * 1024, 'x');
    std::size_t fed = 0;
    result<std::optional<reply>> last = std::optional<reply>();
    while (fed < 8 * 1024 * 1024 && last.has_value()) {
        ASSERT_FALSE(last->has_value());
        r.feed(chunk);
        fed += chunk.size();
        last = r.take();
    }
    EXPECT_TRUE(names_the_budget(last)) << (last ? "no error after 8 MiB" : last.error().message);
    EXPECT_LE(fed, 1024 * 1024 + chunk.size()) << "refused once the budget was passed";
}

// The budget is per reply: a stream of small replies larger in all is read, and so is one reply
// just under the budget; one just over it is not.
TEST(RedisReaderBudget, TheBudgetIsPerReply) {
    reader r(4096);
    std::string many;
    for (int i = 0; i < 2000; ++i)
        many += "+OK\r\n";
    ASSERT_TRUE(r.feed(many));
    int read = 0;
    for (;;) {
        auto next = r.take();
        ASSERT_TRUE(next.has_value()) << next.error().message;
        if (!next->has_value())
            break;
        EXPECT_TRUE((*next)->is_status("OK"));
        ++read;
    }
    EXPECT_EQ(read, 2000);

    ASSERT_TRUE(r.feed("$3000\r\n" + std::string(3000, 'v') + "\r\n"));
    auto within = r.take();
    ASSERT_TRUE(within.has_value()) << within.error().message;
    ASSERT_TRUE(within->has_value());
    EXPECT_EQ((*within)->text, std::string(3000, 'v'));

    ASSERT_TRUE(r.feed("$5000\r\n" + std::string(5000, 'v') + "\r\n"));
    EXPECT_TRUE(names_the_budget(r.take()));
}

// Nested arrays count in all: each element announced takes its share, whatever its depth.
TEST(RedisReaderBudget, NestedArraysCountInAll) {
    std::string nested = "*100\r\n";
    for (int i = 0; i < 100; ++i) {
        nested += "*100\r\n";
        for (int j = 0; j < 100; ++j)
            nested += ":1\r\n";
    }
    reader small(64 * 1024);
    small.feed(nested);
    EXPECT_TRUE(names_the_budget(small.take()));

    reader roomy; // 1 MiB holds ten thousand integers
    ASSERT_TRUE(roomy.feed(nested));
    auto all = roomy.take();
    ASSERT_TRUE(all.has_value()) << all.error().message;
    ASSERT_TRUE(all->has_value());
    ASSERT_EQ((*all)->elements.size(), 100u);
    EXPECT_EQ((*all)->elements[99].elements.size(), 100u);
    EXPECT_EQ((*all)->elements[99].elements[99].integer, 1);
}

// A reply refused for its size is a protocol error like any other: permanent for the reader.
TEST(RedisReaderBudget, ARefusedReplyIsPermanent) {
    reader r(1024);
    r.feed("*100000\r\n");
    EXPECT_TRUE(names_the_budget(r.take()));
    EXPECT_FALSE(r.feed("+OK\r\n"));
    EXPECT_TRUE(names_the_budget(r.take()));
}

TEST(RedisFormat, ArgumentsAreBulkStringsWithTheirLengths) {
    const std::vector<std::string_view> args{"SET", "k", "v1"};
    EXPECT_EQ(format_command(args), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n");
}

TEST(RedisFormat, BinarySafe) {
    const std::string value = "a\0b\r\n\xff"s;
    const std::vector<std::string> args{"SET", "key with space", value, ""};
    const std::string bytes = format_command(std::span<const std::string>(args));
    EXPECT_EQ(bytes, "*4\r\n$3\r\nSET\r\n$14\r\nkey with space\r\n$6\r\na\0b\r\n\xff\r\n$0\r\n\r\n"s);

    // What the formatter writes, the reader reads back as the same array of strings.
    reader r;
    ASSERT_TRUE(r.feed(bytes));
    auto back = r.take();
    ASSERT_TRUE(back.has_value());
    ASSERT_TRUE(back->has_value());
    ASSERT_EQ((*back)->elements.size(), 4u);
    EXPECT_EQ((*back)->elements[2].text, value);
    EXPECT_EQ((*back)->elements[3].text, "");
}

// The handshake every connection starts with, and how its replies are judged (no server needed).
TEST(RedisHandshake, CommandsFollowTheOptions) {
    options o;
    EXPECT_EQ(detail::handshake_commands(o), (std::vector<std::vector<std::string>>{{"PING"}}));
    o.password = secret("pw");
    o.db = 3;
    EXPECT_EQ(detail::handshake_commands(o),
              (std::vector<std::vector<std::string>>{{"AUTH", "pw"}, {"SELECT", "3"}, {"PING"}}));
    o.user = "broker";
    EXPECT_EQ(detail::handshake_commands(o).front(), (std::vector<std::string>{"AUTH", "broker", "pw"}));
}

reply status(std::string s) {
    reply r;
    r.type = reply::kind::status;
    r.text = std::move(s);
    return r;
}

reply error_reply(std::string s) {
    reply r;
    r.type = reply::kind::error;
    r.text = std::move(s);
    return r;
}

TEST(RedisHandshake, RepliesAreJudgedInOrder) {
    options o;
    o.password = secret("the-password");
    o.db = 2;
    EXPECT_FALSE(detail::handshake_refusal(o, {status("OK"), status("OK"), status("PONG")}).has_value());

    auto auth = detail::handshake_refusal(
        o, {error_reply("WRONGPASS invalid username-password pair"), status("OK"), status("PONG")});
    ASSERT_TRUE(auth.has_value());
    EXPECT_NE(auth->find("AUTH refused: WRONGPASS"), std::string::npos) << *auth;
    EXPECT_EQ(auth->find("the-password"), std::string::npos) << *auth;

    auto select = detail::handshake_refusal(
        o, {status("OK"), error_reply("ERR DB index is out of range"), status("PONG")});
    ASSERT_TRUE(select.has_value());
    EXPECT_NE(select->find("SELECT refused"), std::string::npos) << *select;

    auto odd = detail::handshake_refusal(o, {status("OK"), status("OK"), status("HELLO")});
    ASSERT_TRUE(odd.has_value());
    EXPECT_NE(odd->find("PONG"), std::string::npos) << *odd;

    EXPECT_TRUE(detail::handshake_refusal(o, {status("OK")}).has_value()) << "too few replies";

    options none;
    auto noauth = detail::handshake_refusal(none, {error_reply("NOAUTH Authentication required.")});
    ASSERT_TRUE(noauth.has_value());
    EXPECT_NE(noauth->find("NOAUTH"), std::string::npos) << *noauth;
}

TEST(RedisBackoff, DoublesFrom100MsTo5s) {
    using std::chrono::milliseconds;
    EXPECT_EQ(detail::retry_delay(1), milliseconds(100));
    EXPECT_EQ(detail::retry_delay(2), milliseconds(200));
    EXPECT_EQ(detail::retry_delay(3), milliseconds(400));
    EXPECT_EQ(detail::retry_delay(6), milliseconds(3200));
    EXPECT_EQ(detail::retry_delay(7), milliseconds(5000));
    EXPECT_EQ(detail::retry_delay(1000000), milliseconds(5000));
    EXPECT_EQ(detail::retry_delay(0), milliseconds(100));
}

} // namespace
} // namespace token_broker::redis
