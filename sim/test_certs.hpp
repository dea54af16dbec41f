// Certificates made at run time with OpenSSL, for the Zoom simulator and for tests of TLS
// (verification, mTLS). Nothing here is meant for production use.
#pragma once

#include <string>
#include <vector>

namespace zoom_sim {

struct pem_pair {
    std::string cert; // PEM certificate
    std::string key;  // PEM private key (unencrypted)
};

// A certificate authority made in memory.
class test_ca {
public:
    // A new self-signed CA (EC P-256, valid from an hour ago for ten years) named `common_name`.
    explicit test_ca(const std::string& common_name);
    // The CA saved earlier (cert_pem() and key_pem()), so that certificates issued by a restarted
    // program chain to the same trust anchor. Throws std::runtime_error when either does not parse
    // or the key does not belong to the certificate.
    explicit test_ca(const pem_pair& saved);
    ~test_ca();
    test_ca(const test_ca&) = delete;
    test_ca& operator=(const test_ca&) = delete;

    const std::string& cert_pem() const noexcept { return ca_.cert; }
    const std::string& key_pem() const noexcept { return ca_.key; }

    // A leaf certificate signed by this CA. `dns_names` and `ip_addresses` go into the
    // subjectAltName; `client` makes it a TLS client certificate instead of a server one.
    pem_pair issue(const std::string& common_name, const std::vector<std::string>& dns_names,
                   const std::vector<std::string>& ip_addresses, bool client = false) const;

private:
    pem_pair ca_;
    void* key_ = nullptr;  // EVP_PKEY*
    void* cert_ = nullptr; // X509*
};

// Writes `contents` to `path`, creating parent directories; throws std::runtime_error on failure.
void write_file(const std::string& path, const std::string& contents);

} // namespace zoom_sim
