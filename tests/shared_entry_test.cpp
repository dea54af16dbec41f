// The pure parts of the shared tier (cache/shared_tokens.hpp): an entry's text and back, when an
// entry read from Redis may be served, and how long Redis keeps it. No server.
#include "cache/shared_tokens.hpp"

#include <gtest/gtest.h>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

const time_point t0 = sys_clock::from_time_t(1'800'000'000);

shared_entry token_entry(time_point fetched, std::chrono::seconds life) {
    shared_entry e;
    e.what = shared_entry::kind::token;
    e.token = secret("eyJ.payload.sig");
    e.fetched_at = fetched;
    e.expires_at = fetched + life;
    return e;
}

TEST(SharedEntry, ATokenEntryComesBackAsItWent) {
    auto e = token_entry(t0 + 123ms, 7200s);
    auto back = decode_shared_entry(encode_shared_entry(e));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->what, shared_entry::kind::token);
    EXPECT_EQ(back->token.reveal(), "eyJ.payload.sig");
    EXPECT_EQ(back->fetched_at, e.fetched_at);
    EXPECT_EQ(back->expires_at, e.expires_at);
}

TEST(SharedEntry, AnErrorEntryKeepsCodeMessageZoomCodeAndRetryAfter) {
    shared_entry e;
    e.what = shared_entry::kind::error;
    e.error = make_error(errc::rate_limited, "Zoom says: slow down");
    e.error.zoom_code = 429;
    e.error.retry_after = 7s;
    e.error.asked_zoom = true;
    e.fetch_id = "0123abcd";
    auto back = decode_shared_entry(encode_shared_entry(e));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->what, shared_entry::kind::error);
    EXPECT_EQ(back->error.code, errc::rate_limited);
    EXPECT_EQ(back->error.message, "Zoom says: slow down");
    EXPECT_EQ(back->error.zoom_code, 429);
    EXPECT_EQ(back->error.retry_after, 7s);
    EXPECT_TRUE(back->error.asked_zoom);
    EXPECT_EQ(back->fetch_id, "0123abcd");

    shared_entry plain;
    plain.what = shared_entry::kind::error;
    plain.error = make_error(errc::upstream_timeout, "no answer");
    auto again = decode_shared_entry(encode_shared_entry(plain));
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->error.zoom_code);
    EXPECT_FALSE(again->error.retry_after);
    EXPECT_FALSE(again->error.asked_zoom);
}

TEST(SharedEntry, AnUnknownUserEntryComesBack) {
    shared_entry e;
    e.what = shared_entry::kind::unknown_user;
    auto back = decode_shared_entry(encode_shared_entry(e));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->what, shared_entry::kind::unknown_user);
}

TEST(SharedEntry, AnythingElseIsNotAnEntry) {
    for (std::string_view text :
         {"", "null", "[]", "{}", "not json", R"({"kind":"tok"})", R"({"kind":"token"})",
          R"({"kind":"token","token":"","fetched_at":1,"expires_at":2})",
          R"({"kind":"token","token":"t","fetched_at":-1,"expires_at":2})",
          R"({"kind":"token","token":"t","fetched_at":1,"expires_at":1e300})",
          R"({"kind":"token","token":"t","fetched_at":1,"expires_at":99999999999999999})",
          R"({"kind":"error","code":"no_such_code","message":"m"})",
          R"({"kind":"error","code":"upstream_error"})",
          R"({"kind":"error","code":"upstream_error","message":"m","zoom_code":"x"})",
          R"({"kind":"error","code":"upstream_error","message":"m","retry_after":-1})",
          R"({"kind":"error","code":"upstream_error","message":"m","zoom_code":9999999999})"})
        EXPECT_FALSE(decode_shared_entry(text)) << text;
}

TEST(SharedEntry, ATokenIsUsableUntilExpiryLessTheMarginAndForARefreshOnlyBeforeItsOwnWindow) {
    // 2 hours, margin 300 s: served until 6900 s, its final window from 6600 s.
    const auto e = token_entry(t0, 7200s);
    EXPECT_TRUE(usable_shared_entry(e, t0 + 6899s, 300s, false));
    EXPECT_FALSE(usable_shared_entry(e, t0 + 6900s, 300s, false));
    EXPECT_TRUE(usable_shared_entry(e, t0 + 6599s, 300s, true));
    EXPECT_FALSE(usable_shared_entry(e, t0 + 6600s, 300s, true));
    // A 10-minute token: margin 120 s (L / 5).
    const auto short_lived = token_entry(t0, 600s);
    EXPECT_TRUE(usable_shared_entry(short_lived, t0 + 479s, 300s, false));
    EXPECT_FALSE(usable_shared_entry(short_lived, t0 + 480s, 300s, false));

    shared_entry unknown;
    unknown.what = shared_entry::kind::unknown_user;
    EXPECT_TRUE(usable_shared_entry(unknown, t0, 300s, true));
}

TEST(SharedEntry, RedisKeepsATokenUntilItIsNoLongerServedNeverPastItsExpiry) {
    const auto e = token_entry(t0, 7200s);
    EXPECT_EQ(shared_token_lifetime(e, t0, 300s), 6900s);
    EXPECT_EQ(shared_token_lifetime(e, t0 + 6000s, 300s), 900s);
    EXPECT_LE(shared_token_lifetime(e, t0 + 6900s, 300s), 0ms);
    EXPECT_LT(t0 + shared_token_lifetime(e, t0, 0s), e.expires_at + 1ms);
}

} // namespace
} // namespace token_broker
