#include "core/tls_client.hpp"

#include <boost/asio/ip/address.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <stdexcept>

namespace token_broker {

std::shared_ptr<ssl::context> make_tls_client_context(const std::string& ca_file, std::string_view key) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->set_default_verify_paths();
    if (!ca_file.empty()) {
        boost::system::error_code ec;
        ctx->load_verify_file(ca_file, ec);
        if (ec)
            throw std::runtime_error(std::string(key) + ": cannot load " + ca_file + ": " + ec.message());
    }
    return ctx;
}

bool expect_peer(SSL* ssl, const std::string& host) {
    boost::system::error_code not_an_address;
    net::ip::make_address(host, not_an_address);
    if (!not_an_address)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
    return SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 && SSL_set1_host(ssl, host.c_str()) == 1;
}

std::string handshake_failure(SSL* ssl, const boost::system::error_code& ec) {
    std::string message = ec.message();
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
        message += std::string(": ") + X509_verify_cert_error_string(verify);
    return message;
}

} // namespace token_broker
