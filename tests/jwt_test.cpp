#include "cache/jwt.hpp"
#include "core/base64.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace token_broker {
namespace {

std::string b64url(std::string_view bytes) {
    return base64url_encode(bytes);
}

const std::string header = b64url(R"({"typ":"JWT","alg":"HS256"})");
const std::string signature = "qvV3Zl5m8Ryl4bGtP3d1oJxG2K9cX0aWm7T4uE6sN_A";

std::string jwt_with_payload(std::string_view payload_json) {
    return header + "." + b64url(payload_json) + "." + signature;
}

TEST(Jwt, ReadsTheExpiryOfARealShapedZak) {
    // The claims of a ZAK as Zoom issues them (ids made up).
    const std::string zak = jwt_with_payload(
        R"({"aud":"clientsm","uid":"Kq3bDzrWTlu6d7aN0xYw4Q","iss":"web","sk":"0","sty":100,"wcd":"aw1",)"
        R"("clt":0,"mnum":"","exp":1764457200,"iat":1764450000,"aid":"VHd3s9aBR3CqHxYf0gZ1bw","cid":""})");
    EXPECT_EQ(jwt_expiry(zak), 1764457200);
}

TEST(Jwt, ReadsALiteralToken) {
    // {"alg":"HS256","typ":"JWT"} . {"sub":"u","exp":1893456000} . signature, encoded elsewhere.
    EXPECT_EQ(jwt_expiry("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1IiwiZXhwIjoxODkzNDU2MDAwfQ."
                         "c2lnbmF0dXJl"),
              1893456000);
    // The well-known jwt.io sample carries iat but no exp.
    EXPECT_EQ(jwt_expiry("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4g"
                         "RG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
              std::nullopt);
}

TEST(Jwt, RequiresANumericIntegralExp) {
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"iat":1700000000})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":"1700000000"})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":true})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":null})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":[1700000000]})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":{"v":1}})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1700000000.5})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"Exp":1700000000})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"nested":{"exp":1700000000}})")), std::nullopt);
}

TEST(Jwt, AcceptsAnIntegralDouble) {
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1.7e9})")), 1700000000);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1700000000.0})")), 1700000000);
}

TEST(Jwt, RejectsNegativeAndHugeExp) {
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":0})")), 0);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":-1})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":-1.0})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":-9223372036854775808})")), std::nullopt);
    const std::string max = std::to_string(max_jwt_exp);
    const std::string over = std::to_string(max_jwt_exp + 1);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":)" + max + "}")), max_jwt_exp);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":)" + over + "}")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":9223372036854775807})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":18446744073709551615})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1e300})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":99999999999999999999999})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1e999})")), std::nullopt);
}

TEST(Jwt, ARepeatedExpCountsOnce) {
    const auto exp = jwt_expiry(jwt_with_payload(R"({"exp":1700000000,"exp":1800000000})"));
    ASSERT_TRUE(exp.has_value());
    EXPECT_EQ(*exp, 1800000000);
}

TEST(Jwt, RequiresExactlyThreeNonEmptyParts) {
    const std::string payload = b64url(R"({"exp":1700000000})");
    ASSERT_EQ(jwt_expiry(header + "." + payload + "." + signature), 1700000000);
    EXPECT_EQ(jwt_expiry(header + "." + payload), std::nullopt);
    EXPECT_EQ(jwt_expiry(header + "." + payload + "." + signature + "." + signature), std::nullopt);
    EXPECT_EQ(jwt_expiry(header + "." + payload + "." + signature + "."), std::nullopt);
    EXPECT_EQ(jwt_expiry("." + payload + "." + signature), std::nullopt);
    EXPECT_EQ(jwt_expiry(header + ".." + signature), std::nullopt);
    EXPECT_EQ(jwt_expiry(header + "." + payload + "."), std::nullopt);
    EXPECT_EQ(jwt_expiry(payload), std::nullopt);
    EXPECT_EQ(jwt_expiry(""), std::nullopt);
    EXPECT_EQ(jwt_expiry(".."), std::nullopt);
    EXPECT_EQ(jwt_expiry("..."), std::nullopt);
}

TEST(Jwt, RejectsBadBase64) {
    const std::string payload = b64url(R"({"exp":1700000000})");
    ASSERT_EQ(jwt_expiry(header + "." + payload + "." + signature), 1700000000);
    // Standard-alphabet characters, padding, whitespace and other bytes are not base64url.
    using namespace std::string_view_literals;
    for (std::string_view bad : {"+"sv, "/"sv, "="sv, " "sv, "*"sv, "\n"sv, "\xC3\xA9"sv, "\0"sv}) {
        std::string p = payload;
        p.insert(4, bad);
        EXPECT_EQ(jwt_expiry(header + "." + p + "." + signature), std::nullopt) << p;
        EXPECT_EQ(jwt_expiry(header + "." + payload + "." + signature + std::string(bad)), std::nullopt);
        EXPECT_EQ(jwt_expiry(std::string(bad) + header + "." + payload + "." + signature), std::nullopt);
    }
    // A padded payload is not JWT base64url.
    const std::string unpadded = b64url(R"({"exp":1700000000} )"); // 19 bytes: 26 characters unpadded
    ASSERT_EQ(unpadded.size() % 4, 2u);
    EXPECT_EQ(jwt_expiry(header + "." + unpadded + "." + signature), 1700000000);
    EXPECT_EQ(jwt_expiry(header + "." + unpadded + "==." + signature), std::nullopt);
    // A length of 1 modulo 4 cannot be base64.
    EXPECT_EQ(jwt_expiry(header + "." + payload + "A." + signature), std::nullopt);
    EXPECT_EQ(jwt_expiry(header + "A." + payload + "." + signature), std::nullopt);
}

TEST(Jwt, DecodesEveryPaddingLength) {
    // JSON allows trailing spaces: payloads of 3k, 3k+1 and 3k+2 bytes encode to lengths of 0, 2 and 3
    // modulo 4, i.e. with 0, 2 and 1 padding characters stripped.
    std::vector<std::size_t> tails;
    for (int spaces = 0; spaces < 3; ++spaces) {
        const std::string json = R"({"exp":1700000000})" + std::string(spaces, ' ');
        const std::string payload = b64url(json);
        tails.push_back(payload.size() % 4);
        EXPECT_EQ(jwt_expiry(header + "." + payload + "." + signature), 1700000000) << payload;
        EXPECT_EQ(base64url_decode(payload, max_jwt_payload_bytes), json);
    }
    std::sort(tails.begin(), tails.end());
    EXPECT_EQ(tails, (std::vector<std::size_t>{0, 2, 3}));
}

TEST(Jwt, RequiresAnObjectPayload) {
    EXPECT_EQ(jwt_expiry(jwt_with_payload("[1700000000]")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload("1700000000")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"("exp")")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload("null")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1700000000)")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1700000000}x)")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(R"({"exp":1700000000,})")), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(std::string(1000, '[') + std::string(1000, ']'))), std::nullopt);
}

TEST(Jwt, CapsThePayloadSize) {
    const auto with_filler = [](std::size_t total) {
        std::string json = R"({"exp":1700000000,"f":")";
        json += std::string(total - json.size() - 2, 'x');
        json += "\"}";
        return json;
    };
    ASSERT_EQ(with_filler(max_jwt_payload_bytes).size(), max_jwt_payload_bytes);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(with_filler(max_jwt_payload_bytes))), 1700000000);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(with_filler(max_jwt_payload_bytes + 1))), std::nullopt);
    EXPECT_EQ(jwt_expiry(jwt_with_payload(with_filler(1'000'000))), std::nullopt);
}

TEST(Base64, EncodesBothAlphabets) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("A"), "QQ==");
    EXPECT_EQ(base64_encode("AB"), "QUI=");
    EXPECT_EQ(base64_encode("ABC"), "QUJD");
    EXPECT_EQ(base64_encode("\xFB\xFF"), "+/8=");
    EXPECT_EQ(base64url_encode("\xFB\xFF"), "-_8");
    EXPECT_EQ(base64url_encode("A"), "QQ");
    const std::string bytes("\x00\xFF\xFE\x3E\x3F\x80", 6);
    EXPECT_EQ(base64url_decode(base64url_encode(bytes), bytes.size()), bytes);
}

TEST(Base64Url, DecodesTheUrlAlphabet) {
    EXPECT_EQ(base64url_decode("", max_jwt_payload_bytes), "");
    EXPECT_EQ(base64url_decode("QQ", max_jwt_payload_bytes), "A");
    EXPECT_EQ(base64url_decode("QUI", max_jwt_payload_bytes), "AB");
    EXPECT_EQ(base64url_decode("QUJD", max_jwt_payload_bytes), "ABC");
    EXPECT_EQ(base64url_decode("-_8", max_jwt_payload_bytes), std::string("\xFB\xFF"));
    const std::string bytes("\x00\xFF\xFE\x3E\x3F\x80", 6);
    EXPECT_EQ(base64url_decode(b64url(bytes), max_jwt_payload_bytes), bytes);
    EXPECT_EQ(base64url_decode("+/8", max_jwt_payload_bytes), std::nullopt);
    EXPECT_EQ(base64url_decode("QQ==", max_jwt_payload_bytes), std::nullopt);
    EXPECT_EQ(base64url_decode("Q", max_jwt_payload_bytes), std::nullopt);
    EXPECT_EQ(base64url_decode("QUJDR", max_jwt_payload_bytes), std::nullopt);
    EXPECT_EQ(base64url_decode(" QUJD", max_jwt_payload_bytes), std::nullopt);
    EXPECT_EQ(base64url_decode("QUJD", 3), "ABC");
    EXPECT_EQ(base64url_decode("QUJD", 2), std::nullopt);
    EXPECT_EQ(base64url_decode("QUI", 1), std::nullopt);
}

TEST(Jwt, SurvivesArbitraryBytes) {
    const std::string good = jwt_with_payload(R"({"exp":1700000000})");
    // Every prefix and every single-byte change of a valid token: either unreadable or the right answer.
    for (std::size_t n = 0; n <= good.size(); ++n) {
        const auto exp = jwt_expiry(good.substr(0, n));
        EXPECT_TRUE(!exp || *exp == 1700000000) << n;
    }
    for (std::size_t i = 0; i < good.size(); ++i) {
        for (int b : {0, int{'.'}, int{'='}, int{'+'}, 0x80, 0xFF, int{'A'}}) {
            std::string t = good;
            t[i] = static_cast<char>(b);
            const auto exp = jwt_expiry(t);
            EXPECT_TRUE(!exp || (*exp >= 0 && *exp <= max_jwt_exp)) << i;
        }
    }
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 200);
    for (int i = 0; i < 5000; ++i) {
        std::string t(static_cast<std::size_t>(len(rng)), '\0');
        for (char& c : t)
            c = static_cast<char>(byte(rng));
        EXPECT_EQ(jwt_expiry(t), std::nullopt);
    }
}

} // namespace
} // namespace token_broker
