#include "core/error.hpp"

#include <gtest/gtest.h>

namespace token_broker {
namespace {

TEST(Error, EveryCodeHasANameAndAStatus) {
    EXPECT_EQ(code_name(errc::invalid_request), "invalid_request");
    EXPECT_EQ(http_status(errc::invalid_request), 400u);
    EXPECT_EQ(http_status(errc::upstream_rejected), 400u);
    EXPECT_EQ(http_status(errc::unauthorized), 401u);
    EXPECT_EQ(http_status(errc::forbidden), 403u);
    EXPECT_EQ(http_status(errc::token_unavailable), 404u);
    EXPECT_EQ(http_status(errc::method_not_allowed), 405u);
    EXPECT_EQ(http_status(errc::rate_limited), 429u);
    EXPECT_EQ(http_status(errc::headers_too_large), 431u);
    EXPECT_EQ(http_status(errc::upstream_error), 502u);
    EXPECT_EQ(http_status(errc::not_ready), 503u);
    EXPECT_EQ(http_status(errc::upstream_unavailable), 503u);
    EXPECT_EQ(http_status(errc::upstream_timeout), 504u);
    EXPECT_EQ(code_name(errc::upstream_timeout), "upstream_timeout");
}

TEST(Error, ErrorCodesAreTruthy) {
    boost::system::error_code ec = errc::invalid_request;
    EXPECT_TRUE(ec);
    EXPECT_EQ(ec.category().name(), std::string("token_broker"));
}

TEST(Error, ResultCarriesTheError) {
    result<int> r = make_error(errc::forbidden, "no");
    ASSERT_TRUE(r.has_error());
    EXPECT_EQ(r.error().code, errc::forbidden);
    EXPECT_THROW((void)r.value(), std::runtime_error);
}

} // namespace
} // namespace token_broker
