#include "auth/auth.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

namespace token_broker {
namespace {

std::string hex(const std::array<std::uint8_t, 32>& digest) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t b : digest) {
        out += digits[b >> 4];
        out += digits[b & 0xF];
    }
    return out;
}

// The textbook dynamic-programming matcher, as an independent oracle: m[i][j] says whether
// pattern[i..] matches id[j..].
bool oracle_matches(std::string_view pattern, std::string_view id) {
    const std::size_t np = pattern.size(), ni = id.size();
    std::vector<std::vector<char>> m(np + 1, std::vector<char>(ni + 1, 0));
    m[np][ni] = 1;
    for (std::size_t i = np + 1; i-- > 0;) {
        for (std::size_t j = ni + 1; j-- > 0;) {
            if (i == np)
                continue;
            if (pattern[i] == '*')
                m[i][j] = m[i + 1][j] || (j < ni && m[i][j + 1]);
            else
                m[i][j] = j < ni && pattern[i] == id[j] && m[i + 1][j + 1];
        }
    }
    return m[0][0] != 0;
}

caller_key key_for(std::string name, std::string_view key, std::vector<std::string> users) {
    return caller_key{std::move(name), sha256(key), std::move(users)};
}

// user_pattern_matches

TEST(UserPattern, MatchesExactIdsByteForByte) {
    EXPECT_TRUE(user_pattern_matches("alice@example.com", "alice@example.com"));
    EXPECT_FALSE(user_pattern_matches("alice@example.com", "Alice@example.com"));
    EXPECT_FALSE(user_pattern_matches("alice@example.com", "alice@example.co"));
    EXPECT_FALSE(user_pattern_matches("alice@example.com", "alice@example.comm"));
    EXPECT_FALSE(user_pattern_matches("alice", "xalice"));
    EXPECT_TRUE(user_pattern_matches("me", "me"));
}

TEST(UserPattern, WildcardAtStartMiddleAndEnd) {
    EXPECT_TRUE(user_pattern_matches("*@example.com", "bob@example.com"));
    EXPECT_TRUE(user_pattern_matches("*@example.com", "@example.com"));
    EXPECT_TRUE(user_pattern_matches("*@example.com", "a@b@example.com"));
    EXPECT_FALSE(user_pattern_matches("*@example.com", "bob@example.org"));
    EXPECT_FALSE(user_pattern_matches("*@example.com", "bob@example.com.evil.org"));
    EXPECT_FALSE(user_pattern_matches("*@example.com", "bob@EXAMPLE.COM"));

    EXPECT_TRUE(user_pattern_matches("team-*", "team-a"));
    EXPECT_TRUE(user_pattern_matches("team-*", "team-"));
    EXPECT_FALSE(user_pattern_matches("team-*", "team"));
    EXPECT_FALSE(user_pattern_matches("team-*", "xteam-a"));

    EXPECT_TRUE(user_pattern_matches("svc-*@example.com", "svc-bot@example.com"));
    EXPECT_FALSE(user_pattern_matches("svc-*@example.com", "svc-bot@example.org"));
    EXPECT_FALSE(user_pattern_matches("svc-*@example.com", "bot@example.com"));
}

TEST(UserPattern, SeveralWildcards) {
    EXPECT_TRUE(user_pattern_matches("a*b*c", "abc"));
    EXPECT_TRUE(user_pattern_matches("a*b*c", "aXbYc"));
    EXPECT_TRUE(user_pattern_matches("a*b*c", "abcbc"));
    EXPECT_TRUE(user_pattern_matches("a*b*c", "aXbYcZc"));
    EXPECT_FALSE(user_pattern_matches("a*b*c", "acb"));
    EXPECT_FALSE(user_pattern_matches("a*b*c", "aXbYcZ"));
    EXPECT_TRUE(user_pattern_matches("*a*", "banana"));
    EXPECT_FALSE(user_pattern_matches("*a*", "xyz"));
    EXPECT_TRUE(user_pattern_matches("a**b", "ab"));
    EXPECT_TRUE(user_pattern_matches("*a", "aaa"));
    EXPECT_FALSE(user_pattern_matches("*a", "aab"));
}

TEST(UserPattern, StarAloneAndEmptyPattern) {
    EXPECT_TRUE(user_pattern_matches("*", "anyone@anywhere"));
    EXPECT_TRUE(user_pattern_matches("*", "*"));
    EXPECT_TRUE(user_pattern_matches("**", "x"));
    EXPECT_TRUE(user_pattern_matches("*", ""));
    EXPECT_TRUE(user_pattern_matches("", ""));
    EXPECT_FALSE(user_pattern_matches("", "a"));
    EXPECT_FALSE(user_pattern_matches("a", ""));
}

TEST(UserPattern, AgreesWithTheTextbookMatcher) {
    ASSERT_TRUE(oracle_matches("a*b", "axxb"));
    ASSERT_FALSE(oracle_matches("a*b", "axxc"));
    std::mt19937 rng(99);
    const std::string pattern_chars = "ab*";
    const std::string id_chars = "ab";
    for (int i = 0; i < 50000; ++i) {
        std::string pattern, id;
        for (unsigned n = rng() % 9; n > 0; --n)
            pattern += pattern_chars[rng() % pattern_chars.size()];
        for (unsigned n = rng() % 11; n > 0; --n)
            id += id_chars[rng() % id_chars.size()];
        ASSERT_EQ(user_pattern_matches(pattern, id), oracle_matches(pattern, id))
            << "pattern " << pattern << " id " << id;
    }
}

TEST(UserPattern, NoExponentialBacktracking) {
    const std::string id(254, 'a');
    const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i)
        ASSERT_FALSE(user_pattern_matches(pattern, id));
    EXPECT_TRUE(user_pattern_matches(pattern, id + "b"));
    // A backtracking matcher takes ages here; this one does about |pattern| x |id| steps per call.
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// sha256

TEST(Sha256, MatchesKnownVectors) {
    EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(hex(sha256(std::string(1'000'000, 'a'))),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    EXPECT_EQ(hex(sha256(std::string_view("a\0b", 3))), hex(sha256(std::string("a\0b", 3))));
    EXPECT_NE(sha256(std::string_view("a\0b", 3)), sha256("a"));
}

// authenticator

TEST(Authenticator, IdentifiesConfiguredKeys) {
    const authenticator auth({key_for("launcher", "key-one", {"*"}), key_for("admin", "key-two", {"me"})});
    EXPECT_FALSE(auth.empty());
    const caller_key* one = auth.identify("key-one");
    ASSERT_NE(one, nullptr);
    EXPECT_EQ(one->name, "launcher");
    EXPECT_EQ(one, &auth.keys()[0]);
    const caller_key* two = auth.identify("key-two");
    ASSERT_NE(two, nullptr);
    EXPECT_EQ(two->name, "admin");
}

TEST(Authenticator, RefusesUnknownAndEmptyKeys) {
    // Even a configured digest of the empty string does not let an empty key in.
    const authenticator auth({key_for("launcher", "key-one", {"*"}), key_for("empty", "", {"*"})});
    EXPECT_EQ(auth.identify("key-three"), nullptr);
    EXPECT_EQ(auth.identify("KEY-ONE"), nullptr);
    EXPECT_EQ(auth.identify("key-one "), nullptr);
    EXPECT_EQ(auth.identify("key-on"), nullptr);
    EXPECT_EQ(auth.identify(""), nullptr);
    // A key is compared by its digest, never as the digest itself.
    const auto digest = sha256("key-one");
    EXPECT_EQ(auth.identify(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size())),
              nullptr);
    EXPECT_EQ(auth.identify(hex(digest)), nullptr);
}

TEST(Authenticator, FirstOfTwoEqualDigestsWins) {
    const authenticator auth({key_for("first", "same", {"a"}), key_for("second", "same", {"b"})});
    const caller_key* k = auth.identify("same");
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->name, "first");
}

TEST(Authenticator, EmptyWithoutKeys) {
    const authenticator none;
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(none.identify("anything"), nullptr);
    EXPECT_TRUE(authenticator(std::vector<caller_key>{}).empty());
}

TEST(Authenticator, MayAccessMatchingUsersOnly) {
    const caller_key scoped = key_for("scoped", "k", {"*@example.com", "svc-bot"});
    EXPECT_TRUE(authenticator::may_access(scoped, "jdoe@example.com"));
    EXPECT_TRUE(authenticator::may_access(scoped, "svc-bot"));
    EXPECT_FALSE(authenticator::may_access(scoped, "svc-bot2"));
    EXPECT_FALSE(authenticator::may_access(scoped, "jdoe@example.org"));
    EXPECT_FALSE(authenticator::may_access(scoped, "me"));

    const caller_key nobody = key_for("nobody", "k", {});
    EXPECT_FALSE(authenticator::may_access(nobody, "jdoe@example.com"));
    EXPECT_FALSE(authenticator::may_access(nobody, "me"));

    const caller_key everyone = key_for("everyone", "k", {"*"});
    EXPECT_TRUE(authenticator::may_access(everyone, "jdoe@example.com"));
    EXPECT_TRUE(authenticator::may_access(everyone, "me"));
}

TEST(Authenticator, CopiesShareNothingMutable) {
    authenticator original({key_for("launcher", "key-one", {"*"})});
    const authenticator copy = original;
    original = authenticator({key_for("other", "key-two", {"*"})});
    ASSERT_NE(copy.identify("key-one"), nullptr);
    EXPECT_EQ(copy.identify("key-one")->name, "launcher");
    EXPECT_EQ(original.identify("key-one"), nullptr);
}

// bearer_token

TEST(BearerToken, ParsesTheBearerScheme) {
    EXPECT_EQ(bearer_token("Bearer abc123"), "abc123");
    EXPECT_EQ(bearer_token("bearer abc123"), "abc123");
    EXPECT_EQ(bearer_token("BEARER abc123"), "abc123");
    EXPECT_EQ(bearer_token("bEaReR abc123"), "abc123");
    EXPECT_EQ(bearer_token("Bearer    abc123"), "abc123");
    EXPECT_EQ(bearer_token("  Bearer abc123 \t"), "abc123");
    EXPECT_EQ(bearer_token("Bearer a-._~+/b=="), "a-._~+/b==");
    EXPECT_EQ(bearer_token("Bearer x"), "x");
}

TEST(BearerToken, RefusesAnythingElse) {
    for (std::string_view bad :
         {"", " ", "Bearer", "Bearer ", "Bearer    ", "Bearerabc", "Bearer\tabc", "Bearer abc def",
          "Bearer abc\tdef", "Bearer abc\r\n", "Bearer abc\x01", "Bearer ab\x7F", "Bearer \xC3\xA9",
          "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Token abc", "XBearer abc", "Bear abc", "Bearer=abc", "abc"}) {
        EXPECT_EQ(bearer_token(bad), std::nullopt) << bad;
    }
    EXPECT_EQ(bearer_token(std::string_view("Bearer a\0b", 10)), std::nullopt);
}

TEST(BearerToken, ViewsTheHeader) {
    const std::string header = "Bearer secret-key";
    const auto token = bearer_token(header);
    ASSERT_TRUE(token);
    EXPECT_EQ(token->data(), header.data() + 7);
}

} // namespace
} // namespace token_broker
