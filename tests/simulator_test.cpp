// The Zoom simulator, driven by a small TLS client that verifies it as the broker will: the
// simulator's CA, SNI and the host name.
#include "core/base64.hpp"
#include "sim_program.hpp"
#include "test_certs.hpp"
#include "test_support.hpp"
#include "webhook/signature.hpp"
#include "zoom_simulator.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace zoom_sim {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;
using response = http::response<http::string_body>;
using clock_type = std::chrono::steady_clock;

constexpr auto default_timeout = 3s;

// A blocking HTTPS client over one keep-alive connection, every operation under a deadline.
class test_client {
public:
    explicit test_client(const simulator& sim, std::string host = "localhost", bool check_host = true)
        : test_client(sim.port(), sim.ca_file(), std::move(host), check_host) {}

    test_client(std::uint16_t port, const std::string& ca_file, std::string host = "localhost",
                bool check_host = true)
        : port_(port), host_(std::move(host)), check_host_(check_host) {
        tls_.load_verify_file(ca_file);
        tls_.set_verify_mode(ssl::verify_peer);
    }

    beast::error_code connect(std::chrono::milliseconds timeout = default_timeout) {
        stream_ = std::make_unique<ssl::stream<beast::tcp_stream>>(ioc_, tls_);
        SSL_set_tlsext_host_name(stream_->native_handle(), host_.c_str());
        if (check_host_)
            stream_->set_verify_callback(ssl::host_name_verification(host_));
        beast::error_code result;
        auto& tcp_layer = beast::get_lowest_layer(*stream_);
        tcp_layer.expires_after(timeout);
        tcp_layer.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_),
                                [&](beast::error_code ec) {
                                    if (ec) {
                                        result = ec;
                                        return;
                                    }
                                    stream_->async_handshake(ssl::stream_base::client,
                                                             [&](beast::error_code hs) { result = hs; });
                                });
        run();
        return result;
    }

    // Sends `req` (connecting first if need be) and reads the answer into `res`.
    beast::error_code send(http::request<http::string_body> req, response& res,
                           std::chrono::milliseconds timeout = default_timeout) {
        if (!stream_)
            if (auto ec = connect())
                return ec;
        req.set(http::field::host, host_);
        req.prepare_payload();
        res = {};
        beast::error_code result;
        beast::get_lowest_layer(*stream_).expires_after(timeout);
        http::async_write(*stream_, req, [&](beast::error_code ec, std::size_t) {
            if (ec) {
                result = ec;
                return;
            }
            http::async_read(*stream_, buffer_, res,
                             [&](beast::error_code read_ec, std::size_t) { result = read_ec; });
        });
        run();
        return result;
    }

    response get(const std::string& target, const std::string& bearer) {
        http::request<http::string_body> req{http::verb::get, target, 11};
        if (!bearer.empty())
            req.set(http::field::authorization, "Bearer " + bearer);
        response res;
        const auto ec = send(std::move(req), res);
        EXPECT_FALSE(ec) << ec.message();
        return res;
    }

    response oauth(const std::string& basic_credentials, const std::string& body,
                   const std::string& target = "/oauth/token") {
        http::request<http::string_body> req{http::verb::post, target, 11};
        req.set(http::field::authorization, "Basic " + basic_credentials);
        req.set(http::field::content_type, "application/x-www-form-urlencoded");
        req.body() = body;
        response res;
        const auto ec = send(std::move(req), res);
        EXPECT_FALSE(ec) << ec.message();
        return res;
    }

private:
    void run() {
        ioc_.restart();
        ioc_.run();
    }

    std::uint16_t port_;
    std::string host_;
    bool check_host_;
    net::io_context ioc_;
    ssl::context tls_{ssl::context::tls_client};
    std::unique_ptr<ssl::stream<beast::tcp_stream>> stream_;
    beast::flat_buffer buffer_;
};

using token_broker::base64_encode;
using token_broker::base64url_decode;

// The JSON payload of a JWT (its second, base64url part).
json::object jwt_payload(const std::string& jwt) {
    const auto first = jwt.find('.');
    const auto second = jwt.find('.', first + 1);
    EXPECT_NE(second, std::string::npos) << "not a JWT";
    const auto decoded = base64url_decode(jwt.substr(first + 1, second - first - 1), jwt.size());
    EXPECT_TRUE(decoded) << "not base64url";
    return json::parse(decoded.value_or("{}")).as_object();
}

std::int64_t lifetime(const std::string& jwt) {
    const auto payload = jwt_payload(jwt);
    return payload.at("exp").as_int64() - payload.at("iat").as_int64();
}

json::value body_of(const response& res) {
    return json::parse(res.body());
}

const std::string good_credentials = base64_encode("sim-client:sim-secret");
const std::string good_form = "grant_type=account_credentials&account_id=sim-account";

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds limit = 2s) {
    const auto deadline = clock_type::now() + limit;
    while (clock_type::now() < deadline) {
        if (condition())
            return true;
        std::this_thread::sleep_for(5ms);
    }
    return condition();
}

class Simulator : public ::testing::Test {
protected:
    std::string access_token(test_client& client) {
        auto res = client.oauth(good_credentials, good_form);
        EXPECT_EQ(res.result_int(), 200u) << res.body();
        return std::string(body_of(res).at("access_token").as_string());
    }

    // A fresh connection, an access token and one token request.
    response fetch(const std::string& target) {
        test_client client(sim);
        return client.get(target, access_token(client));
    }

    simulator sim;
};

// ----- OAuth

TEST_F(Simulator, OAuthGivesAnAccessTokenForGoodCredentials) {
    test_client client(sim);
    auto res = client.oauth(good_credentials, good_form);
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    EXPECT_EQ(res[http::field::content_type], "application/json");
    EXPECT_TRUE(res["x-zm-trackingid"].starts_with("v=2.0;clid=sim;rid="));
    const auto body = body_of(res).as_object();
    EXPECT_FALSE(body.at("access_token").as_string().empty());
    EXPECT_EQ(body.at("token_type"), "bearer");
    EXPECT_EQ(body.at("expires_in"), 3600);
    EXPECT_EQ(body.at("scope"), "user:read:token:admin");
    EXPECT_EQ(body.at("api_url"), "https://api.zoom.us");
    EXPECT_EQ(sim.oauth_calls(), 1u);

    // Two tokens differ; parameters in the query are accepted too.
    auto again = client.oauth(good_credentials, "", "/oauth/token?" + good_form);
    ASSERT_EQ(again.result_int(), 200u) << again.body();
    EXPECT_NE(body_of(again).at("access_token"), body.at("access_token"));
}

TEST_F(Simulator, OAuthRejectsBadCredentialsGrantAndAccount) {
    test_client client(sim);
    auto bad_secret = client.oauth(base64_encode("sim-client:wrong"), good_form);
    EXPECT_EQ(bad_secret.result_int(), 400u);
    EXPECT_EQ(body_of(bad_secret),
              (json::object{{"reason", "Invalid client_id or client_secret"}, {"error", "invalid_client"}}));
    EXPECT_EQ(client.oauth("%%%not-base64", good_form).result_int(), 400u);

    auto bad_grant = client.oauth(good_credentials, "grant_type=client_credentials&account_id=sim-account");
    EXPECT_EQ(bad_grant.result_int(), 400u);
    EXPECT_EQ(body_of(bad_grant).at("error"), "unsupported_grant_type");

    auto bad_account = client.oauth(good_credentials, "grant_type=account_credentials&account_id=other");
    EXPECT_EQ(bad_account.result_int(), 400u);
    EXPECT_EQ(body_of(bad_account),
              (json::object{{"reason", "Invalid account_id"}, {"error", "invalid_request"}}));
    EXPECT_EQ(sim.oauth_calls(), 4u);
}

// ----- Tokens

TEST_F(Simulator, ZakIsAJwtValidTwoHoursByDefault) {
    auto res = fetch("/v2/users/jdoe/token?type=zak");
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    const std::string token(body_of(res).at("token").as_string());
    EXPECT_EQ(std::count(token.begin(), token.end(), '.'), 2);
    EXPECT_TRUE(token.starts_with(base64_encode(R"({"typ":"JWT","alg":"HS256"})").substr(0, 20)));
    const auto payload = jwt_payload(token);
    EXPECT_EQ(payload.at("uid"), "jdoe");
    EXPECT_EQ(payload.at("aud"), "clientsm");
    EXPECT_EQ(payload.at("exp").as_int64() - payload.at("iat").as_int64(), 7200);
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    EXPECT_NEAR(static_cast<double>(payload.at("iat").as_int64()), static_cast<double>(now), 5.0);
}

TEST_F(Simulator, ZakLivesTheTtlAskedOrTheUsersDefault) {
    EXPECT_EQ(lifetime(std::string(
                  body_of(fetch("/v2/users/jdoe/token?type=zak&ttl=600")).at("token").as_string())),
              600);
    sim.add_user("api-user", {.google_login = false, .zak_ttl = 7776000});
    EXPECT_EQ(
        lifetime(std::string(body_of(fetch("/v2/users/api-user/token?type=zak")).at("token").as_string())),
        7776000);
}

TEST_F(Simulator, TokenTypeIsTheDefaultAndLivesFourteenDays) {
    auto res = fetch("/v2/users/me/token");
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    EXPECT_EQ(lifetime(std::string(body_of(res).at("token").as_string())), 14 * 24 * 3600);
}

TEST_F(Simulator, OnBehalfTokensAreUnique) {
    test_client client(sim);
    const auto bearer = access_token(client);
    auto first = client.get("/v2/users/jdoe/token?type=onbehalf&meeting_id=123456789", bearer);
    auto second = client.get("/v2/users/jdoe/token?type=onbehalf&meeting_id=123456789", bearer);
    ASSERT_EQ(first.result_int(), 200u) << first.body();
    ASSERT_EQ(second.result_int(), 200u) << second.body();
    const std::string a(body_of(first).at("token").as_string());
    const std::string b(body_of(second).at("token").as_string());
    EXPECT_NE(a, b);
    EXPECT_NE(jwt_payload(a).at("jti"), jwt_payload(b).at("jti"));
    EXPECT_EQ(jwt_payload(a).at("mnum"), "123456789");
    EXPECT_EQ(lifetime(a), 1800);
}

TEST_F(Simulator, GoogleLoginUserHasNoTokenOfTypeToken) {
    sim.add_user("g@example.com", {.google_login = true});
    auto res = fetch("/v2/users/g%40example.com/token?type=token");
    ASSERT_EQ(res.result_int(), 200u);
    EXPECT_EQ(body_of(res), (json::object{{"token", nullptr}}));
    EXPECT_TRUE(body_of(fetch("/v2/users/g%40example.com/token?type=zak")).at("token").is_string());
}

TEST_F(Simulator, UnknownAndRemovedUsersDoNotExist) {
    auto res = fetch("/v2/users/unknown-7/token?type=zak");
    EXPECT_EQ(res.result_int(), 404u);
    EXPECT_EQ(body_of(res), (json::object{{"code", 1001}, {"message", "User does not exist: unknown-7."}}));

    sim.remove_user("gone@example.com");
    auto removed = fetch("/v2/users/gone%40example.com/token?type=zak");
    EXPECT_EQ(removed.result_int(), 404u);
    EXPECT_EQ(body_of(removed).at("message"), "User does not exist: gone@example.com.");
    sim.add_user("gone@example.com");
    EXPECT_EQ(fetch("/v2/users/gone%40example.com/token?type=zak").result_int(), 200u);
}

TEST_F(Simulator, BadTypeAndTtlAre400) {
    test_client client(sim);
    const auto bearer = access_token(client);
    for (const char* target :
         {"/v2/users/jdoe/token?type=zpk", "/v2/users/jdoe/token?type=",
          "/v2/users/jdoe/token?type=zak&ttl=0", "/v2/users/jdoe/token?type=zak&ttl=31536001",
          "/v2/users/jdoe/token?type=zak&ttl=12x", "/v2/users/jdoe/token?type=zak&ttl=-5"}) {
        auto res = client.get(target, bearer);
        EXPECT_EQ(res.result_int(), 400u) << target;
        EXPECT_EQ(body_of(res).at("code"), 300) << target;
    }
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak&ttl=31536000", bearer).result_int(), 200u);
}

TEST_F(Simulator, AccessTokenMustBeOneItIssuedAndStillValid) {
    test_client client(sim);
    const json::value invalid{{"code", 124}, {"message", "Invalid access token."}};
    auto none = client.get("/v2/users/jdoe/token?type=zak", "");
    EXPECT_EQ(none.result_int(), 401u);
    EXPECT_EQ(body_of(none), invalid);
    auto forged = client.get("/v2/users/jdoe/token?type=zak", "made-up");
    EXPECT_EQ(forged.result_int(), 401u);
    EXPECT_EQ(body_of(forged), invalid);

    const auto bearer = access_token(client);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 200u);
    sim.revoke_access_tokens();
    auto revoked = client.get("/v2/users/jdoe/token?type=zak", bearer);
    EXPECT_EQ(revoked.result_int(), 401u);
    EXPECT_EQ(body_of(revoked), invalid);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", access_token(client)).result_int(), 200u);
}

TEST(SimulatorAccessTokens, ExpireAfterTheirTtl) {
    simulator sim({.access_token_ttl = 0s});
    test_client client(sim);
    auto oauth = client.oauth(good_credentials, good_form);
    ASSERT_EQ(oauth.result_int(), 200u);
    EXPECT_EQ(body_of(oauth).at("expires_in"), 0);
    auto res = client.get("/v2/users/jdoe/token?type=zak",
                          std::string(body_of(oauth).at("access_token").as_string()));
    EXPECT_EQ(res.result_int(), 401u);
    EXPECT_EQ(body_of(res), (json::object{{"code", 124}, {"message", "Access token is expired."}}));
}

TEST_F(Simulator, UnknownRouteIsAZoomStyle404) {
    test_client client(sim);
    auto res = client.get("/v2/meetings/1", "");
    EXPECT_EQ(res.result_int(), 404u);
    EXPECT_TRUE(body_of(res).as_object().contains("code"));
    EXPECT_FALSE(res["x-zm-trackingid"].empty());
}

TEST_F(Simulator, UserIdIsOneDecodedSegmentAndTargetsKeepTheirEncoding) {
    auto res = fetch("/v2/users/a%2Fb%40example.com/token?type=zak");
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    EXPECT_EQ(jwt_payload(std::string(body_of(res).at("token").as_string())).at("uid"), "a/b@example.com");
    EXPECT_EQ(sim.token_calls("a/b@example.com"), 1u);
    const auto targets = sim.received_targets();
    ASSERT_EQ(targets.size(), 2u);
    EXPECT_EQ(targets[0], "/oauth/token");
    EXPECT_EQ(targets[1], "/v2/users/a%2Fb%40example.com/token?type=zak");
}

TEST(SimulatorPadding, PadsTheTokenPayload) {
    simulator sim({.token_padding = 1000});
    test_client client(sim);
    auto oauth = client.oauth(good_credentials, good_form);
    auto res = client.get("/v2/users/jdoe/token?type=zak",
                          std::string(body_of(oauth).at("access_token").as_string()));
    ASSERT_EQ(res.result_int(), 200u);
    const auto payload = jwt_payload(std::string(body_of(res).at("token").as_string()));
    EXPECT_EQ(payload.at("pad").as_string().size(), 1000u);
}

// ----- Faults

TEST_F(Simulator, DelayAnswersNormallyAfterTheDelay) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::delay, .delay = 200ms}, "jdoe");
    const auto start = clock_type::now();
    auto res = client.get("/v2/users/jdoe/token?type=zak", bearer);
    EXPECT_GE(clock_type::now() - start, 200ms);
    EXPECT_EQ(res.result_int(), 200u);
}

TEST_F(Simulator, HangNeverAnswers) {
    {
        test_client client(sim);
        const auto bearer = access_token(client);
        sim.inject({.what = fault::kind::hang}, "jdoe");
        http::request<http::string_body> req{http::verb::get, "/v2/users/jdoe/token?type=zak", 11};
        req.set(http::field::authorization, "Bearer " + bearer);
        response res;
        const auto start = clock_type::now();
        EXPECT_EQ(client.send(req, res, 300ms), beast::error::timeout);
        EXPECT_LT(clock_type::now() - start, 2s);
        EXPECT_EQ(sim.token_calls("jdoe"), 1u);
    }
    // The client gave up (Beast closes the socket on a timeout): the simulator notices and drops the
    // connection.
    EXPECT_TRUE(wait_until([&] { return sim.open_connections() == 0; }));
}

TEST_F(Simulator, ServerErrorAnswersTheStatusWithAZoomBody) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::server_error, .status = 503}, "jdoe");
    auto res = client.get("/v2/users/jdoe/token?type=zak", bearer);
    EXPECT_EQ(res.result_int(), 503u);
    EXPECT_EQ(body_of(res).at("code"), 503);
    EXPECT_FALSE(res["x-zm-trackingid"].empty());
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 200u);
}

TEST_F(Simulator, RateLimitedCarriesRetryAfterAsGiven) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::rate_limited, .retry_after = "2020-05-31T00:00:00Z"}, "jdoe");
    sim.inject({.what = fault::kind::rate_limited, .retry_after = ""}, "jdoe");
    auto res = client.get("/v2/users/jdoe/token?type=zak", bearer);
    EXPECT_EQ(res.result_int(), 429u);
    EXPECT_EQ(res[http::field::retry_after], "2020-05-31T00:00:00Z");
    EXPECT_EQ(res["X-RateLimit-Type"], "QPS");
    EXPECT_EQ(body_of(res).at("code"), 429);
    auto bare = client.get("/v2/users/jdoe/token?type=zak", bearer);
    EXPECT_EQ(bare.result_int(), 429u);
    EXPECT_EQ(bare.count(http::field::retry_after), 0u);
}

TEST_F(Simulator, NotJsonAnswers200WithAnotherBody) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::not_json}, "jdoe");
    auto res = client.get("/v2/users/jdoe/token?type=zak", bearer);
    EXPECT_EQ(res.result_int(), 200u);
    boost::system::error_code ec;
    json::parse(res.body(), ec);
    EXPECT_TRUE(ec);
}

TEST_F(Simulator, CutMidAnswerFailsTheClientsRead) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::cut_mid_answer}, "jdoe");
    http::request<http::string_body> req{http::verb::get, "/v2/users/jdoe/token?type=zak", 11};
    req.set(http::field::authorization, "Bearer " + bearer);
    response res;
    const auto ec = client.send(req, res, 2s);
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, beast::error::timeout);
}

TEST_F(Simulator, CloseAtOnceFailsTheClientsRead) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::close_at_once}, "jdoe");
    http::request<http::string_body> req{http::verb::get, "/v2/users/jdoe/token?type=zak", 11};
    req.set(http::field::authorization, "Bearer " + bearer);
    response res;
    const auto ec = client.send(req, res, 2s);
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, beast::error::timeout);
    EXPECT_EQ(sim.token_calls("jdoe"), 1u);
}

TEST_F(Simulator, FaultsApplyTheirNumberOfTimesInOrder) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject({.what = fault::kind::server_error, .status = 500, .times = 2}, "jdoe");
    sim.inject({.what = fault::kind::server_error, .status = 502, .times = 1}, "jdoe");
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 500u);
    EXPECT_EQ(client.get("/v2/users/other/token?type=zak", bearer).result_int(), 200u);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 500u);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 502u);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 200u);

    sim.inject({.what = fault::kind::server_error, .status = 503, .times = -1}, "jdoe");
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 503u);
    sim.clear_faults();
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 200u);
    EXPECT_EQ(sim.token_calls("jdoe"), 10u);
    EXPECT_EQ(sim.token_calls("other"), 1u);
    EXPECT_EQ(sim.token_calls(), 11u);
}

TEST_F(Simulator, GlobalFaultsHitAnyRequestAndOAuthFaultsOnlyOAuth) {
    test_client client(sim);
    const auto bearer = access_token(client);
    sim.inject_oauth({.what = fault::kind::server_error, .status = 500});
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 200u);
    EXPECT_EQ(client.oauth(good_credentials, good_form).result_int(), 500u);
    EXPECT_EQ(client.oauth(good_credentials, good_form).result_int(), 200u);

    sim.inject({.what = fault::kind::server_error, .status = 502});
    sim.inject({.what = fault::kind::rate_limited, .retry_after = "1"});
    EXPECT_EQ(client.oauth(good_credentials, good_form).result_int(), 502u);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 429u);
    EXPECT_EQ(client.get("/v2/users/jdoe/token?type=zak", bearer).result_int(), 200u);
}

// ----- Counters and connections

TEST_F(Simulator, CountsCallsAndConnections) {
    {
        test_client client(sim);
        const auto bearer = access_token(client);
        client.get("/v2/users/jdoe/token?type=zak", bearer);
        client.get("/v2/users/jdoe/token?type=token", bearer);
        client.get("/v2/users/unknown-1/token?type=zak", bearer);
        client.get("/v2/users/jdoe/token?type=zak", "bad");
        EXPECT_EQ(sim.connections_accepted(), 1u); // keep-alive
        EXPECT_EQ(sim.open_connections(), 1u);
    }
    EXPECT_EQ(sim.token_calls("jdoe"), 3u);
    EXPECT_EQ(sim.token_calls("unknown-1"), 1u);
    EXPECT_EQ(sim.token_calls("nobody"), 0u);
    EXPECT_EQ(sim.token_calls(), 4u);
    EXPECT_EQ(sim.oauth_calls(), 1u);
    EXPECT_EQ(sim.received_targets().size(), 5u);
    EXPECT_TRUE(wait_until([&] { return sim.open_connections() == 0; }));

    test_client second(sim);
    ASSERT_FALSE(second.connect());
    EXPECT_TRUE(wait_until([&] { return sim.connections_accepted() == 2; }));
    sim.reset_counters();
    EXPECT_EQ(sim.token_calls(), 0u);
    EXPECT_EQ(sim.token_calls("jdoe"), 0u);
    EXPECT_EQ(sim.oauth_calls(), 0u);
    EXPECT_EQ(sim.connections_accepted(), 0u);
    EXPECT_TRUE(sim.received_targets().empty());
    EXPECT_EQ(sim.open_connections(), 1u); // a gauge: not reset
}

TEST(SimulatorThreads, ServeConcurrentClientsConsistently) {
    simulator sim({.threads = 2});
    constexpr int clients = 6;
    constexpr int requests = 40;
    std::vector<std::future<int>> results;
    for (int c = 0; c < clients; ++c)
        results.push_back(std::async(std::launch::async, [&sim, c] {
            test_client client(sim);
            auto oauth = client.oauth(good_credentials, good_form);
            const std::string bearer(body_of(oauth).at("access_token").as_string());
            int ok = 0;
            for (int i = 0; i < requests; ++i)
                ok += client.get("/v2/users/user-" + std::to_string(c) + "/token?type=zak", bearer)
                          .result_int() == 200;
            return ok;
        }));
    for (auto& r : results)
        EXPECT_EQ(r.get(), requests);
    EXPECT_EQ(sim.token_calls(), static_cast<std::uint64_t>(clients * requests));
    EXPECT_EQ(sim.token_calls("user-3"), static_cast<std::uint64_t>(requests));
    EXPECT_EQ(sim.oauth_calls(), static_cast<std::uint64_t>(clients));
    EXPECT_EQ(sim.connections_accepted(), static_cast<std::uint64_t>(clients));
}

// ----- TLS identities and certificates

TEST(SimulatorTls, WrongHostFailsHostNameVerificationOnly) {
    simulator sim({.identity = tls_identity::wrong_host});
    test_client verifying(sim);
    const auto ec = verifying.connect();
    EXPECT_TRUE(ec);
    EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
    // The chain itself is good: without the host name check the handshake succeeds.
    test_client chain_only(sim, "localhost", false);
    EXPECT_FALSE(chain_only.connect());
}

TEST(SimulatorTls, UntrustedCaFailsChainVerification) {
    simulator sim({.identity = tls_identity::untrusted_ca});
    test_client chain_only(sim, "localhost", false);
    const auto ec = chain_only.connect();
    EXPECT_TRUE(ec);
    EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
}

TEST(SimulatorTls, ReusesTheCaInItsCertDir) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("zoom-sim-test-" + std::to_string(::getpid()) + "-" +
                      std::to_string(clock_type::now().time_since_epoch().count()));
    std::string first_ca;
    {
        simulator first({.cert_dir = dir.string()});
        first_ca = token_broker::testing::read_file(first.ca_file());
        EXPECT_TRUE(std::filesystem::exists(dir / "ca-key.pem"));
    }
    EXPECT_TRUE(std::filesystem::exists(dir / "ca.pem")); // a given directory is kept
    {
        simulator second({.cert_dir = dir.string(), .hostnames = {"zoom-sim"}});
        EXPECT_EQ(token_broker::testing::read_file(second.ca_file()), first_ca);
        test_client client(second);
        EXPECT_FALSE(client.connect());
        test_client by_service_name(second, "zoom-sim");
        EXPECT_FALSE(by_service_name.connect());
    }
    std::filesystem::remove_all(dir);
}

TEST(SimulatorTls, TemporaryCertDirIsRemoved) {
    std::string dir;
    {
        simulator sim;
        dir = sim.settings().cert_dir;
        EXPECT_TRUE(std::filesystem::exists(sim.ca_file()));
    }
    EXPECT_FALSE(dir.empty());
    EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(SimulatorCertificates, IssueLeavesWithTheRightNamesAndUsage) {
    test_ca ca("unit CA");
    const auto leaf = ca.issue("client-1", {"client.example"}, {"10.0.0.1"}, true);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(leaf.cert.data(), static_cast<int>(leaf.cert.size())), &BIO_free);
    std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                     &X509_free);
    ASSERT_TRUE(cert);
    EXPECT_EQ(X509_check_host(cert.get(), "client.example", 0, 0, nullptr), 1);
    EXPECT_EQ(X509_check_host(cert.get(), "other.example", 0, 0, nullptr), 0);
    EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.1", 0), 1);
    EXPECT_TRUE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT);
    EXPECT_FALSE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER);
    EXPECT_NE(leaf.key.find("PRIVATE KEY"), std::string::npos);

    // A saved CA loads back; a key of another CA is refused.
    EXPECT_NO_THROW(test_ca(pem_pair{ca.cert_pem(), ca.key_pem()}));
    test_ca other("other CA");
    EXPECT_THROW(test_ca(pem_pair{ca.cert_pem(), other.key_pem()}), std::runtime_error);
}

// ----- Zoom's event notifications (the admin calls)

// A tiny HTTP listener on loopback in the place of the broker's webhook listener: it keeps every
// request it is sent and answers each with `status` and `body`.
class event_listener {
public:
    explicit event_listener(unsigned status = 200, std::string body = R"({"outcome":"evicted"})")
        : status_(status), body_(std::move(body)) {
        thread_ = std::thread([this] { serve(); });
    }
    ~event_listener() {
        stopping_ = true;
        beast::error_code ignored;
        tcp::socket wake(ioc_); // unblocks the accept
        wake.connect(acceptor_.local_endpoint(), ignored);
        thread_.join();
    }
    event_listener(const event_listener&) = delete;
    event_listener& operator=(const event_listener&) = delete;

    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/zoom/webhook";
    }

    // The requests received so far, once there are at least `n` (fewer when `limit` passes first).
    std::vector<http::request<http::string_body>> received(std::size_t n,
                                                           std::chrono::milliseconds limit = 5s) {
        std::unique_lock lock(mutex_);
        arrived_.wait_for(lock, limit, [&] { return requests_.size() >= n; });
        return requests_;
    }

private:
    void serve() {
        while (!stopping_) {
            tcp::socket socket(ioc_);
            beast::error_code ec;
            acceptor_.accept(socket, ec);
            if (ec || stopping_)
                return;
            beast::flat_buffer buffer;
            http::request<http::string_body> req;
            http::read(socket, buffer, req, ec);
            if (ec)
                continue;
            {
                std::lock_guard lock(mutex_);
                requests_.push_back(req);
            }
            arrived_.notify_all();
            http::response<http::string_body> res{static_cast<http::status>(status_), 11};
            res.set(http::field::content_type, "application/json");
            res.body() = body_;
            res.prepare_payload();
            http::write(socket, res, ec);
            socket.shutdown(tcp::socket::shutdown_both, ec);
        }
    }

    unsigned status_;
    std::string body_;
    net::io_context ioc_;
    tcp::acceptor acceptor_{ioc_, {net::ip::make_address("127.0.0.1"), 0}};
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::vector<http::request<http::string_body>> requests_;
    std::thread thread_;
};

const std::string event_secret = "simulator-test-secret-token";

// A simulator that posts its events to `hook`, signed with event_secret.
options posting_to(const event_listener& hook) {
    options o;
    o.webhook_url = hook.url();
    o.webhook_secret = event_secret;
    return o;
}

// An admin call on the simulator's own port.
response admin(test_client& client, const std::string& target, http::verb verb = http::verb::post,
               const std::string& body = "") {
    http::request<http::string_body> req{verb, target, 11};
    req.body() = body;
    response res;
    const auto ec = client.send(std::move(req), res);
    EXPECT_FALSE(ec) << ec.message();
    return res;
}

// The event's body, once its signature and timestamp have been checked as the broker checks them
// (lib/webhook/signature).
json::object signed_event(const http::request<http::string_body>& req) {
    const std::string timestamp(req["x-zm-request-timestamp"]);
    const std::string signature(req["x-zm-signature"]);
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    EXPECT_EQ(req.method(), http::verb::post);
    EXPECT_EQ(req.target(), "/zoom/webhook");
    EXPECT_EQ(req[http::field::content_type], "application/json; charset=utf-8");
    EXPECT_FALSE(timestamp.empty());
    const auto refused =
        token_broker::webhook::verify(event_secret, signature, timestamp, req.body(), now, 60s);
    EXPECT_FALSE(refused) << token_broker::webhook::describe(*refused);
    EXPECT_EQ(token_broker::webhook::verify("another-secret", signature, timestamp, req.body(), now, 60s),
              token_broker::webhook::refusal::wrong_signature);
    return json::parse(req.body()).as_object();
}

TEST(SimulatorEvents, DeactivateAnswers1001ForTheUserAndPostsASignedEventActivateUndoesIt) {
    event_listener hook;
    simulator sim(posting_to(hook));
    test_client client(sim);
    auto bearer =
        std::string(body_of(client.oauth(good_credentials, good_form)).at("access_token").as_string());
    ASSERT_EQ(client.get("/v2/users/jdoe%40example.com/token?type=zak", bearer).result_int(), 200u);

    const auto deactivated = admin(client, "/admin/users/JDoe%40Example.com/deactivate");
    EXPECT_EQ(deactivated.result_int(), 200u) << deactivated.body();
    auto deactivated_body = body_of(deactivated).as_object();
    EXPECT_GT(deactivated_body.at("took_us").to_number<std::int64_t>(), 0);
    deactivated_body.erase("took_us");
    EXPECT_EQ(deactivated_body, (json::object{{"event", "user.deactivated"},
                                              {"posted", true},
                                              {"status", 200},
                                              {"answer", R"({"outcome":"evicted"})"}}));
    auto events = hook.received(1);
    ASSERT_EQ(events.size(), 1u);
    const auto event = signed_event(events[0]);
    EXPECT_EQ(event.at("event"), "user.deactivated");
    const auto& payload = event.at("payload").as_object();
    EXPECT_EQ(payload.at("account_id"), "sim-account");
    const auto& object = payload.at("object").as_object();
    EXPECT_EQ(object.at("email"), "jdoe@example.com");
    const std::string id(object.at("id").as_string());
    EXPECT_TRUE(id.starts_with("sim")) << id;

    // Gone by its email in any case, and by its id, as Zoom says of a user who does not exist.
    for (const std::string& user :
         {std::string("jdoe%40example.com"), std::string("JDOE%40example.com"), id}) {
        const auto res = client.get("/v2/users/" + user + "/token?type=zak", bearer);
        EXPECT_EQ(res.result_int(), 404u) << user;
        EXPECT_EQ(body_of(res).at("code"), 1001) << user;
    }
    EXPECT_EQ(client.get("/v2/users/someone.else/token?type=zak", bearer).result_int(), 200u);

    const auto activated = admin(client, "/admin/users/jdoe%40example.com/activate");
    EXPECT_EQ(activated.result_int(), 200u) << activated.body();
    EXPECT_EQ(body_of(activated).at("event"), "user.activated");
    events = hook.received(2);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(signed_event(events[1]).at("event"), "user.activated");
    EXPECT_EQ(client.get("/v2/users/jdoe%40example.com/token?type=zak", bearer).result_int(), 200u);
    EXPECT_EQ(client.get("/v2/users/" + id + "/token?type=zak", bearer).result_int(), 200u);
}

TEST(SimulatorEvents, SignOutAndDeauthorizePostTheirEvents) {
    event_listener hook;
    simulator sim(posting_to(hook));
    test_client client(sim);
    const auto bearer =
        std::string(body_of(client.oauth(good_credentials, good_form)).at("access_token").as_string());

    const auto signed_out = admin(client, "/admin/users/U-123/sign_out");
    EXPECT_EQ(signed_out.result_int(), 200u) << signed_out.body();
    EXPECT_EQ(body_of(signed_out).at("event"), "user.signed_out");
    auto events = hook.received(1);
    ASSERT_EQ(events.size(), 1u);
    const auto signed_out_event = signed_event(events[0]);
    EXPECT_EQ(signed_out_event.at("event"), "user.signed_out");
    EXPECT_EQ(signed_out_event.at("payload").at("object"),
              (json::object{{"id", "U-123"},
                            {"first_name", "Sim"},
                            {"last_name", "User"},
                            {"email", "u-123@users.zoom-sim.invalid"},
                            {"type", 1}}));
    EXPECT_EQ(client.get("/v2/users/U-123/token?type=zak", bearer).result_int(), 200u)
        << "a signed-out user still has tokens";

    const auto deauthorized = admin(client, "/admin/app/deauthorize");
    EXPECT_EQ(deauthorized.result_int(), 200u) << deauthorized.body();
    EXPECT_EQ(body_of(deauthorized).at("event"), "app_deauthorized");
    events = hook.received(2);
    ASSERT_EQ(events.size(), 2u);
    const auto deauthorized_event = signed_event(events[1]);
    EXPECT_EQ(deauthorized_event.at("event"), "app_deauthorized");
    EXPECT_EQ(deauthorized_event.at("payload").at("account_id"), "sim-account");
    EXPECT_EQ(deauthorized_event.at("payload").at("client_id"), "sim-client");
    const auto refused = client.get("/v2/users/U-123/token?type=zak", bearer);
    EXPECT_EQ(refused.result_int(), 401u);
    EXPECT_EQ(body_of(refused).at("code"), 124);
    // Deauthorized, the app's credentials get no new access token until it is authorized again.
    const auto while_deauthorized = client.oauth(good_credentials, good_form);
    EXPECT_EQ(while_deauthorized.result_int(), 400u) << while_deauthorized.body();
    EXPECT_EQ(body_of(while_deauthorized).at("error"), "invalid_client");
    const auto authorized = admin(client, "/admin/app/authorize");
    EXPECT_EQ(authorized.result_int(), 200u) << authorized.body();
    EXPECT_EQ(hook.received(3, 200ms).size(), 2u) << "authorizing again posts no event";
    const auto renewed =
        std::string(body_of(client.oauth(good_credentials, good_form)).at("access_token").as_string());
    EXPECT_EQ(client.get("/v2/users/U-123/token?type=zak", renewed).result_int(), 200u);
}

TEST(SimulatorEvents, TheWebhooksAnswerIsPassedOnAndAMissingListenerIsA502) {
    event_listener refusing(503, R"({"error":{"code":"cache_unavailable"}})");
    simulator sim(posting_to(refusing));
    test_client client(sim);
    const auto refused = admin(client, "/admin/users/jdoe/sign_out");
    EXPECT_EQ(refused.result_int(), 503u);
    EXPECT_EQ(body_of(refused).at("status"), 503);
    EXPECT_EQ(body_of(refused).at("answer"), R"({"error":{"code":"cache_unavailable"}})");

    std::string nobody;
    {
        event_listener gone;
        nobody = gone.url();
    }
    sim.set_webhook(nobody, event_secret);
    const auto unreachable = admin(client, "/admin/users/jdoe/sign_out");
    EXPECT_EQ(unreachable.result_int(), 502u);
    EXPECT_EQ(body_of(unreachable).at("posted"), false);
    EXPECT_NE(std::string(body_of(unreachable).at("error").as_string()).find("cannot connect"),
              std::string::npos)
        << unreachable.body();
}

TEST(SimulatorEvents, UnknownUsersAndAdminPathsAreClear4xxAndPostNothing) {
    event_listener hook;
    simulator sim(posting_to(hook));
    sim.remove_user("gone@example.com");
    test_client client(sim);

    for (const std::string& user : {std::string("unknown-5"), std::string("gone%40example.com")}) {
        const auto res = admin(client, "/admin/users/" + user + "/deactivate");
        EXPECT_EQ(res.result_int(), 404u) << user;
        EXPECT_EQ(body_of(res).at("code"), 1001) << user;
        EXPECT_NE(std::string(body_of(res).at("message").as_string()).find("User does not exist"),
                  std::string::npos)
            << res.body();
    }
    for (const std::string& target :
         {std::string("/admin/users/jdoe/frobnicate"), std::string("/admin/nothing"),
          std::string("/admin/users/jdoe"), std::string("/admin/app/delete")}) {
        const auto res = admin(client, target);
        EXPECT_EQ(res.result_int(), 404u) << target;
        EXPECT_NE(res.body().find("No such admin call. There are POST /admin/users/{userId}/"),
                  std::string::npos)
            << target << ": " << res.body();
    }
    const auto get = admin(client, "/admin/users/jdoe/deactivate", http::verb::get);
    EXPECT_EQ(get.result_int(), 405u);
    EXPECT_EQ(get[http::field::allow], "POST");
    const auto post_counters = admin(client, "/admin/counters");
    EXPECT_EQ(post_counters.result_int(), 405u);
    EXPECT_EQ(post_counters[http::field::allow], "GET");
    EXPECT_EQ(admin(client, "/admin/webhook", http::verb::post, "not JSON").result_int(), 400u);
    EXPECT_EQ(admin(client, "/admin/webhook", http::verb::post, R"({"url":"https://x/y"})").result_int(),
              400u);

    EXPECT_TRUE(hook.received(1, 0ms).empty()) << "an event was posted for a refused call";
    EXPECT_EQ(admin(client, "/admin/users/jdoe/sign_out").result_int(), 200u) << "the listener works";
    EXPECT_EQ(hook.received(1).size(), 1u);
}

TEST(SimulatorEvents, TheWebhookUrlCanBeSetAndTheCountersRead) {
    event_listener hook;
    options no_url;
    no_url.webhook_secret = event_secret;
    simulator sim(no_url);
    test_client client(sim);
    const auto not_posted = admin(client, "/admin/users/jdoe/sign_out");
    EXPECT_EQ(not_posted.result_int(), 200u);
    EXPECT_EQ(body_of(not_posted).at("posted"), false);

    const auto set = admin(client, "/admin/webhook", http::verb::post, R"({"url":")" + hook.url() + R"("})");
    EXPECT_EQ(set.result_int(), 200u) << set.body();
    EXPECT_EQ(sim.settings().webhook_url, hook.url());
    EXPECT_EQ(admin(client, "/admin/users/jdoe/sign_out").result_int(), 200u);
    const auto events = hook.received(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(signed_event(events[0]).at("event"), "user.signed_out");

    const auto bearer =
        std::string(body_of(client.oauth(good_credentials, good_form)).at("access_token").as_string());
    client.get("/v2/users/jdoe/token?type=zak", bearer);
    client.get("/v2/users/jdoe/token?type=zak", bearer);
    client.get("/v2/users/other/token?type=zak", bearer);
    EXPECT_EQ(body_of(admin(client, "/admin/counters?user=jdoe", http::verb::get)),
              (json::object{{"oauth_calls", 1}, {"token_calls", 3}, {"user_token_calls", 2}}));
    EXPECT_EQ(body_of(admin(client, "/admin/counters", http::verb::get)),
              (json::object{{"oauth_calls", 1}, {"token_calls", 3}}));

    simulator secretless;
    test_client other(secretless);
    const auto refused =
        admin(other, "/admin/webhook", http::verb::post, R"({"url":")" + hook.url() + R"("})");
    EXPECT_EQ(refused.result_int(), 409u);
    EXPECT_NE(refused.body().find("Secret Token"), std::string::npos) << refused.body();
}

// ----- Stopping

TEST(SimulatorStop, IsQuickWithAHungRequest) {
    auto sim = std::make_unique<simulator>();
    sim->inject({.what = fault::kind::hang, .times = -1});
    auto client_done = std::async(std::launch::async, [&sim] {
        test_client client(*sim);
        http::request<http::string_body> req{http::verb::get, "/v2/users/jdoe/token?type=zak", 11};
        response res;
        return client.send(req, res, 5s);
    });
    ASSERT_TRUE(wait_until([&] { return sim->token_calls() == 1; }));
    EXPECT_EQ(client_done.wait_for(100ms), std::future_status::timeout); // hung indeed
    const auto start = clock_type::now();
    sim->stop();
    EXPECT_LT(clock_type::now() - start, 1s);
    // The hung connection was closed, not left to the client's own deadline.
    ASSERT_EQ(client_done.wait_for(2s), std::future_status::ready);
    const auto ec = client_done.get();
    EXPECT_TRUE(ec);
    EXPECT_NE(ec, beast::error::timeout);
    const auto destroy_start = clock_type::now();
    sim.reset();
    EXPECT_LT(clock_type::now() - destroy_start, 1s);
}

TEST(SimulatorStop, RefusesConnectionsAfterStop) {
    simulator sim;
    sim.stop();
    sim.stop(); // idempotent
    test_client client(sim);
    EXPECT_TRUE(client.connect(1s));
}

// ----- The zoom-sim program

using token_broker::testing::sim_program;

TEST(SimulatorProgram, AnnouncesItselfServesAndExitsCleanlyOnSignals) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("zoom-sim-program-" + std::to_string(::getpid()) + "-" +
                      std::to_string(clock_type::now().time_since_epoch().count()));
    for (int signal : {SIGTERM, SIGINT}) {
        sim_program program({"--port", "0", "--cert-dir", dir.string(), "--access-token-ttl", "60"});
        const std::string line = program.first_line();
        const std::string prefix = "zoom-sim listening on https://localhost:";
        ASSERT_TRUE(line.starts_with(prefix)) << line;
        EXPECT_NE(line.find("(CA: " + (dir / "ca.pem").string() + ")"), std::string::npos) << line;
        const auto port = static_cast<std::uint16_t>(std::stoi(line.substr(prefix.size())));

        // A client trusting the CA named on that line gets an access token with the asked ttl.
        test_client client(port, (dir / "ca.pem").string());
        auto res = client.oauth(good_credentials, good_form);
        EXPECT_EQ(res.result_int(), 200u);
        EXPECT_EQ(body_of(res).at("expires_in"), 60);

        EXPECT_EQ(program.stop(signal), 0);
    }
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace zoom_sim
