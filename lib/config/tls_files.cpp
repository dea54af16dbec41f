#include "config/tls_files.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace token_broker {

namespace ssl = boost::asio::ssl;

namespace {

void throw_unusable(std::string_view key, const boost::system::error_code& ec) {
    throw config_error(std::string(key), "cannot be used: " + ec.message());
}

} // namespace

ssl::context make_listener_tls_context(const listener_tls_config& tls, std::string_view key_prefix) {
    const std::string prefix(key_prefix);
    ssl::context ctx(ssl::context::tls_server);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                    ssl::context::single_dh_use);
    // TLS 1.2: Mozilla's "intermediate" suites without the DHE ones, ECDHE with AES-GCM or
    // ChaCha20-Poly1305 (forward secret and AEAD: no CBC, no static RSA key exchange). TLS 1.3's
    // suites are OpenSSL's, all of them AEAD with (EC)DHE.
    SSL_CTX_set_cipher_list(ctx.native_handle(), "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    // OpenSSL's default would prompt on the terminal for the passphrase of an encrypted key.
    ctx.set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); });
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(tls.cert_file, ec);
    if (ec)
        throw_unusable(prefix + ".cert_file", ec);
    ctx.use_private_key_file(tls.key_file, ssl::context::pem, ec);
    // OpenSSL compares the key with the certificate as it loads it; say so in words.
    const bool mismatch =
        ec ? ec.category() == boost::asio::error::get_ssl_category() &&
                 ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH
           : SSL_CTX_check_private_key(ctx.native_handle()) != 1;
    if (mismatch) {
        ERR_clear_error();
        throw config_error(prefix + ".key_file",
                           "is not the private key of the certificate in " + tls.cert_file);
    }
    if (ec)
        throw_unusable(prefix + ".key_file", ec);
    if (!tls.client_ca_file.empty()) {
        ctx.load_verify_file(tls.client_ca_file, ec);
        if (ec)
            throw_unusable(prefix + ".client_ca_file", ec);
        // The CAs' names go into the CertificateRequest, so that a client with several
        // certificates presents one that these CAs signed.
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
        if (!names) {
            ERR_clear_error();
            throw config_error(prefix + ".client_ca_file", "cannot be used: it holds no PEM certificate");
        }
        SSL_CTX_set_client_CA_list(ctx.native_handle(), names); // takes ownership
        ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    return ctx;
}

void check_ca_file(const std::string& path, std::string_view key) {
    ssl::context ctx(ssl::context::tls_client);
    boost::system::error_code ec;
    ctx.load_verify_file(path, ec);
    if (ec)
        throw config_error(std::string(key), "is not a PEM bundle of CA certificates: " + ec.message());
}

} // namespace token_broker
