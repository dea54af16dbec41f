#include "core/tls_client.hpp"

#include <openssl/ssl.h>

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

} // namespace token_broker
