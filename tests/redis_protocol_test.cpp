// The RESP layer alone, without a server: hiredis's reader behind redis::reader, fed the way a
// socket feeds it (in pieces split anywhere), and the command formatter.
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

} // namespace
} // namespace token_broker::redis
