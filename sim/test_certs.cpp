#include "test_certs.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace zoom_sim {
namespace {

template <auto free_fn>
struct openssl_deleter {
    template <class T>
    void operator()(T* p) const noexcept {
        free_fn(p);
    }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using bignum_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using extension_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_deleter<GENERAL_NAMES_free>>;

constexpr long ca_validity_days = 3650;
constexpr long leaf_validity_days = 397;
constexpr long backdate_seconds = 3600; // tolerates a little clock skew between processes

[[noreturn]] void fail(const std::string& what) {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    std::string message = "test_certs: " + what;
    if (e != 0) {
        char reason[256] = "";
        ERR_error_string_n(e, reason, sizeof reason);
        message += ": ";
        message += reason;
    }
    throw std::runtime_error(message);
}

void check(int ok, const char* what) {
    if (ok != 1)
        fail(what);
}

pkey_ptr make_p256_key() {
    pkey_ptr key(EVP_EC_gen("P-256"));
    if (!key)
        fail("EC P-256 key generation");
    return key;
}

bio_ptr memory_bio() {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio)
        fail("BIO_new");
    return bio;
}

std::string bio_contents(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string to_pem(X509* cert) {
    auto bio = memory_bio();
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    return bio_contents(bio.get());
}

std::string to_pem(EVP_PKEY* key) {
    auto bio = memory_bio();
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    return bio_contents(bio.get());
}

bio_ptr read_only_bio(const std::string& pem) {
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio)
        fail("BIO_new_mem_buf");
    return bio;
}

// A random positive serial of 159 bits, so it fits the 20 octets RFC 5280 allows.
void set_random_serial(X509* cert) {
    bignum_ptr serial(BN_new());
    if (!serial)
        fail("BN_new");
    check(BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD), "BN_rand");
    if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr)
        fail("BN_to_ASN1_INTEGER");
}

void set_common_name(X509_NAME* name, const std::string& common_name) {
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>("token-broker tests"), -1, -1, 0),
          "X509_NAME_add_entry_by_txt O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0),
          "X509_NAME_add_entry_by_txt CN");
}

// Adds an extension written in OpenSSL's configuration syntax; `issuer` may be `cert` itself.
void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    extension_ptr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext)
        fail(std::string("extension ") + OBJ_nid2sn(nid));
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

void add_subject_alt_names(X509* cert, const std::vector<std::string>& dns_names,
                           const std::vector<std::string>& ip_addresses) {
    if (dns_names.empty() && ip_addresses.empty())
        return;
    general_names_ptr names(sk_GENERAL_NAME_new_null());
    if (!names)
        fail("sk_GENERAL_NAME_new_null");
    for (const auto& dns : dns_names) {
        ASN1_IA5STRING* text = ASN1_IA5STRING_new();
        if (text == nullptr || ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size())) != 1) {
            ASN1_IA5STRING_free(text);
            fail("SAN DNS name " + dns);
        }
        GENERAL_NAME* name = GENERAL_NAME_new();
        if (name == nullptr) {
            ASN1_IA5STRING_free(text);
            fail("GENERAL_NAME_new");
        }
        GENERAL_NAME_set0_value(name, GEN_DNS, text);
        if (sk_GENERAL_NAME_push(names.get(), name) == 0) {
            GENERAL_NAME_free(name);
            fail("sk_GENERAL_NAME_push");
        }
    }
    for (const auto& ip : ip_addresses) {
        ASN1_OCTET_STRING* address = a2i_IPADDRESS(ip.c_str());
        if (address == nullptr)
            fail("SAN IP address " + ip);
        GENERAL_NAME* name = GENERAL_NAME_new();
        if (name == nullptr) {
            ASN1_OCTET_STRING_free(address);
            fail("GENERAL_NAME_new");
        }
        GENERAL_NAME_set0_value(name, GEN_IPADD, address);
        if (sk_GENERAL_NAME_push(names.get(), name) == 0) {
            GENERAL_NAME_free(name);
            fail("sk_GENERAL_NAME_push");
        }
    }
    check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
          "subjectAltName");
}

// A certificate for `key` named `common_name`, not yet carrying extensions nor signed.
x509_ptr new_certificate(const std::string& common_name, EVP_PKEY* key, X509* issuer, long validity_days) {
    x509_ptr cert(X509_new());
    if (!cert)
        fail("X509_new");
    check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
    set_random_serial(cert.get());
    if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -backdate_seconds) == nullptr ||
        X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(validity_days), 0, nullptr) ==
            nullptr)
        fail("validity");
    set_common_name(X509_get_subject_name(cert.get()), common_name);
    X509_NAME* issuer_name =
        issuer != nullptr ? X509_get_subject_name(issuer) : X509_get_subject_name(cert.get());
    check(X509_set_issuer_name(cert.get(), issuer_name), "X509_set_issuer_name");
    check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
    return cert;
}

void sign(X509* cert, EVP_PKEY* issuer_key) {
    if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0)
        fail("X509_sign");
}

} // namespace

test_ca::test_ca(const std::string& common_name) {
    pkey_ptr key = make_p256_key();
    x509_ptr cert = new_certificate(common_name, key.get(), nullptr, ca_validity_days);
    add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
    add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
    add_extension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always");
    sign(cert.get(), key.get());

    ca_.cert = to_pem(cert.get());
    ca_.key = to_pem(key.get());
    key_ = key.release();
    cert_ = cert.release();
}

test_ca::test_ca(const pem_pair& saved) : ca_(saved) {
    auto cert_bio = read_only_bio(saved.cert);
    x509_ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
    if (!cert)
        fail("reading the CA certificate");
    auto key_bio = read_only_bio(saved.key);
    pkey_ptr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (!key)
        fail("reading the CA key");
    if (X509_check_private_key(cert.get(), key.get()) != 1)
        fail("the CA key does not belong to the CA certificate");
    key_ = key.release();
    cert_ = cert.release();
}

test_ca::~test_ca() {
    X509_free(static_cast<X509*>(cert_));
    EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

pem_pair test_ca::issue(const std::string& common_name, const std::vector<std::string>& dns_names,
                        const std::vector<std::string>& ip_addresses, bool client) const {
    auto* ca_cert = static_cast<X509*>(cert_);
    auto* ca_key = static_cast<EVP_PKEY*>(key_);

    pkey_ptr key = make_p256_key();
    x509_ptr cert = new_certificate(common_name, key.get(), ca_cert, leaf_validity_days);
    add_extension(cert.get(), ca_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), ca_cert, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), ca_cert, NID_ext_key_usage, client ? "clientAuth" : "serverAuth");
    add_extension(cert.get(), ca_cert, NID_subject_key_identifier, "hash");
    add_extension(cert.get(), ca_cert, NID_authority_key_identifier, "keyid:always");
    add_subject_alt_names(cert.get(), dns_names, ip_addresses);
    sign(cert.get(), ca_key);
    return {to_pem(cert.get()), to_pem(key.get())};
}

void write_file(const std::string& path, const std::string& contents) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path target(path);
    if (target.has_parent_path())
        fs::create_directories(target.parent_path(), ec);
    if (ec)
        throw std::runtime_error("cannot create the directory of " + path + ": " + ec.message());
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out)
        throw std::runtime_error("cannot write " + path);
}

} // namespace zoom_sim
