#include "net/tls_files.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace lb::net {

namespace {

template <auto Free>
struct Deleter {
    template <typename T>
    void operator()(T* p) const {
        Free(p);
    }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using OcspPtr = std::unique_ptr<OCSP_RESPONSE, Deleter<OCSP_RESPONSE_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

void close_fd(int* fd) { ::close(*fd); }

// Larger than any certificate chain or CA bundle (Debian's whole bundle is about 200 KiB).
constexpr off_t kMaxFileBytes = 16 << 20;

// The reason of the most recent error on OpenSSL's queue, which is emptied: the next check starts clean.
std::string openssl_reason() {
    unsigned long last = 0;
    while (unsigned long e = ERR_get_error()) last = e;
    if (last == 0) return "unknown OpenSSL error";
    const char* reason = ERR_reason_error_string(last);
    return reason ? reason : fmt::format("OpenSSL error {:#x}", last);
}

// A regular file of at most kMaxFileBytes: not a FIFO or a device, which could block or never end.
std::string read_file(const std::string& path, std::string_view what) {
    if (path.empty()) fail(fmt::format("the {} path is empty", what));
    auto cannot = [&](int error) { fail(fmt::format("cannot read {} {}: {}", what, path, std::strerror(error))); };
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) cannot(errno);
    std::unique_ptr<int, Deleter<close_fd>> guard(&fd);
    struct stat info {};
    if (::fstat(fd, &info) != 0) cannot(errno);
    if (S_ISDIR(info.st_mode)) cannot(EISDIR);
    if (!S_ISREG(info.st_mode)) fail(fmt::format("{} {} is not a regular file", what, path));
    if (info.st_size > kMaxFileBytes) {
        fail(fmt::format("{} {} is {} bytes long; lb reads at most {}", what, path, info.st_size, kMaxFileBytes));
    }
    std::string text(static_cast<size_t>(info.st_size), '\0');
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::read(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) cannot(errno);
        if (n == 0) break;  // shrank meanwhile
        done += static_cast<size_t>(n);
    }
    text.resize(done);
    return text;
}

BioPtr memory_bio(const std::string& bytes) {
    BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
    if (!bio) throw std::bad_alloc();
    return bio;
}

// The labels of a PEM file's blocks, in order ("CERTIFICATE", "PRIVATE KEY"); empty when it has none.
std::vector<std::string> pem_labels(const std::string& bytes) {
    std::vector<std::string> labels;
    BioPtr bio = memory_bio(bytes);
    for (;;) {
        char* name = nullptr;
        char* header = nullptr;
        unsigned char* data = nullptr;
        long length = 0;
        if (PEM_read_bio(bio.get(), &name, &header, &data, &length) != 1) break;
        labels.emplace_back(name);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
    }
    ERR_clear_error();  // the end of the file is reported as an error
    return labels;
}

bool is_certificate_label(std::string_view label) {
    return label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE" || label == "X509 CERTIFICATE";
}

// Every certificate of a PEM file, after checking that it is PEM and has some.
std::vector<X509Ptr> read_certificates(const std::string& path, std::string_view what) {
    std::string bytes = read_file(path, what);
    std::vector<std::string> labels = pem_labels(bytes);
    if (labels.empty()) {
        fail(fmt::format("{} {} is not a PEM file (expected '-----BEGIN CERTIFICATE-----')", what, path));
    }
    size_t expected = 0;
    for (const std::string& label : labels) expected += is_certificate_label(label) ? 1 : 0;
    if (expected == 0) {
        fail(fmt::format("{} {} holds no certificate (its PEM blocks: {})", what, path, fmt::join(labels, ", ")));
    }
    std::vector<X509Ptr> certificates;
    BioPtr bio = memory_bio(bytes);
    // PEM_read_bio_X509_AUX, as SSL_CTX_use_certificate_chain_file reads them: other blocks are skipped.
    while (X509* certificate = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr)) {
        certificates.emplace_back(certificate);
    }
    ERR_clear_error();
    if (certificates.size() != expected) {
        fail(
            fmt::format("{} {}: certificate {} of {} cannot be parsed", what, path, certificates.size() + 1, expected));
    }
    return certificates;
}

SystemTime to_system_time(const ASN1_TIME* time) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(time, &tm) != 1) return SystemTime{};
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string one_line_subject(X509* certificate) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio) throw std::bad_alloc();
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(size));
}

std::vector<std::string> alt_names(X509* certificate) {
    std::vector<std::string> names;
    NamesPtr general(
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)));
    if (!general) return names;
    for (int i = 0; i < sk_GENERAL_NAME_num(general.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(general.get(), i);
        if (name->type == GEN_DNS) {
            const ASN1_IA5STRING* dns = name->d.dNSName;
            names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                               static_cast<size_t>(ASN1_STRING_length(dns)));
        } else if (name->type == GEN_IPADD) {
            const unsigned char* bytes = ASN1_STRING_get0_data(name->d.iPAddress);
            int length = ASN1_STRING_length(name->d.iPAddress);
            char text[INET6_ADDRSTRLEN] = "";
            int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : AF_UNSPEC;
            if (family != AF_UNSPEC && inet_ntop(family, bytes, text, sizeof text)) names.emplace_back(text);
        }
    }
    return names;
}

std::vector<std::string> split(std::string_view text, std::string_view separators) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find_first_of(separators, start);
        if (end == std::string_view::npos) end = text.size();
        if (end > start) parts.emplace_back(text.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

SslCtxPtr throwaway_context() {
    SslCtxPtr context(SSL_CTX_new(TLS_method()));
    if (!context) fail(fmt::format("cannot create an OpenSSL context: {}", openssl_reason()));
    return context;
}

int no_passphrase(char*, int, int, void*) { return -1; }

}  // namespace

std::string format_utc(SystemTime time) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(time);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buffer;
}

CertificateSummary read_certificate_file(const std::string& path) {
    std::vector<X509Ptr> certificates = read_certificates(path, "certificate file");
    X509* leaf = certificates.front().get();
    CertificateSummary summary;
    summary.subject = one_line_subject(leaf);
    summary.names = alt_names(leaf);
    summary.not_before = to_system_time(X509_get0_notBefore(leaf));
    summary.not_after = to_system_time(X509_get0_notAfter(leaf));
    summary.chain_length = certificates.size();
    return summary;
}

void check_private_key_file(const std::string& key_path, const std::string& cert_path) {
    std::string bytes = read_file(key_path, "key file");
    std::vector<std::string> labels = pem_labels(bytes);
    if (labels.empty()) {
        fail(fmt::format("key file {} is not a PEM file (expected '-----BEGIN PRIVATE KEY-----')", key_path));
    }
    for (const std::string& label : labels) {
        if (label == "ENCRYPTED PRIVATE KEY") {
            fail(fmt::format("key file {} holds an encrypted key: lb reads keys without a passphrase", key_path));
        }
    }
    BioPtr bio = memory_bio(bytes);
    KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
    if (!key) {
        ERR_clear_error();
        fail(fmt::format("key file {} holds no private key (its PEM blocks: {})", key_path, fmt::join(labels, ", ")));
    }
    std::vector<X509Ptr> certificates = read_certificates(cert_path, "certificate file");
    if (EVP_PKEY_eq(X509_get0_pubkey(certificates.front().get()), key.get()) != 1) {
        ERR_clear_error();
        fail(fmt::format("key file {} does not match the certificate in {} ({})", key_path, cert_path,
                         one_line_subject(certificates.front().get())));
    }
}

std::optional<std::string> check_certificate_dates(const CertificateSummary& certificate, const std::string& path,
                                                   SystemTime now) {
    if (certificate.not_after <= now) {
        fail(fmt::format("the certificate in {} ({}) expired on {}", path, certificate.subject,
                         format_utc(certificate.not_after)));
    }
    if (certificate.not_before > now) {
        return fmt::format("the certificate in {} ({}) is not valid before {}", path, certificate.subject,
                           format_utc(certificate.not_before));
    }
    auto left = certificate.not_after - now;
    if (left < kCertificateExpiryWarning) {
        auto days = std::chrono::duration_cast<std::chrono::hours>(left).count() / 24;
        std::string in = days == 0 ? "less than a day" : fmt::format("{} day{}", days, days == 1 ? "" : "s");
        return fmt::format("the certificate in {} ({}) expires on {}, in {}", path, certificate.subject,
                           format_utc(certificate.not_after), in);
    }
    return std::nullopt;
}

size_t check_ca_file(const std::string& path) { return read_certificates(path, "CA file").size(); }

void check_ticket_key_file(const std::string& path) {
    std::string bytes = read_file(path, "ticket key file");
    if (bytes.size() < kTicketKeyFileMinBytes) {
        fail(fmt::format("ticket key file {} holds {} bytes; it needs at least {} (e.g. openssl rand 80 > FILE)", path,
                         bytes.size(), kTicketKeyFileMinBytes));
    }
}

void check_ocsp_response_file(const std::string& path) {
    std::string bytes = read_file(path, "OCSP response file");
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    OcspPtr response(d2i_OCSP_RESPONSE(nullptr, &data, static_cast<long>(bytes.size())));
    if (!response) {
        ERR_clear_error();
        fail(fmt::format("OCSP response file {} is not a DER OCSP response", path));
    }
    int status = OCSP_response_status(response.get());
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        fail(fmt::format("OCSP response file {} holds an unsuccessful response ({})", path,
                         OCSP_response_status_str(status)));
    }
}

void check_cipher_list(const std::string& ciphers) {
    SslCtxPtr context = throwaway_context();
    // Entry by entry first, for a message that names the one that is wrong.
    for (const std::string& entry : split(ciphers, ":, ;")) {
        if (entry.front() == '!' || entry.front() == '-' || entry.front() == '+' || entry.front() == '@') continue;
        if (SSL_CTX_set_cipher_list(context.get(), entry.c_str()) != 1) {
            ERR_clear_error();
            fail(fmt::format("cipher '{}' is not one OpenSSL knows (or it selects no usable cipher)", entry));
        }
    }
    if (SSL_CTX_set_cipher_list(context.get(), ciphers.c_str()) != 1) {
        fail(fmt::format("OpenSSL rejects the cipher list '{}': {}", ciphers, openssl_reason()));
    }
}

void check_ciphersuites(const std::string& ciphersuites) {
    // OpenSSL 3 skips names it does not know when it knows another in the list: a misspelt suite would silently
    // be missing. So each name alone first.
    for (const std::string& name : split(ciphersuites, ":")) {
        SslCtxPtr one = throwaway_context();
        bool found = false;
        if (SSL_CTX_set_ciphersuites(one.get(), name.c_str()) == 1) {
            STACK_OF(SSL_CIPHER)* list = SSL_CTX_get_ciphers(one.get());
            for (int i = 0; i < sk_SSL_CIPHER_num(list) && !found; ++i) {
                const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(list, i);
                found = std::string_view(SSL_CIPHER_get_version(cipher)) == "TLSv1.3" &&
                        name == SSL_CIPHER_get_name(cipher);
            }
        }
        ERR_clear_error();
        if (!found) {
            fail(fmt::format("'{}' is not a TLS 1.3 ciphersuite OpenSSL knows (e.g. TLS_AES_128_GCM_SHA256)", name));
        }
    }
    SslCtxPtr context = throwaway_context();
    if (SSL_CTX_set_ciphersuites(context.get(), ciphersuites.c_str()) != 1) {
        fail(fmt::format("OpenSSL rejects the ciphersuites '{}': {}", ciphersuites, openssl_reason()));
    }
}

void check_groups(const std::string& groups) {
    if (groups.empty()) fail("the groups list is empty");
    for (const std::string& name : split(groups, ":")) {
        SslCtxPtr context = throwaway_context();
        if (SSL_CTX_set1_groups_list(context.get(), name.c_str()) != 1) {
            ERR_clear_error();
            fail(fmt::format("'{}' is not a group OpenSSL knows (e.g. X25519, prime256v1, secp384r1)", name));
        }
    }
    SslCtxPtr context = throwaway_context();
    if (SSL_CTX_set1_groups_list(context.get(), groups.c_str()) != 1) {
        fail(fmt::format("OpenSSL rejects the groups '{}': {}", groups, openssl_reason()));
    }
}

}  // namespace lb::net
