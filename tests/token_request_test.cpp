#include "server/token_request.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace token_broker {
namespace {

struct good_case {
    good_case(std::string target, std::string user_id, token_type type = token_type::zak,
              std::optional<std::uint32_t> ttl = {}, std::optional<std::string> meeting_id = {})
        : target(std::move(target)), user_id(std::move(user_id)), type(type), ttl(ttl),
          meeting_id(std::move(meeting_id)) {}
    std::string target;
    std::string user_id;
    token_type type;
    std::optional<std::uint32_t> ttl;
    std::optional<std::string> meeting_id;
};

const std::vector<good_case> good_gets = {
    {"/token/jdoe%40example.com?type=zak&ttl=3600", "jdoe@example.com", token_type::zak, 3600},
    {"/token/jdoe@example.com", "jdoe@example.com"},
    {"/token/me", "me"},
    {"/token/KdYKjnimT4KPd8FFgQt9FQ", "KdYKjnimT4KPd8FFgQt9FQ"},
    {"/token/first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"},
    {"/token/a+b", "a+b"}, // '+' in a path is a plus, not a space
    {"/token/...", "..."},
    {"/token/.a", ".a"},
    {"/token/~!$&'()*,;=:@-_", "~!$&'()*,;=:@-_"},
    {"/token/%22%3C%3E%5B%5D%7B%7D%7C%5E%60", "\"<>[]{}|^`"},
    {"/token/%61%62", "ab"},
    {"/token/a?", "a"}, // a bare '?' is no parameter
    {"/token/a?type=zak", "a", token_type::zak},
    {"/token/a?type=token", "a", token_type::token},
    {"/token/a?type=onbehalf", "a", token_type::onbehalf},
    {"/token/a?ty%70e=to%6Ben", "a", token_type::token}, // keys and values decoded by Boost.URL
    {"/token/a?ttl=60", "a", token_type::zak, 60},
    {"/token/a?ttl=31536000", "a", token_type::zak, 31536000},
    {"/token/a?ttl=060", "a", token_type::zak, 60},    // digits only, value checked: leading zeros are fine
    {"/token/a?ttl=%36%30", "a", token_type::zak, 60}, // percent-decoded digits
    {"/token/a?ttl=7200&type=zak", "a", token_type::zak, 7200},
    {"/token/a?type=onbehalf&ttl=120", "a", token_type::onbehalf, 120},
    {"/token/a?type=onbehalf&meeting_id=123456789", "a", token_type::onbehalf, std::nullopt, "123456789"},
    {"/token/a?meeting_id=012345678901&type=onbehalf&ttl=600", "a", token_type::onbehalf, 600,
     "012345678901"},
};

struct bad_case {
    std::string target;
    bool is_delete;
    std::string_view message_part; // a piece of the message that names the fault
};

const std::vector<bad_case> bad_targets = {
    // The path.
    {"/token/", false, "user id is missing"},
    {"/token/?type=zak", false, "user id is missing"},
    {"/token/a/", false, "one path segment"},
    {"/token/a/b", false, "one path segment"},
    {"/token//a", false, "one path segment"},
    {"/token/a/../b", false, "one path segment"},
    {"/token", false, "/token/{userId}"},
    {"/tokens/a", false, "/token/{userId}"},
    {"/", false, "/token/{userId}"},
    {"*", false, "not a valid path"},
    {"", false, "not a valid path"},
    {"http://example.com/token/a", false, "not a valid path"},
    {"/token/a#frag", false, "not a valid path"},
    {"/token/a?type=zak#frag", false, "not a valid path"},
    {"/token/a b", false, "not a valid path"},
    {"/token/a\\b", false, "not a valid path"},
    {"/token/\xC3\xA9", false, "not a valid path"},
    {std::string("/token/a\0b", 10), false, "not a valid path"},
    {"/token/%zz", false, "not a valid path"},
    {"/token/%4", false, "not a valid path"},
    {"/token/a%", false, "not a valid path"},
    // The user id, after decoding once.
    {"/token/.", false, "\".\" or \"..\""},
    {"/token/..", false, "\".\" or \"..\""},
    {"/token/%2E", false, "\".\" or \"..\""},
    {"/token/%2E%2E", false, "\".\" or \"..\""},
    {"/token/%2e.", false, "\".\" or \"..\""},
    {"/token/a%2Fb", false, "visible ASCII"},
    {"/token/%2F", false, "visible ASCII"},
    {"/token/..%2F..%2Fadmin", false, "visible ASCII"},
    {"/token/a%5Cb", false, "visible ASCII"},
    {"/token/a%3Fb", false, "visible ASCII"},
    {"/token/a%23b", false, "visible ASCII"},
    {"/token/a%25b", false, "visible ASCII"},
    {"/token/%2540", false, "visible ASCII"}, // decoded once: "%40"
    {"/token/%00", false, "visible ASCII"},
    {"/token/a%00", false, "visible ASCII"},
    {"/token/%7F", false, "visible ASCII"},
    {"/token/%20", false, "visible ASCII"},
    {"/token/a%20b", false, "visible ASCII"},
    {"/token/%09", false, "visible ASCII"},
    {"/token/%0D%0A", false, "visible ASCII"},
    {"/token/%C3%A9", false, "visible ASCII"},
    {"/token/%FF", false, "visible ASCII"},
    // The query.
    {"/token/a?type=zpk", false, "type must be zak, token or onbehalf"},
    {"/token/a?type=ZAK", false, "type must be zak, token or onbehalf"},
    {"/token/a?type=zak%20", false, "type must be zak, token or onbehalf"},
    {"/token/a?type=", false, "needs a value"},
    {"/token/a?type", false, "needs a value"},
    {"/token/a?ttl", false, "needs a value"},
    {"/token/a?type=zak&type=zak", false, "more than once"},
    {"/token/a?type=zak&type=token", false, "more than once"},
    {"/token/a?ttl=60&ttl=60", false, "more than once"},
    {"/token/a?foo=bar", false, "unknown query parameter \"foo\""},
    {"/token/a?TYPE=zak", false, "unknown query parameter \"TYPE\""},
    {"/token/a?type=zak&", false, "empty parameter"},
    {"/token/a?&type=zak", false, "empty parameter"},
    {"/token/a?&", false, "empty parameter"},
    {"/token/a?=zak", false, "empty parameter"},
    {"/token/a?ttl=59", false, "from 60 to 31536000"},
    {"/token/a?ttl=0", false, "from 60 to 31536000"},
    {"/token/a?ttl=31536001", false, "from 60 to 31536000"},
    {"/token/a?ttl=4294967356", false, "from 60 to 31536000"}, // 2^32 + 60
    {"/token/a?ttl=99999999999999999999999", false, "from 60 to 31536000"},
    {"/token/a?ttl=1e3", false, "from 60 to 31536000"},
    {"/token/a?ttl=+60", false, "from 60 to 31536000"},
    {"/token/a?ttl=%2B60", false, "from 60 to 31536000"},
    {"/token/a?ttl=-60", false, "from 60 to 31536000"},
    {"/token/a?ttl=60.0", false, "from 60 to 31536000"},
    {"/token/a?ttl=%2060", false, "from 60 to 31536000"},
    {"/token/a?ttl=60%20", false, "from 60 to 31536000"},
    {"/token/a?ttl=0x3c", false, "from 60 to 31536000"},
    {"/token/a?ttl=%EF%BC%96%EF%BC%90", false, "from 60 to 31536000"}, // full-width digits
    {"/token/a?type=token&ttl=3600", false, "ttl is only allowed with type zak or onbehalf"},
    {"/token/a?ttl=3600&type=token", false, "ttl is only allowed with type zak or onbehalf"},
    {"/token/a?meeting_id=123456789", false, "meeting_id is only allowed with type onbehalf"},
    {"/token/a?type=zak&meeting_id=123456789", false, "meeting_id is only allowed with type onbehalf"},
    {"/token/a?type=token&meeting_id=123456789", false, "meeting_id is only allowed with type onbehalf"},
    {"/token/a?type=onbehalf&meeting_id=12345678", false, "9 to 12 digits"},
    {"/token/a?type=onbehalf&meeting_id=1234567890123", false, "9 to 12 digits"},
    {"/token/a?type=onbehalf&meeting_id=12345678a", false, "9 to 12 digits"},
    {"/token/a?type=onbehalf&meeting_id=-12345678", false, "9 to 12 digits"},
    {"/token/a?type=onbehalf&meeting_id=123%20456789", false, "9 to 12 digits"},
    {"/token/a?type=onbehalf&meeting_id=", false, "needs a value"},
    // DELETE takes no query.
    {"/token/a?type=zak", true, "DELETE"},
    {"/token/a?ttl=3600", true, "DELETE"},
    {"/token/a?&", true, "DELETE"},
    {"/token/a?x", true, "DELETE"},
    {"/token/%2E%2E", true, "\".\" or \"..\""},
    {"/token/a/b", true, "one path segment"},
};

bool printable(std::string_view s) {
    for (char c : s)
        if (c < 0x20 || c > 0x7E)
            return false;
    return true;
}

TEST(TokenRequest, AcceptsGoodTargets) {
    for (const good_case& c : good_gets) {
        SCOPED_TRACE(c.target);
        const auto r = parse_token_target(c.target, false);
        if (!r.has_value()) {
            ADD_FAILURE() << r.error().message;
            continue;
        }
        EXPECT_EQ(r->user_id, c.user_id);
        EXPECT_EQ(r->type, c.type);
        EXPECT_EQ(r->ttl, c.ttl);
        EXPECT_EQ(r->meeting_id, c.meeting_id);
        EXPECT_TRUE(is_token_route(c.target));
    }
}

TEST(TokenRequest, RefusesBadTargetsWithAMessageForAPerson) {
    for (const bad_case& c : bad_targets) {
        SCOPED_TRACE(::testing::Message() << (c.is_delete ? "DELETE " : "GET ") << c.target);
        const auto r = parse_token_target(c.target, c.is_delete);
        if (!r.has_error()) {
            ADD_FAILURE() << "accepted, user_id=" << r->user_id;
            continue;
        }
        EXPECT_EQ(r.error().code, errc::invalid_request);
        EXPECT_NE(r.error().message.find(c.message_part), std::string::npos) << r.error().message;
        EXPECT_TRUE(printable(r.error().message)) << r.error().message;
        EXPECT_FALSE(r.error().zoom_code);
    }
}

TEST(TokenRequest, DeleteTakesTheUserIdOnly) {
    auto r = parse_token_target("/token/jdoe%40example.com", true);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->user_id, "jdoe@example.com");
    EXPECT_EQ(r->type, token_type::zak);
    EXPECT_FALSE(r->ttl);
    r = parse_token_target("/token/me?", true);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->user_id, "me");
}

TEST(TokenRequest, UserIdLengthLimitIs254Bytes) {
    const std::string id254(254, 'a');
    auto r = parse_token_target("/token/" + id254, false);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->user_id, id254);
    EXPECT_TRUE(parse_token_target("/token/" + std::string(255, 'a'), false).has_error());

    // The limit is on the decoded bytes: 254 encoded bytes (762 characters) pass, 255 do not.
    std::string encoded254;
    for (int i = 0; i < 254; ++i)
        encoded254 += "%41";
    r = parse_token_target("/token/" + encoded254, false);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->user_id, std::string(254, 'A'));
    const auto too_long = parse_token_target("/token/" + encoded254 + "%41", false);
    ASSERT_TRUE(too_long.has_error());
    EXPECT_NE(too_long.error().message.find("254"), std::string::npos);
    EXPECT_TRUE(parse_token_target("/token/" + std::string(100000, 'a'), false).has_error());
}

TEST(TokenRequest, QuotesLittleOfTheCallersInput) {
    const std::string long_key(1000, 'k');
    const auto r = parse_token_target("/token/a?" + long_key + "=1", false);
    ASSERT_TRUE(r.has_error());
    EXPECT_NE(r.error().message.find(std::string(64, 'k')), std::string::npos);
    EXPECT_EQ(r.error().message.find(std::string(65, 'k')), std::string::npos);
    EXPECT_LT(r.error().message.size(), 200u);

    const auto nul = parse_token_target("/token/a?x%00%0A%1B=1", false);
    ASSERT_TRUE(nul.has_error());
    EXPECT_NE(nul.error().message.find("\"x???\""), std::string::npos) << nul.error().message;

    const auto type = parse_token_target("/token/a?type=%0D%0AX-Evil:%201", false);
    ASSERT_TRUE(type.has_error());
    EXPECT_TRUE(printable(type.error().message));
    EXPECT_NE(type.error().message.find("\"??X-Evil: 1\""), std::string::npos) << type.error().message;
}

TEST(TokenRequest, NeverQuotesTheUserId) {
    const auto r = parse_token_target("/token/secret-looking-id%00", false);
    ASSERT_TRUE(r.has_error());
    EXPECT_EQ(r.error().message.find("secret-looking-id"), std::string::npos);
}

TEST(UserId, ValidatesDecodedIds) {
    EXPECT_TRUE(is_valid_user_id("me"));
    EXPECT_TRUE(is_valid_user_id("jdoe@example.com"));
    EXPECT_TRUE(is_valid_user_id("!"));
    EXPECT_TRUE(is_valid_user_id("~"));
    EXPECT_TRUE(is_valid_user_id("..."));
    EXPECT_TRUE(is_valid_user_id(std::string(254, 'x')));
    EXPECT_FALSE(is_valid_user_id(std::string(255, 'x')));
    EXPECT_FALSE(is_valid_user_id(""));
    EXPECT_FALSE(is_valid_user_id("."));
    EXPECT_FALSE(is_valid_user_id(".."));
    for (char c : std::string("/\\?#% \x7F\t")) {
        EXPECT_FALSE(is_valid_user_id(std::string("a") + c + "b")) << int(c);
    }
    EXPECT_FALSE(is_valid_user_id(std::string_view("a\0b", 3)));
    EXPECT_FALSE(is_valid_user_id("\xC3\xA9"));
    // Every byte, alone: exactly the visible ASCII other than the five.
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        const bool expected =
            b >= 0x21 && b <= 0x7E && c != '/' && c != '\\' && c != '?' && c != '#' && c != '%' && c != '.';
        EXPECT_EQ(is_valid_user_id(std::string(1, c)), expected) << b;
    }
}

TEST(TokenRoute, TellsTokenTargetsFromOthers) {
    EXPECT_TRUE(is_token_route("/token/a"));
    EXPECT_TRUE(is_token_route("/token/"));
    EXPECT_TRUE(is_token_route("/token/a/b?x"));
    EXPECT_TRUE(is_token_route("/token/a#x"));
    EXPECT_FALSE(is_token_route("/token"));
    EXPECT_FALSE(is_token_route("/token?x=/token/"));
    EXPECT_FALSE(is_token_route("/tokens/a"));
    EXPECT_FALSE(is_token_route("/Token/a"));
    EXPECT_FALSE(is_token_route("/%74oken/a"));
    EXPECT_FALSE(is_token_route("//token/a"));
    EXPECT_FALSE(is_token_route("/healthz"));
    EXPECT_FALSE(is_token_route(""));
    EXPECT_FALSE(is_token_route("*"));
}

TEST(TokenRequest, SurvivesArbitraryBytes) {
    std::mt19937 rng(2024);
    // Built with its length, so that the NUL inside is drawn too, and DEL and 0xFF after it.
    static constexpr char chars[] = "/token?&=%2FfF0.a#+\\ \x00\x7F\xFF";
    const std::string alphabet(chars, sizeof chars - 1);
    ASSERT_EQ(alphabet.back(), '\xFF');
    ASSERT_NE(alphabet.find('\0'), std::string::npos);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 60);
    for (int i = 0; i < 20000; ++i) {
        std::string t = i % 2 ? "/token/" : "";
        const int n = len(rng);
        for (int j = 0; j < n; ++j)
            t += i % 3 ? alphabet[rng() % alphabet.size()] : static_cast<char>(byte(rng));
        for (bool is_delete : {false, true}) {
            const auto r = parse_token_target(t, is_delete);
            if (r.has_value()) {
                EXPECT_TRUE(is_valid_user_id(r->user_id)) << t;
                EXPECT_TRUE(is_token_route(t)) << t;
            } else {
                EXPECT_EQ(r.error().code, errc::invalid_request);
                EXPECT_TRUE(printable(r.error().message)) << r.error().message;
                EXPECT_LT(r.error().message.size(), 250u);
            }
        }
    }
}

} // namespace
} // namespace token_broker
