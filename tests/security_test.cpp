// Who may ask (caller keys and user patterns), the HTTPS listener and mTLS, metrics, and the promise
// that no secret reaches a log (CONTRACT.md sections 2, 3 and 6).
#include "auth/auth.hpp"
#include "broker_harness.hpp"
#include "config/tls_files.hpp"
#include "log/logging.hpp"
#include "test_certs.hpp"
#include "test_support.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace token_broker {
namespace {

using namespace std::chrono_literals;
using testing::bearer;
using testing::client;
using testing::error_code_of;
using testing::json_body;
using testing::key_for;
using testing::running_broker;

using testing::hex;
using testing::temp_dir;

std::string keys_json(std::initializer_list<std::pair<std::string, std::string>> keys) {
    boost::json::array list;
    for (auto& [name, plain] : keys)
        list.push_back(boost::json::object{{"name", name}, {"sha256", hex(sha256(plain))}, {"users", {"*"}}});
    return boost::json::serialize(boost::json::object{{"keys", list}});
}

auto with_two_keys = [](config& c) {
    c.auth.keys = {key_for("launcher", "launcher-key-0123456789", {"*"}),
                   key_for("team-a", "team-a-key-0123456789", {"*@a.example.com", "team-a-*"})};
};

TEST(Auth, MissingOrUnknownKeysAre401WithWwwAuthenticate) {
    running_broker b(with_two_keys);
    client c(b.port());
    for (std::string headers :
         {std::string(), bearer("not-a-key"), std::string("Authorization: Basic abc\r\n"),
          bearer("launcher-key-012345678")}) {
        auto r = c.get("/token/jdoe", headers);
        EXPECT_EQ(r.result_int(), 401) << headers;
        EXPECT_EQ(r[http::field::www_authenticate], "Bearer");
        EXPECT_EQ(error_code_of(r), "unauthorized");
    }
    EXPECT_EQ(b.sim.token_calls(), 0u);
}

TEST(Auth, AKeyMayOnlyAskForItsUsers) {
    running_broker b(with_two_keys);
    client c(b.port());
    const auto team = bearer("team-a-key-0123456789");
    EXPECT_EQ(c.get("/token/jdoe@a.example.com", team).result_int(), 200);
    EXPECT_EQ(c.get("/token/team-a-bot", team).result_int(), 200);
    for (const char* other : {"/token/jdoe@b.example.com", "/token/jdoe@a.example.com.evil", "/token/me"}) {
        auto r = c.get(other, team);
        EXPECT_EQ(r.result_int(), 403) << other;
        EXPECT_EQ(error_code_of(r), "forbidden");
    }
    c.send("DELETE /token/jdoe@b.example.com HTTP/1.1\r\nHost: x\r\n" + team + "\r\n");
    EXPECT_EQ(c.read().result_int(), 403);
    c.send("DELETE /token/jdoe@a.example.com HTTP/1.1\r\nHost: x\r\n" + team + "\r\n");
    EXPECT_EQ(c.read().result_int(), 204);
    EXPECT_EQ(c.get("/token/anyone", bearer("launcher-key-0123456789")).result_int(), 200);
    EXPECT_EQ(b.sim.token_calls("jdoe@b.example.com"), 0u);
    EXPECT_EQ(b.sim.token_calls("me"), 0u);
}

TEST(Auth, ProbesNeedNoKey) {
    running_broker b(with_two_keys);
    client c(b.port());
    EXPECT_EQ(c.get("/healthz").result_int(), 200);
    EXPECT_EQ(c.get("/metrics").result_int(), 200);
}

TEST(Auth, KeysFileIsReloadedAndABadFileKeepsTheOldKeys) {
    temp_dir dir;
    const auto keys_file = dir.file("keys.json", keys_json({{"first", "first-key-0123456789"}}));
    running_broker b([&](config& c) {
        c.auth.keys_file = keys_file;
        c.auth.keys = reload_caller_keys(c.auth);
        c.auth.keys_from_file = c.auth.keys.size();
    });
    client c(b.port());
    EXPECT_EQ(c.get("/token/u", bearer("first-key-0123456789")).result_int(), 200);
    EXPECT_EQ(c.get("/token/u", bearer("second-key-0123456789")).result_int(), 401);

    dir.file("keys.json", keys_json({{"second", "second-key-0123456789"}}));
    EXPECT_TRUE(b.app->reload_keys());
    EXPECT_EQ(c.get("/token/u", bearer("second-key-0123456789")).result_int(), 200);
    EXPECT_EQ(c.get("/token/u", bearer("first-key-0123456789")).result_int(), 401);

    dir.file("keys.json", "{ this is not json");
    EXPECT_FALSE(b.app->reload_keys());
    EXPECT_EQ(c.get("/token/u", bearer("second-key-0123456789")).result_int(), 200);
    EXPECT_NE(b.log.text().find("keeping the current caller keys"), std::string::npos);
}

TEST(Metrics, CountersMatchTheRequestsMade) {
    running_broker b;
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    for (auto user : {"m1", "m2", "m3"})
        EXPECT_EQ(c.get(std::string("/token/") + user).result_int(), 200);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(c.get("/token/m1").result_int(), 200);
    EXPECT_EQ(c.get("/token/unknown-m").result_int(), 404);
    EXPECT_EQ(c.get("/token/a?type=bad").result_int(), 400);
    const auto text = c.get("/metrics").body();
    for (const char* line : {
             R"(token_broker_requests_total{code="200",route="token"} 8)",
             R"(token_broker_requests_total{code="404",route="token"} 1)",
             R"(token_broker_requests_total{code="400",route="token"} 1)",
             "token_broker_cache_hits_total 5",
             "token_broker_cache_misses_total 4",
             "token_broker_cache_entries 3",
             R"(token_broker_upstream_requests_total{code="200",endpoint="token"} 3)",
             R"(token_broker_upstream_requests_total{code="404",endpoint="token"} 1)",
             R"(token_broker_upstream_requests_total{code="200",endpoint="oauth"} 1)",
             R"(token_broker_upstream_request_duration_seconds_count{endpoint="token"} 4)",
             "token_broker_coalesced_requests_total 0",
             "token_broker_connections_open 1",
         })
        EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

// A blocking HTTPS client, optionally presenting a client certificate.
struct tls_client {
    net::io_context ioc;
    ssl::context ctx{ssl::context::tls_client};
    std::optional<ssl::stream<beast::tcp_stream>> stream;

    tls_client(std::uint16_t port, const std::string& ca_file, const zoom_sim::pem_pair* identity) {
        ctx.load_verify_file(ca_file);
        ctx.set_verify_mode(ssl::verify_peer);
        if (identity) {
            ctx.use_certificate_chain(net::buffer(identity->cert));
            ctx.use_private_key(net::buffer(identity->key), ssl::context::pem);
        }
        stream.emplace(ioc, ctx);
        SSL_set_tlsext_host_name(stream->native_handle(), "localhost");
        stream->set_verify_callback(ssl::host_name_verification("localhost"));
        beast::get_lowest_layer(*stream).expires_after(5s);
        beast::get_lowest_layer(*stream).connect({net::ip::make_address("127.0.0.1"), port});
        stream->handshake(ssl::stream_base::client);
    }
    http::response<http::string_body> get(const std::string& target) {
        http::request<http::empty_body> req{http::verb::get, target, 11};
        req.set(http::field::host, "localhost");
        http::write(*stream, req);
        beast::flat_buffer buffer;
        http::response<http::string_body> res;
        http::read(*stream, buffer, res);
        return res;
    }
};

struct listener_certs {
    temp_dir dir;
    zoom_sim::test_ca ca{"token-broker test CA"};
    zoom_sim::pem_pair server = ca.issue("localhost", {"localhost"}, {"127.0.0.1"});
    zoom_sim::pem_pair client_identity = ca.issue("meeting-launcher", {}, {}, true);
    zoom_sim::test_ca other_ca{"someone else's CA"};
    zoom_sim::pem_pair stranger = other_ca.issue("stranger", {}, {}, true);
    std::string ca_file = dir.file("ca.pem", ca.cert_pem());
    std::string cert_file = dir.file("cert.pem", server.cert);
    std::string key_file = dir.file("key.pem", server.key);
};

TEST(Tls, TheListenerSpeaksHttps) {
    listener_certs certs;
    running_broker b([&](config& c) {
        c.server.tls.cert_file = certs.cert_file;
        c.server.tls.key_file = certs.key_file;
    });
    tls_client c(b.port(), certs.ca_file, nullptr);
    EXPECT_EQ(c.get("/token/jdoe").result_int(), 200);
    // Plain HTTP to the TLS port gets no answer.
    client plain(b.port(), 2s);
    plain.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THROW(plain.read(), std::exception);
}

TEST(Tls, MutualTlsRequiresAClientCertificateFromTheClientCa) {
    listener_certs certs;
    running_broker b([&](config& c) {
        c.server.tls.cert_file = certs.cert_file;
        c.server.tls.key_file = certs.key_file;
        c.server.tls.client_ca_file = certs.ca_file;
    });
    tls_client ok(b.port(), certs.ca_file, &certs.client_identity);
    EXPECT_EQ(ok.get("/healthz").result_int(), 200);
    auto refused = [&](const zoom_sim::pem_pair* identity) {
        try {
            tls_client c(b.port(), certs.ca_file, identity);
            c.get("/healthz"); // TLS 1.3 reports the refusal on the first read
            return false;
        } catch (const std::exception&) {
            return true;
        }
    };
    EXPECT_TRUE(refused(nullptr));
    EXPECT_TRUE(refused(&certs.stranger));
}

// Whether a TLS client limited to `max_version` and offering only `ciphers` (TLS 1.2 suites, in
// OpenSSL's names; empty: OpenSSL's defaults) completes a handshake with the listener.
bool handshake_succeeds(std::uint16_t port, const std::string& ca_file, int max_version,
                        const std::string& ciphers) {
    net::io_context ioc;
    ssl::context ctx{ssl::context::tls_client};
    ctx.load_verify_file(ca_file);
    ctx.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version);
    if (!ciphers.empty() && SSL_CTX_set_cipher_list(ctx.native_handle(), ciphers.c_str()) != 1) {
        ADD_FAILURE() << "this OpenSSL does not know " << ciphers;
        return false;
    }
    ssl::stream<beast::tcp_stream> stream(ioc, ctx);
    beast::get_lowest_layer(stream).expires_after(5s);
    beast::get_lowest_layer(stream).connect({net::ip::make_address("127.0.0.1"), port});
    beast::error_code ec;
    stream.handshake(ssl::stream_base::client, ec);
    return !ec;
}

// Mozilla's "intermediate" profile on TLS 1.2: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
// only; TLS 1.3 as OpenSSL sets it.
TEST(Tls, OnTls12TheListenerOffersOnlyForwardSecretAeadSuites) {
    listener_certs certs; // an EC P-256 server key: the ECDSA suites are the ones it can use
    running_broker b([&](config& c) {
        c.server.tls.cert_file = certs.cert_file;
        c.server.tls.key_file = certs.key_file;
    });
    for (const char* cbc : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
                            "ECDHE-ECDSA-AES256-SHA384"})
        EXPECT_FALSE(handshake_succeeds(b.port(), certs.ca_file, TLS1_2_VERSION, cbc)) << cbc;
    for (const char* aead :
         {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"})
        EXPECT_TRUE(handshake_succeeds(b.port(), certs.ca_file, TLS1_2_VERSION, aead)) << aead;
    EXPECT_TRUE(handshake_succeeds(b.port(), certs.ca_file, TLS1_3_VERSION, ""));
    EXPECT_FALSE(handshake_succeeds(b.port(), certs.ca_file, TLS1_1_VERSION, ""));

    // Whatever the key type: every suite the context allows is TLS 1.3's, or ECDHE with an AEAD
    // cipher (no static RSA key exchange, no CBC).
    ssl::context ctx = make_listener_tls_context(b.cfg.server.tls);
    const STACK_OF(SSL_CIPHER)* suites = SSL_CTX_get_ciphers(ctx.native_handle());
    ASSERT_NE(suites, nullptr);
    int tls12 = 0;
    for (int i = 0; i < sk_SSL_CIPHER_num(suites); ++i) {
        const SSL_CIPHER* suite = sk_SSL_CIPHER_value(suites, i);
        if (SSL_CIPHER_get_kx_nid(suite) == NID_kx_any) // TLS 1.3: the key exchange is always (EC)DHE
            continue;
        ++tls12;
        EXPECT_EQ(SSL_CIPHER_get_kx_nid(suite), NID_kx_ecdhe) << SSL_CIPHER_get_name(suite);
        EXPECT_EQ(SSL_CIPHER_is_aead(suite), 1) << SSL_CIPHER_get_name(suite);
    }
    EXPECT_EQ(tls12, 6) << "ECDHE-{ECDSA,RSA} with AES128-GCM, AES256-GCM and CHACHA20-POLY1305";
}

// With client_ca_file, the CertificateRequest names the CA, so that a client with several
// certificates can pick the one the broker will accept.
TEST(Tls, TheCertificateRequestNamesTheClientCa) {
    listener_certs certs;
    running_broker b([&](config& c) {
        c.server.tls.cert_file = certs.cert_file;
        c.server.tls.key_file = certs.key_file;
        c.server.tls.client_ca_file = certs.ca_file;
    });
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        SCOPED_TRACE(version);
        net::io_context ioc;
        ssl::context ctx{ssl::context::tls_client};
        ctx.load_verify_file(certs.ca_file);
        ctx.set_verify_mode(ssl::verify_peer);
        ctx.use_certificate_chain(net::buffer(certs.client_identity.cert));
        ctx.use_private_key(net::buffer(certs.client_identity.key), ssl::context::pem);
        SSL_CTX_set_max_proto_version(ctx.native_handle(), version);
        ssl::stream<beast::tcp_stream> stream(ioc, ctx);
        beast::get_lowest_layer(stream).expires_after(5s);
        beast::get_lowest_layer(stream).connect({net::ip::make_address("127.0.0.1"), b.port()});
        stream.handshake(ssl::stream_base::client);
        // On a client, the names the server's CertificateRequest carried.
        const STACK_OF(X509_NAME)* names = SSL_get_client_CA_list(stream.native_handle());
        ASSERT_NE(names, nullptr);
        ASSERT_EQ(sk_X509_NAME_num(names), 1);
        char name[256];
        X509_NAME_oneline(sk_X509_NAME_value(names, 0), name, sizeof name);
        EXPECT_STREQ(name, "/O=token-broker tests/CN=token-broker test CA");
    }
}

TEST(Tls, UnusableCertificateFilesAreConfigurationErrorsAtStart) {
    listener_certs certs;
    config cfg;
    cfg.server.port = 0;
    cfg.zoom.access_token = "fixed";
    cfg.server.tls.cert_file = certs.dir.file("garbage.pem", "not a certificate");
    cfg.server.tls.key_file = certs.key_file;
    testing::captured_log log;
    application app(cfg, log.logger);
    try {
        app.start();
        FAIL() << "start() accepted a garbage certificate";
    } catch (const config_error& e) {
        EXPECT_EQ(e.key(), "server.tls.cert_file");
    }
}

TEST(Logs, JsonFormatWritesOneObjectPerLine) {
    running_broker b([](config& c) { c.log.format = log_format::json; });
    client c(b.port());
    c.get("/token/json-user");
    c.get("/token/json-user");
    c.get("/token/unknown-json");
    const auto text = b.log.text();
    std::istringstream lines(text);
    std::string line;
    int audits = 0;
    while (std::getline(lines, line)) {
        auto v = boost::json::parse(line); // throws on a line that is not JSON
        ASSERT_TRUE(v.is_object()) << line;
        EXPECT_TRUE(v.as_object().contains("time"));
        EXPECT_TRUE(v.as_object().contains("level"));
        if (v.at("msg") == "audit") {
            ++audits;
            EXPECT_TRUE(v.as_object().contains("request_id"));
            EXPECT_TRUE(v.as_object().contains("status"));
            EXPECT_EQ(v.at("user"), audits < 3 ? "json-user" : "unknown-json");
        }
    }
    EXPECT_EQ(audits, 3);
}

// Runs a broker at trace level through OAuth, misses, hits, refreshes and errors, then looks for
// every secret in everything it logged.
TEST(Logs, NoSecretEverReachesTheLog) {
    const std::string caller_key_plain = "caller-key-never-logged-0123456789";
    running_broker b([&](config& c) {
        c.auth.keys = {key_for("launcher", caller_key_plain, {"*"})};
        c.zoom.max_retries = 1;
        c.zoom.request_timeout = 1s;
    });
    b.log.logger->set_level(spdlog::level::trace);
    ASSERT_TRUE(b.wait_ready());
    client c(b.port());
    const auto auth = bearer(caller_key_plain);
    std::vector<std::string> tokens;
    auto collect = [&](const http::response<http::string_body>& r) {
        if (r.result_int() == 200)
            tokens.emplace_back(json_body(r).at("token").as_string());
    };
    collect(c.get("/token/s1", auth));
    collect(c.get("/token/s1", auth));
    collect(c.get("/token/s2?type=token", auth));
    collect(c.get("/token/s3?type=onbehalf&meeting_id=1234567890", auth));
    c.get("/token/unknown-s", auth);
    c.get("/token/s4", "Authorization: Bearer wrong-key-but-still-secret-ish\r\n");
    b.sim.inject({.what = zoom_sim::fault::kind::server_error, .status = 503, .times = 1}, "s5");
    collect(c.get("/token/s5", auth));
    b.sim.inject({.what = zoom_sim::fault::kind::not_json, .times = 1}, "s6");
    c.get("/token/s6", auth);
    b.sim.revoke_access_tokens(); // 401/124: a new access token and a retry
    collect(c.get("/token/s7", auth));
    c.send("DELETE /token/s1 HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n");
    c.read();
    ASSERT_GE(tokens.size(), 5u);
    EXPECT_GE(b.sim.oauth_calls(), 2u);

    const auto logged = b.log.text();
    ASSERT_NE(logged.find("audit"), std::string::npos); // the capture works
    for (const auto& t : tokens) {
        EXPECT_EQ(logged.find(t), std::string::npos) << "a token was logged";
        // Not even its signature part.
        EXPECT_EQ(logged.find(t.substr(t.rfind('.') + 1)), std::string::npos);
    }
    for (const auto& access : b.sim.issued_access_tokens())
        EXPECT_EQ(logged.find(access), std::string::npos) << "an access token was logged";
    EXPECT_FALSE(b.sim.issued_access_tokens().empty());
    EXPECT_EQ(logged.find(b.sim.settings().client_secret), std::string::npos);
    EXPECT_EQ(logged.find(caller_key_plain), std::string::npos);
    EXPECT_EQ(logged.find("wrong-key-but-still-secret-ish"), std::string::npos);
    EXPECT_EQ(logged.find("Bearer"), std::string::npos);
    EXPECT_EQ(logged.find("Basic "), std::string::npos);
}

} // namespace
} // namespace token_broker
