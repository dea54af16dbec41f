// Zoom's webhook requests (CONTRACT.md section 9) as pure code: the signature over the raw bytes,
// the timestamp window's edges, the replay memory, and every event shape the broker acts on.
// Expected digests were computed independently with `openssl dgst -sha256 -hmac`.
#include "webhook/event.hpp"
#include "webhook/replay_memory.hpp"
#include "webhook/signature.hpp"

#include <gtest/gtest.h>

namespace token_broker::webhook {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view secret_token = "secret-token-1";
constexpr std::string_view body =
    R"({"event":"user.signed_out","payload":{"account_id":"AAAA","object":{"id":"z8yAAAA","email":"Jane@Example.com"}},"event_ts":1658940994})";
constexpr std::string_view stamp = "1658940994";
constexpr std::string_view good = "v0=f3c66c07d2cb365f0e446667de196cbb85b0dbc2050bf028a242e5e948f84039";
constexpr std::chrono::seconds at_stamp{1658940994};
constexpr std::chrono::seconds tolerance{5400};

TEST(WebhookSignature, IsTheHmacOfVersionTimestampAndTheRawBody) {
    EXPECT_EQ(signature(secret_token, stamp, body), good);
    EXPECT_EQ(verify(secret_token, good, stamp, body, at_stamp, tolerance), std::nullopt);
}

TEST(WebhookSignature, TheUrlValidationAnswerIsTheHmacOfThePlainToken) {
    EXPECT_EQ(encrypted_token(secret_token, "qgg8vlvZRS6UYooatFL8Aw"),
              "4f40367d2e31e58c3e1423a9e9eab6fd1ef46b36a812262dd606a35c3ce741c9");
}

TEST(WebhookSignature, AnyChangeToTheBytesOrTheTimestampOrTheSecretIsRefused) {
    std::string reserialised(body);
    reserialised.insert(1, " "); // the same JSON, other bytes
    EXPECT_EQ(verify(secret_token, good, stamp, reserialised, at_stamp, tolerance), refusal::wrong_signature);
    EXPECT_EQ(verify(secret_token, good, "1658940995", body, at_stamp, tolerance), refusal::wrong_signature);
    EXPECT_EQ(verify("secret-token-2", good, stamp, body, at_stamp, tolerance), refusal::wrong_signature);
    std::string flipped(good);
    flipped.back() = flipped.back() == '9' ? '8' : '9';
    EXPECT_EQ(verify(secret_token, flipped, stamp, body, at_stamp, tolerance), refusal::wrong_signature);
}

TEST(WebhookSignature, MissingOrMalformedHeadersAreNamed) {
    EXPECT_EQ(verify(secret_token, "", stamp, body, at_stamp, tolerance), refusal::missing_signature);
    EXPECT_EQ(verify(secret_token, good, "", body, at_stamp, tolerance), refusal::missing_timestamp);
    std::string upper(good);
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    upper.replace(0, 3, "v0=");
    EXPECT_EQ(verify(secret_token, upper, stamp, body, at_stamp, tolerance), refusal::malformed_signature);
    EXPECT_EQ(verify(secret_token, std::string("v1=") + std::string(good.substr(3)), stamp, body, at_stamp,
                     tolerance),
              refusal::malformed_signature);
    EXPECT_EQ(verify(secret_token, good.substr(0, good.size() - 1), stamp, body, at_stamp, tolerance),
              refusal::malformed_signature);
    for (const std::string_view bad : {"-1658940994", "+1658940994", "1658940994.5", " 1658940994",
                                       "1658940994 ", "0x62e1", "1234567890123", "abc"})
        EXPECT_EQ(verify(secret_token, good, bad, body, at_stamp, tolerance), refusal::malformed_timestamp)
            << bad;
}

TEST(WebhookSignature, TheWindowHoldsBothEdgesAndNothingBeyond) {
    EXPECT_EQ(verify(secret_token, good, stamp, body, at_stamp + tolerance, tolerance), std::nullopt);
    EXPECT_EQ(verify(secret_token, good, stamp, body, at_stamp - tolerance, tolerance), std::nullopt);
    EXPECT_EQ(verify(secret_token, good, stamp, body, at_stamp + tolerance + 1s, tolerance),
              refusal::outside_window);
    EXPECT_EQ(verify(secret_token, good, stamp, body, at_stamp - tolerance - 1s, tolerance),
              refusal::outside_window);
}

TEST(WebhookSignature, ARefusalIsDescribedWithoutTheSignatureOrSecret) {
    for (const auto r : {refusal::missing_signature, refusal::malformed_signature, refusal::missing_timestamp,
                         refusal::malformed_timestamp, refusal::outside_window, refusal::wrong_signature}) {
        const auto text = describe(r);
        EXPECT_FALSE(text.empty());
        EXPECT_EQ(text.find(secret_token), std::string_view::npos);
        EXPECT_EQ(text.find(good.substr(3, 16)), std::string_view::npos);
    }
}

TEST(WebhookReplay, TheSameRequestIsAnsweredAsBeforeWithinTheWindowOnly) {
    replay_memory memory(100s, 10);
    EXPECT_FALSE(memory.find(1000, "v0=aa", 1000s));
    memory.remember(1000, "v0=aa", {200, R"({"ok":1})"}, 1000s);
    const auto again = memory.find(1000, "v0=aa", 1050s);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200u);
    EXPECT_EQ(again->body, R"({"ok":1})");
    EXPECT_FALSE(memory.find(1000, "v0=bb", 1050s));
    EXPECT_FALSE(memory.find(1001, "v0=aa", 1050s));
    EXPECT_FALSE(memory.find(1000, "v0=aa", 1101s));
    EXPECT_EQ(memory.size(), 0u);
}

TEST(WebhookReplay, AnAnswerThatAsksForARetryIsNotRemembered) {
    replay_memory memory(100s, 10);
    memory.remember(1000, "v0=aa", {503, "{}"}, 1000s);
    EXPECT_FALSE(memory.find(1000, "v0=aa", 1000s));
}

TEST(WebhookReplay, IsBoundedAndDropsTheOldestFirst) {
    replay_memory memory(1000s, 3);
    for (int i = 0; i < 5; ++i)
        memory.remember(100 + i, "v0=" + std::to_string(i), {200, "{}"}, 200s);
    EXPECT_EQ(memory.size(), 3u);
    EXPECT_FALSE(memory.find(100, "v0=0", 200s));
    EXPECT_FALSE(memory.find(101, "v0=1", 200s));
    EXPECT_TRUE(memory.find(104, "v0=4", 200s));
}

event parsed(std::string_view text) {
    auto r = parse_event(text);
    EXPECT_TRUE(r) << text;
    return r ? *r : event{};
}

TEST(WebhookEvent, ABodyThatIsNotAnEventIsAnError) {
    for (const std::string_view bad :
         {"", "not json", "[]", R"({"payload":{}})", R"({"event":1,"payload":{}})",
          R"({"event":"user.deleted"})", R"({"event":"user.deleted","payload":[]})"})
        EXPECT_FALSE(parse_event(bad)) << bad;
}

TEST(WebhookEvent, UrlValidationNeedsAPlainTokenOfOneTo256Characters) {
    const auto e =
        parsed(R"({"event":"endpoint.url_validation","payload":{"plainToken":"abc"},"event_ts":1})");
    EXPECT_EQ(e.what, action::url_validation);
    EXPECT_EQ(e.plain_token, "abc");
    EXPECT_FALSE(parse_event(R"({"event":"endpoint.url_validation","payload":{"plainToken":""}})"));
    EXPECT_FALSE(parse_event(R"({"event":"endpoint.url_validation","payload":{"plainToken":5}})"));
    EXPECT_FALSE(parse_event(R"({"event":"endpoint.url_validation","payload":{}})"));
    const std::string longest(256, 'x');
    EXPECT_TRUE(
        parse_event(R"({"event":"endpoint.url_validation","payload":{"plainToken":")" + longest + "\"}}"));
    EXPECT_FALSE(
        parse_event(R"({"event":"endpoint.url_validation","payload":{"plainToken":")" + longest + "x\"}}"));
}

TEST(WebhookEvent, DeactivatedDeletedAndDisassociatedRevokeTheIdAndTheLowerCasedEmail) {
    for (const std::string name : {"user.deactivated", "user.deleted", "user.disassociated"}) {
        const auto e =
            parsed(R"({"event":")" + name +
                   R"(","event_ts":1,"payload":{"account_id":"acc","operator":"admin@example.com",)"
                   R"("object":{"id":"KDcuGIm1QgePTO8WbOqwIQ","email":"JDoe@Example.COM","extra":[1]}}})");
        EXPECT_EQ(e.what, action::revoke) << name;
        EXPECT_EQ(e.account_id, "acc");
        EXPECT_EQ(e.users, (std::vector<std::string>{"KDcuGIm1QgePTO8WbOqwIQ", "jdoe@example.com"}));
    }
}

TEST(WebhookEvent, SignedOutEvictsWithoutRevoking) {
    const auto e = parsed(R"({"event":"user.signed_out","payload":{"object":{"id":"u1","email":"a@b.c"}}})");
    EXPECT_EQ(e.what, action::evict);
    EXPECT_EQ(e.users, (std::vector<std::string>{"u1", "a@b.c"}));
}

TEST(WebhookEvent, UserUpdatedEvictsOnSignOutPasswordOrEmailOnly) {
    EXPECT_EQ(
        parsed(R"({"event":"user.updated","payload":{"operation":"change_password","object":{"id":"u1"}}})")
            .what,
        action::evict);
    EXPECT_EQ(parsed(R"({"event":"user.updated","payload":{"operation":"sign_out_from_all_devices",)"
                     R"("object":{"id":"u1"}}})")
                  .what,
              action::evict);
    const auto renamed =
        parsed(R"({"event":"user.updated","payload":{"operation":"update","object":)"
               R"({"id":"u1","email":"new@x.io"},"old_object":{"id":"u1","email":"Old@X.io"}}})");
    EXPECT_EQ(renamed.what, action::evict);
    EXPECT_EQ(renamed.users, (std::vector<std::string>{"u1", "new@x.io", "old@x.io"}));
    const auto retitled =
        parsed(R"({"event":"user.updated","payload":{"operation":"update","object":)"
               R"({"id":"u1","job_title":"CTO"},"old_object":{"id":"u1","job_title":"CEO"}}})");
    EXPECT_EQ(retitled.what, action::ignore);
    EXPECT_FALSE(retitled.note.empty());
}

TEST(WebhookEvent, NumbersAsStringsAndStringsAsNumbersAreRead) {
    const auto e = parsed(R"({"event":"user.deleted","payload":{"account_id":12345,"object":{"id":678}}})");
    EXPECT_EQ(e.account_id, "12345");
    EXPECT_EQ(e.users, (std::vector<std::string>{"678"}));
}

TEST(WebhookEvent, ActivatedReinstatesAndDeauthorizedDropsTheAccessToken) {
    EXPECT_EQ(parsed(R"({"event":"user.activated","payload":{"object":{"id":"u1","email":"a@b.c"}}})").what,
              action::reinstate);
    const auto d = parsed(R"({"event":"app_deauthorized","payload":{"account_id":"acc","user_id":"u9"}})");
    EXPECT_EQ(d.what, action::deauthorize);
    EXPECT_EQ(d.account_id, "acc");
}

TEST(WebhookEvent, UnknownEventsAndEventsNamingNobodyAreIgnoredWithAReason) {
    const auto other = parsed(R"({"event":"meeting.started","payload":{"object":{"id":"m1"}}})");
    EXPECT_EQ(other.what, action::ignore);
    EXPECT_FALSE(other.note.empty());
    const auto nobody = parsed(R"({"event":"user.deactivated","payload":{"object":{}}})");
    EXPECT_EQ(nobody.what, action::ignore);
    EXPECT_NE(nobody.note.find("no user"), std::string::npos);
}

} // namespace
} // namespace token_broker::webhook
