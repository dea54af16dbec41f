// HTTP/1.1 conformance of the listener (RFC 9110, RFC 9112) where a front proxy or a security
// review would trip over it: request smuggling shapes, HEAD, Host, absolute-form targets, repeated
// X-Request-Id.
#include "server/router.hpp"
#include "server_harness.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::client;
using testing::running_server;

// Stands in for the token endpoint: every request waits (complete), and the answer names the target.
class echo_token_endpoint final : public request_handler {
public:
    std::atomic<int> calls{0};
    bool answer(const request&, connection_context&, response&) override { return false; }
    net::awaitable<void> complete(const request& req, connection_context&, response& res) override {
        ++calls;
        res.body = R"({"target":")" + req.target + R"("})";
        co_return;
    }
};

// How many answers `wire` holds: each has one Date header.
std::size_t answers(std::string_view wire) {
    std::size_t n = 0;
    for (auto at = wire.find("\r\nDate: "); at != std::string_view::npos;
         at = wire.find("\r\nDate: ", at + 1))
        ++n;
    return n;
}

struct ConformanceTest : ::testing::Test {
    testing::captured_log log;
    metrics m;
    echo_token_endpoint endpoint;
    router routes{m, [] { return std::optional<std::string>(); }, &endpoint};
    server_config cfg = [] {
        server_config c;
        c.header_timeout = 2s;
        c.idle_timeout = 2s;
        return c;
    }();
    running_server srv{cfg, routes, log.logger, m};
};

// RFC 9112 6.3: a Transfer-Encoding whose final coding is not chunked leaves the message length
// unknown; read as no body, whatever follows would be taken for a second request.
TEST_F(ConformanceTest, TransferEncodingOtherThanChunkedIs400AndClosesWithoutReadingASmuggledRequest) {
    for (std::string_view coding :
         {"xchunked", "identity", "chunked, identity", "\"chunked\"", "gzip, chunked", "chunked;x=1", ""}) {
        SCOPED_TRACE(std::string("Transfer-Encoding: ") + std::string(coding));
        client c(srv.port());
        c.send("POST /token/jdoe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + std::string(coding) +
               "\r\n\r\nGET /token/smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto wire = c.read_to_end();
        EXPECT_TRUE(wire.starts_with("HTTP/1.1 400 ")) << wire;
        EXPECT_EQ(answers(wire), 1u) << wire;
        EXPECT_NE(wire.find("Connection: close"), std::string::npos);
    }
    EXPECT_EQ(endpoint.calls.load(), 0);
}

TEST_F(ConformanceTest, TransferEncodingWithContentLengthIs400AndCloses) {
    client c(srv.port());
    c.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
           "0\r\n\r\nGET /token/smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto wire = c.read_to_end();
    EXPECT_TRUE(wire.starts_with("HTTP/1.1 400 ")) << wire;
    EXPECT_EQ(answers(wire), 1u) << wire;
    EXPECT_EQ(endpoint.calls.load(), 0);
}

TEST_F(ConformanceTest, AChunkedBodyIsReadWholeAndTheNextRequestAnswered) {
    client c(srv.port());
    c.send("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "4\r\nabcd\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 405);
    auto next = c.read();
    EXPECT_EQ(next.result_int(), 200);
    EXPECT_EQ(next.body(), R"({"status":"ok"})");
}

TEST_F(ConformanceTest, HeadIsAnsweredAsGetWithoutTheBody) {
    client c(srv.port());
    for (std::string_view path : {"/healthz", "/readyz", "/metrics"}) {
        SCOPED_TRACE(std::string(path));
        const auto get = c.get(path);
        c.send("HEAD " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto head = c.read_head();
        EXPECT_EQ(head.result_int(), 200);
        if (path != "/metrics") { // the metrics change between the two requests
            EXPECT_EQ(head[http::field::content_length], get[http::field::content_length]);
        }
        EXPECT_FALSE(head[http::field::content_length].empty());
        // Had the HEAD answer carried a body, this answer would not parse.
        const auto after = c.get("/healthz");
        EXPECT_EQ(after.result_int(), 200);
        EXPECT_EQ(after.body(), R"({"status":"ok"})");
    }
}

TEST_F(ConformanceTest, HeadOnTheTokenRouteIs405AndAnyHeadAnswerHasNoBody) {
    client c(srv.port());
    c.send("HEAD /token/jdoe HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto token = c.read_head();
    EXPECT_EQ(token.result_int(), 405);
    EXPECT_EQ(token[http::field::allow], "GET, DELETE");
    c.send("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read_head().result_int(), 404);
    EXPECT_EQ(c.get("/healthz").body(), R"({"status":"ok"})");
    EXPECT_EQ(endpoint.calls.load(), 0);

    client raw(srv.port());
    raw.send("HEAD /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto wire = raw.read_to_end();
    EXPECT_TRUE(wire.ends_with("\r\n\r\n")) << wire;
}

TEST_F(ConformanceTest, ProbesAllowGetAndHead) {
    client c(srv.port());
    c.send("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto res = c.read();
    EXPECT_EQ(res.result_int(), 405);
    EXPECT_EQ(res[http::field::allow], "GET, HEAD");
}

TEST_F(ConformanceTest, Http11WithoutHostOrWithTwoIs400AndCloses) {
    for (std::string_view headers : {"", "Host: a\r\nHost: b\r\n"}) {
        SCOPED_TRACE(std::string(headers));
        client c(srv.port());
        c.send("GET /healthz HTTP/1.1\r\n" + std::string(headers) +
               "\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto wire = c.read_to_end();
        EXPECT_TRUE(wire.starts_with("HTTP/1.1 400 ")) << wire;
        EXPECT_EQ(answers(wire), 1u) << wire;
        EXPECT_NE(wire.find("Host"), std::string::npos) << "the message names the Host header";
    }
}

TEST_F(ConformanceTest, Http10WithoutHostIsAnswered) {
    client c(srv.port());
    c.send("GET /healthz HTTP/1.0\r\n\r\n");
    const auto res = c.read();
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), R"({"status":"ok"})");
}

TEST_F(ConformanceTest, AbsoluteFormTargetsAreRoutedByTheirPath) {
    client c(srv.port());
    c.send("GET http://localhost:8080/healthz HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
    const auto probe = c.read();
    EXPECT_EQ(probe.result_int(), 200);
    EXPECT_EQ(probe.body(), R"({"status":"ok"})");

    c.send("GET HTTPS://broker.internal/token/jdoe%40example.com?type=zak HTTP/1.1\r\nHost: "
           "broker.internal\r\n\r\n");
    const auto token = c.read();
    EXPECT_EQ(token.result_int(), 200);
    EXPECT_EQ(boost::json::parse(token.body()).at("target").as_string(),
              "/token/jdoe%40example.com?type=zak");

    c.send("GET http://localhost:8080 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n");
    EXPECT_EQ(c.read().result_int(), 404); // the path "/" is no route
}

TEST_F(ConformanceTest, TwoRequestIdsAreReplacedNotRefusedAndNeitherIsEchoed) {
    client c(srv.port());
    const auto res = c.get("/healthz", "X-Request-Id: first-id\r\nX-Request-Id: second-id\r\n");
    EXPECT_EQ(res.result_int(), 200);
    const std::string id(res["X-Request-Id"]);
    EXPECT_EQ(id.size(), 16u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    EXPECT_EQ(c.get("/healthz", "X-Request-Id: only-one\r\n")["X-Request-Id"], "only-one");
}

} // namespace
} // namespace token_broker
