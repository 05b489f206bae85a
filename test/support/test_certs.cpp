#include "test/support/test_certs.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace lb::test {

namespace {

template <auto Free>
struct Deleter {
    template <typename T>
    void operator()(T* p) const {
        Free(p);
    }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using CertIdPtr = std::unique_ptr<OCSP_CERTID, Deleter<OCSP_CERTID_free>>;
using BasicResponsePtr = std::unique_ptr<OCSP_BASICRESP, Deleter<OCSP_BASICRESP_free>>;
using ResponsePtr = std::unique_ptr<OCSP_RESPONSE, Deleter<OCSP_RESPONSE_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME_free>>;

constexpr long kHour = 3600;
constexpr long kDay = 24 * kHour;

[[noreturn]] void fail(const std::string& what) {
    unsigned long error = ERR_get_error();
    ERR_clear_error();
    throw std::runtime_error(fmt::format("test certificates: {} failed: {}", what,
                                         error ? ERR_reason_error_string(error) : "no OpenSSL error"));
}

void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

enum class KeyType { rsa, ecdsa };
enum class Role { ca, server, client };

KeyPtr make_key(KeyType type) {
    KeyPtr key(type == KeyType::rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
    check(key != nullptr, "key generation");
    return key;
}

void add_extension(X509* certificate, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
    ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
    check(extension != nullptr, "X509V3_EXT_conf_nid");
    check(X509_add_ext(certificate, extension.get(), -1) == 1, "X509_add_ext");
}

struct CertificateSpec {
    std::string common_name;
    std::string alt_names;  // "DNS:localhost,IP:127.0.0.1"; empty for none
    Role role = Role::server;
    long valid_from = -kHour;  // seconds from now
    long valid_until = 365 * kDay;
};

// Signs with `issuer_key` as `issuer` (both null: self-signed with `key`).
X509Ptr make_certificate(const CertificateSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
    X509Ptr certificate(X509_new());
    check(certificate != nullptr, "X509_new");
    X509* c = certificate.get();
    check(X509_set_version(c, X509_VERSION_3) == 1, "X509_set_version");
    unsigned char serial_bytes[16];
    check(RAND_bytes(serial_bytes, sizeof serial_bytes) == 1, "RAND_bytes");
    serial_bytes[0] &= 0x7f;  // a positive serial
    std::unique_ptr<BIGNUM, Deleter<BN_free>> serial(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
    check(serial && BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(c)) != nullptr, "serial number");
    check(X509_gmtime_adj(X509_getm_notBefore(c), spec.valid_from) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(c), spec.valid_until) != nullptr, "notAfter");
    X509_NAME* name = X509_get_subject_name(c);
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("lb tests"), -1,
                                     -1, 0) == 1,
          "subject O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1, -1, 0) == 1,
          "subject CN");
    X509* signer = issuer ? issuer : c;
    check(X509_set_issuer_name(c, X509_get_subject_name(signer)) == 1, "issuer name");
    check(X509_set_pubkey(c, key) == 1, "X509_set_pubkey");

    add_extension(c, signer, NID_subject_key_identifier, "hash");
    add_extension(c, signer, NID_authority_key_identifier, "keyid:always");
    switch (spec.role) {
        case Role::ca:
            add_extension(c, signer, NID_basic_constraints, "critical,CA:TRUE");
            add_extension(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
            break;
        case Role::server:
            add_extension(c, signer, NID_basic_constraints, "critical,CA:FALSE");
            add_extension(c, signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
            add_extension(c, signer, NID_ext_key_usage, "serverAuth");
            break;
        case Role::client:
            add_extension(c, signer, NID_basic_constraints, "critical,CA:FALSE");
            add_extension(c, signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
            add_extension(c, signer, NID_ext_key_usage, "clientAuth");
            break;
    }
    if (!spec.alt_names.empty()) add_extension(c, signer, NID_subject_alt_name, spec.alt_names);
    check(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
    return certificate;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::unique_ptr<std::FILE, Deleter<std::fclose>> file(std::fopen(path.c_str(), "wb"));
    if (!file || std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size()) {
        throw std::runtime_error("test certificates: cannot write " + path);
    }
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(size));
}

std::string pem_of(X509* certificate) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    check(bio && PEM_write_bio_X509(bio.get(), certificate) == 1, "PEM_write_bio_X509");
    return bio_text(bio.get());
}

std::string pem_of(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
    return bio_text(bio.get());
}

// A certificate with its key, in memory, and where both were written.
struct Made {
    KeyPtr key;
    X509Ptr certificate;
    CertAndKey files;
};

class Maker {
  public:
    explicit Maker(std::string dir) : dir_(std::move(dir)) {}

    Made make(const std::string& file_name, const CertificateSpec& spec, KeyType type, const Made* issuer) {
        Made made;
        made.key = make_key(type);
        made.certificate = make_certificate(spec, made.key.get(), issuer ? issuer->certificate.get() : nullptr,
                                            issuer ? issuer->key.get() : nullptr);
        made.files.cert = dir_ + "/" + file_name + ".pem";
        made.files.key = dir_ + "/" + file_name + ".key";
        write_file(made.files.cert, pem_of(made.certificate.get()));
        write_file(made.files.key, pem_of(made.key.get()));
        return made;
    }

    // A "good" response for `subject` from its issuer, signed by the issuer itself.
    std::string ocsp_good(const std::string& file_name, const Made& subject, const Made& issuer) {
        CertIdPtr id(OCSP_cert_to_id(EVP_sha1(), subject.certificate.get(), issuer.certificate.get()));
        check(id != nullptr, "OCSP_cert_to_id");
        BasicResponsePtr basic(OCSP_BASICRESP_new());
        check(basic != nullptr, "OCSP_BASICRESP_new");
        TimePtr this_update(X509_gmtime_adj(nullptr, -kHour));
        TimePtr next_update(X509_gmtime_adj(nullptr, 7 * kDay));
        check(this_update && next_update, "OCSP times");
        check(OCSP_basic_add1_status(basic.get(), id.get(), V_OCSP_CERTSTATUS_GOOD, 0, nullptr, this_update.get(),
                                     next_update.get()) != nullptr,
              "OCSP_basic_add1_status");
        check(OCSP_basic_sign(basic.get(), issuer.certificate.get(), issuer.key.get(), EVP_sha256(), nullptr, 0) == 1,
              "OCSP_basic_sign");
        ResponsePtr response(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
        check(response != nullptr, "OCSP_response_create");
        unsigned char* der = nullptr;
        int size = i2d_OCSP_RESPONSE(response.get(), &der);
        check(size > 0, "i2d_OCSP_RESPONSE");
        std::string bytes(reinterpret_cast<char*>(der), static_cast<size_t>(size));
        OPENSSL_free(der);
        std::string path = dir_ + "/" + file_name;
        write_file(path, bytes);
        return path;
    }

  private:
    std::string dir_;
};

// Removes the directory when the process exits (a static's destructor: after every test).
// Only by the process that made it: a forked child that exits normally must not take it away.
struct Directory {
    std::string path;
    pid_t owner = 0;
    ~Directory() {
        if (path.empty() || owner != ::getpid()) return;
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

TestCerts make_all(Directory& directory) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = fmt::format("{}/lb-test-certs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    std::vector<char> buffer(templ.begin(), templ.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) throw std::runtime_error("test certificates: mkdtemp failed");
    directory.path = buffer.data();
    directory.owner = ::getpid();

    TestCerts certs;
    certs.dir = directory.path;
    Maker maker(certs.dir);
    const std::string localhost_names = "DNS:localhost,IP:127.0.0.1,IP:::1";

    Made ca = maker.make("ca", {"lb test CA", "", Role::ca, -60 * kDay, 3650 * kDay}, KeyType::ecdsa, nullptr);
    Made other_ca =
        maker.make("other-ca", {"lb other CA", "", Role::ca, -60 * kDay, 3650 * kDay}, KeyType::ecdsa, nullptr);
    certs.ca = ca.files;
    certs.other_ca = other_ca.files;

    Made localhost_rsa = maker.make("localhost-rsa", {"localhost", localhost_names}, KeyType::rsa, &ca);
    certs.localhost_rsa = localhost_rsa.files;
    certs.localhost_ecdsa = maker.make("localhost-ecdsa", {"localhost", localhost_names}, KeyType::ecdsa, &ca).files;
    certs.other = maker.make("other", {"other.test", "DNS:other.test"}, KeyType::ecdsa, &ca).files;
    certs.wildcard = maker.make("wildcard", {"*.wild.test", "DNS:*.wild.test"}, KeyType::ecdsa, &ca).files;

    certs.expired =
        maker.make("expired", {"localhost", localhost_names, Role::server, -30 * kDay, -kDay}, KeyType::ecdsa, &ca)
            .files;
    certs.expiring_soon =
        maker
            .make("expiring-soon", {"localhost", localhost_names, Role::server, -kHour, 10 * kDay}, KeyType::ecdsa, &ca)
            .files;
    certs.untrusted_localhost =
        maker.make("untrusted-localhost", {"localhost", localhost_names}, KeyType::ecdsa, &other_ca).files;

    certs.client = maker.make("client", {"lb test client", "", Role::client}, KeyType::ecdsa, &ca).files;
    certs.other_client =
        maker.make("other-client", {"lb other client", "", Role::client}, KeyType::ecdsa, &other_ca).files;

    certs.ocsp_localhost_rsa = maker.ocsp_good("localhost-rsa.ocsp.der", localhost_rsa, ca);
    return certs;
}

}  // namespace

const TestCerts& test_certs() {
    static Directory directory;
    static std::once_flag once;
    static TestCerts certs;
    std::call_once(once, [] { certs = make_all(directory); });
    return certs;
}

}  // namespace lb::test
