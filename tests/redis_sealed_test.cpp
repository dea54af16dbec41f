// redis::sealer: AES-256-GCM values bound to their key names, HMAC-SHA256 key names, key rotation.
#include "redis/sealed.hpp"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

namespace token_broker::redis {
namespace {

using namespace std::string_literals;

const secret key_a(std::string(32, 'a'));
const secret key_b("0123456789abcdef0123456789abcdef");
const std::string prefix = "token-broker:";

TEST(Sealer, RoundTrip) {
    sealer s(key_a, {});
    const std::string name = s.key_name(prefix, "tok", "user@example.com");
    const std::string plain = "{\"token\":\"eyJ.secret\"}\0binary"s;
    const std::string sealed = s.seal(name, plain);
    EXPECT_EQ(sealed.size(), sealer::nonce_size + plain.size() + sealer::tag_size);
    EXPECT_EQ(sealed.find("eyJ.secret"), std::string::npos) << "the plaintext must not be in clear";
    auto back = s.open(name, sealed);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, plain);

    // An empty value too.
    auto empty = s.open(name, s.seal(name, ""));
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(*empty, "");
}

TEST(Sealer, EveryTamperedByteIsRefused) {
    sealer s(key_a, {});
    const std::string name = s.key_name(prefix, "tok", "u1");
    const std::string sealed = s.seal(name, "a token value");
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        std::string bad = sealed;
        bad[i] = static_cast<char>(bad[i] ^ 0x01);
        EXPECT_FALSE(s.open(name, bad).has_value()) << "byte " << i;
    }
    EXPECT_FALSE(s.open(name, sealed.substr(0, sealed.size() - 1)).has_value());
    EXPECT_FALSE(s.open(name, sealed + "x").has_value());
    EXPECT_FALSE(s.open(name, "").has_value());
    EXPECT_FALSE(s.open(name, "short").has_value());
    EXPECT_FALSE(s.open(name, std::string(sealer::nonce_size + sealer::tag_size, '\0')).has_value());
}

TEST(Sealer, AnotherKeyCannotOpen) {
    sealer a(key_a, {});
    sealer b(key_b, {});
    const std::string name = "token-broker:tok:fixed-name";
    EXPECT_FALSE(b.open(name, a.seal(name, "value")).has_value());
}

TEST(Sealer, MovedToAnotherKeyNameCannotOpen) {
    sealer s(key_a, {});
    const std::string n1 = s.key_name(prefix, "tok", "alice");
    const std::string n2 = s.key_name(prefix, "tok", "bob");
    EXPECT_FALSE(s.open(n2, s.seal(n1, "alice's token")).has_value());
}

TEST(Sealer, PreviousKeyIsReadable) {
    sealer old_one(key_a, {});
    sealer rotated(key_b, key_a);
    const std::string old_name = old_one.key_name(prefix, "tok", "alice");
    const std::string sealed_before = old_one.seal(old_name, "from before the rotation");

    // The value written before sits under the name the previous key gives.
    auto previous_name = rotated.previous_key_name(prefix, "tok", "alice");
    ASSERT_TRUE(previous_name.has_value());
    EXPECT_EQ(*previous_name, old_name);
    auto back = rotated.open(old_name, sealed_before);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, "from before the rotation");

    // New values are sealed under the new key: the old sealer alone cannot read them.
    const std::string new_name = rotated.key_name(prefix, "tok", "alice");
    EXPECT_NE(new_name, old_name);
    EXPECT_FALSE(old_one.open(new_name, rotated.seal(new_name, "new")).has_value());
    EXPECT_FALSE(old_one.previous_key_name(prefix, "tok", "alice").has_value());
}

TEST(Sealer, NonceDiffersEachSeal) {
    sealer s(key_a, {});
    const std::string name = s.key_name(prefix, "tok", "u");
    std::set<std::string> nonces;
    std::set<std::string> values;
    for (int i = 0; i < 100; ++i) {
        const std::string sealed = s.seal(name, "same plaintext");
        nonces.insert(sealed.substr(0, sealer::nonce_size));
        values.insert(sealed);
    }
    EXPECT_EQ(nonces.size(), 100u);
    EXPECT_EQ(values.size(), 100u);
}

TEST(Sealer, KeyNameHoldsNoId) {
    sealer s(key_a, {});
    const std::string id = "alice@example.com";
    const std::string name = s.key_name(prefix, "tok", id);
    // The hash in braces: a Redis Cluster hash tag.
    EXPECT_TRUE(name.starts_with("token-broker:tok:{")) << name;
    EXPECT_TRUE(name.ends_with("}")) << name;
    EXPECT_EQ(name.size(), prefix.size() + 5 + 64 + 1);
    EXPECT_EQ(name.find("alice"), std::string::npos) << name;
    EXPECT_EQ(name.find_first_not_of("0123456789abcdef", prefix.size() + 5), name.size() - 1) << name;
    // Stable for one key, different for another id and for another key.
    EXPECT_EQ(name, s.key_name(prefix, "tok", id));
    EXPECT_NE(name, s.key_name(prefix, "tok", "bob@example.com"));
    EXPECT_NE(name, sealer(key_b, {}).key_name(prefix, "tok", id));
}

TEST(Sealer, KeysOfAnotherSizeAreRefused) {
    EXPECT_THROW(sealer(secret("short"), {}), std::invalid_argument);
    EXPECT_THROW(sealer(secret(std::string(64, 'a')), {}), std::invalid_argument);
    EXPECT_THROW(sealer(key_a, secret("short")), std::invalid_argument);
    EXPECT_THROW(sealer(secret(), {}), std::invalid_argument);
}

} // namespace
} // namespace token_broker::redis
