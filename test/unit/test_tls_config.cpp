// The `tls:` sections of lb.yaml: a listener's (certificates, versions, ciphers, tickets, client certificates) and
// a backend's or `upstream:`'s. The files they name are real, made at test time (test/support/test_certs.h), and
// every problem with them is an error at the key that names the file, but for a certificate that expires soon,
// which is a warning.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config/config.h"
#include "net/tls_files.h"
#include "test/support/config_error.h"
#include "test/support/test_certs.h"

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using lb::core::Config;
using lb::core::ConfigError;
using lb::core::load_config_string;
using lb::test::config_error_of;
using lb::test::test_certs;
using namespace std::chrono_literals;

namespace {

// A file of `content` in the test certificates' directory's sibling, removed with the test.
class TempFile {
  public:
    TempFile(const std::string& name, const std::string& content)
        : path_((std::filesystem::path(test_certs().dir).parent_path() /
                 ("lb-test-tls-config-" + std::to_string(::getpid()) + "-" + name))
                    .string()) {
        std::ofstream(path_, std::ios::binary) << content;
    }
    ~TempFile() { std::filesystem::remove(path_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// A config with one TLS listener on line 3 whose `tls:` map is `tls_body` (indented by the caller at 6 spaces),
// after a first certificate entry on lines 5-6. Line numbers in the tests below count from this layout:
//   1 backends: [127.0.0.1:9001]
//   2 listen:
//   3   - address: 127.0.0.1:8443
//   4     tls:
//   5       certificates:
//   6         - cert: ...
//   7           key: ...
//   8       <tls_body>
std::string listener_with(const std::string& cert, const std::string& key, const std::string& tls_body = "") {
    return "backends: [127.0.0.1:9001]\nlisten:\n  - address: 127.0.0.1:8443\n    tls:\n      certificates:\n"
           "        - cert: " +
           cert + "\n          key: " + key + "\n" + tls_body;
}

std::string localhost_listener(const std::string& tls_body = "") {
    return listener_with(test_certs().localhost_rsa.cert, test_certs().localhost_rsa.key, tls_body);
}

// A backend map on lines 2-3 whose `tls:` is `tls_value` (a scalar after "tls: ", or a map on the next lines,
// indented by 6).
std::string backend_with(const std::string& tls_value) {
    return "backends:\n  - address: 127.0.0.1:9001\n    tls: " + tls_value + "\n";
}

}  // namespace

TEST_CASE("the README's TLS listener loads as written", "[config][tls]") {
    const auto& certs = test_certs();
    Config config = load_config_string(
        "listen:\n"
        "  - 0.0.0.0:8080\n"
        "  - address: 0.0.0.0:8443\n"
        "    tls:\n"
        "      certificates:            # the first is the default\n"
        "        - cert: " +
            certs.localhost_rsa.cert + "\n          key: " + certs.localhost_rsa.key + "\n        - cert: " +
            certs.other.cert + "\n          key: " + certs.other.key + "\nbackends: [127.0.0.1:9001]\n",
        "t.yaml");
    REQUIRE(config.listeners.size() == 2);
    CHECK_FALSE(config.listeners[0].tls.has_value());
    REQUIRE(config.listeners[1].tls.has_value());
    const lb::net::TlsListenerConfig& tls = *config.listeners[1].tls;
    REQUIRE(tls.certificates.size() == 2);
    CHECK(tls.certificates[0] == lb::net::CertificateFiles{certs.localhost_rsa.cert, certs.localhost_rsa.key, ""});
    CHECK(tls.certificates[1] == lb::net::CertificateFiles{certs.other.cert, certs.other.key, ""});
    // Everything else is net/tls_config.h's defaults.
    lb::net::TlsListenerConfig defaults;
    defaults.certificates = tls.certificates;
    CHECK(tls == defaults);
    CHECK(config.warnings.empty());
    CHECK_FALSE(config.backends[0].tls.enabled);
}

#ifdef LB_SOURCE_DIR
// lb.yaml shows a TLS listener in comments: with real files in place of its paths, it loads as written.
TEST_CASE("lb.yaml's commented TLS listener loads once uncommented", "[config][tls]") {
    const auto& certs = test_certs();
    std::ifstream in(LB_SOURCE_DIR "/lb.yaml");
    std::string line, example;
    bool inside = false;
    while (std::getline(in, line)) {
        if (line == "# listen:") inside = true;
        if (inside && !line.starts_with("#")) break;
        if (inside) example += line.substr(std::min<size_t>(2, line.size())) + "\n";
    }
    REQUIRE(example.find("tls:") != std::string::npos);
    auto replace = [&](const std::string& from, const std::string& to) {
        size_t at = example.find(from);
        REQUIRE(at != std::string::npos);
        example.replace(at, from.size(), to);
    };
    replace("/etc/lb/site.pem", certs.localhost_rsa.cert);
    replace("/etc/lb/site.key", certs.localhost_rsa.key);
    replace("/etc/lb/site.ocsp.der", certs.ocsp_localhost_rsa);
    replace("/etc/lb/other.pem", certs.other.cert);
    replace("/etc/lb/other.key", certs.other.key);
    Config config = load_config_string(example + "backends: [127.0.0.1:9001]\n", "lb.yaml");
    REQUIRE(config.listeners.size() == 2);
    REQUIRE(config.listeners[1].tls.has_value());
    CHECK(config.listeners[1].tls->certificates.size() == 2);
    CHECK(config.listeners[1].tls->certificates[0].ocsp == certs.ocsp_localhost_rsa);
    lb::net::TlsListenerConfig defaults;
    defaults.certificates = config.listeners[1].tls->certificates;
    CHECK(*config.listeners[1].tls == defaults);  // it shows the defaults
}
#endif

TEST_CASE("every key of a listener's tls section is read", "[config][tls]") {
    const auto& certs = test_certs();
    TempFile ticket_key("ticket.key", std::string(80, 'k'));
    Config config = load_config_string(listener_with(certs.localhost_rsa.cert, certs.localhost_rsa.key,
                                                     "          ocsp: " + certs.ocsp_localhost_rsa +
                                                         "\n"
                                                         "        - cert: " +
                                                         certs.localhost_ecdsa.cert +
                                                         "\n          key: " + certs.localhost_ecdsa.key +
                                                         "\n"
                                                         "      min_version: \"1.3\"\n"
                                                         "      ciphers: ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL\n"
                                                         "      ciphersuites: TLS_AES_256_GCM_SHA384\n"
                                                         "      groups: X25519:secp384r1\n"
                                                         "      session_tickets: true\n"
                                                         "      ticket_key_file: " +
                                                         ticket_key.path() +
                                                         "\n"
                                                         "      ticket_key_rotation: 2h\n"
                                                         "      client_ca: " +
                                                         certs.ca.cert +
                                                         "\n"
                                                         "      verify_client: required\n"
                                                         "      client_subject_header: X-Client-Subject\n"));
    const lb::net::TlsListenerConfig& tls = *config.listeners.at(0).tls;
    REQUIRE(tls.certificates.size() == 2);
    CHECK(tls.certificates[0].ocsp == certs.ocsp_localhost_rsa);
    CHECK(tls.certificates[1].cert == certs.localhost_ecdsa.cert);
    CHECK(tls.min_version == lb::net::TlsVersion::tls1_3);
    CHECK(tls.ciphers == "ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL");
    CHECK(tls.ciphersuites == "TLS_AES_256_GCM_SHA384");
    CHECK(tls.groups == "X25519:secp384r1");
    CHECK(tls.session_tickets);
    CHECK(tls.ticket_key_file == ticket_key.path());
    CHECK(tls.ticket_key_rotation == 2h);
    CHECK(tls.client_ca == certs.ca.cert);
    CHECK(tls.verify_client == lb::net::ClientVerification::required);
    CHECK(tls.client_subject_header == "X-Client-Subject");
    CHECK(config.warnings.empty());

    auto verify = [&](const std::string& value) {
        return load_config_string(
                   localhost_listener("      client_ca: " + certs.ca.cert + "\n      verify_client: " + value + "\n"))
            .listeners[0]
            .tls->verify_client;
    };
    CHECK(verify("optional") == lb::net::ClientVerification::optional);
    CHECK(load_config_string(localhost_listener("      session_tickets: false\n")).listeners[0].tls->session_tickets ==
          false);
    CHECK(load_config_string(localhost_listener("      min_version: 1.2\n")).listeners[0].tls->min_version ==
          lb::net::TlsVersion::tls1_2);
}

TEST_CASE("a Unix socket listener may have TLS, and a single listen map too", "[config][tls]") {
    const auto& certs = test_certs();
    Config config = load_config_string(
        "listen:\n  address: unix:/run/lb.sock\n  tls:\n    certificates: [{cert: " + certs.localhost_ecdsa.cert +
        ", key: " + certs.localhost_ecdsa.key + "}]\nbackends: [127.0.0.1:9001]\n");
    REQUIRE(config.listeners.size() == 1);
    CHECK(config.listeners[0].address.is_unix());
    REQUIRE(config.listeners[0].tls.has_value());
    CHECK(config.listeners[0].tls->certificates.at(0).key == certs.localhost_ecdsa.key);
}

TEST_CASE("a listener's certificates are required and not empty", "[config][tls]") {
    const std::string head = "backends: [127.0.0.1:9001]\nlisten:\n  - address: 127.0.0.1:8443\n    tls:";
    CHECK(config_error_of(head + "\n      certificates: []\n") ==
          "t.yaml:5:21: 'listen[0].tls.certificates' must list at least one certificate");
    CHECK(config_error_of(head + "\n      min_version: \"1.3\"\n") ==
          "t.yaml:5:7: 'listen[0].tls.certificates' is required: a list of {cert, key} PEM files");
    CHECK(config_error_of(head + "\n") ==
          "t.yaml:4:5: 'listen[0].tls.certificates' is required: a list of {cert, key} PEM files");
    CHECK(config_error_of(head + "\n      certificates: /etc/lb/site.pem\n") ==
          "t.yaml:5:21: 'listen[0].tls.certificates' must be a list of maps with cert and key, got "
          "'/etc/lb/site.pem'");
    CHECK(config_error_of(head + "\n      certificates:\n        - /etc/lb/site.pem\n") ==
          "t.yaml:6:11: 'listen[0].tls.certificates[0]' must be a map with cert and key (and optionally ocsp), got "
          "'/etc/lb/site.pem'");
    CHECK(config_error_of(head + "\n      certificates:\n        - cert: " + test_certs().localhost_rsa.cert + "\n") ==
          "t.yaml:6:11: 'listen[0].tls.certificates[0].key' is required");
    CHECK(config_error_of(head + "\n      certificates:\n        - key: " + test_certs().localhost_rsa.key + "\n") ==
          "t.yaml:6:11: 'listen[0].tls.certificates[0].cert' is required");
    CHECK(config_error_of(head + "\n      certificates:\n        - cert: a\n          key: b\n          chain: c\n") ==
          "t.yaml:8:11: unknown key 'chain' in 'listen[0].tls.certificates[0]' (expected one of: cert, key, ocsp)");
    CHECK(config_error_of(head + "\n      certs: []\n") ==
          "t.yaml:5:7: unknown key 'certs' in 'listen[0].tls' (expected one of: certificates, min_version, ciphers, "
          "ciphersuites, groups, session_tickets, ticket_key_file, ticket_key_rotation, client_ca, verify_client, "
          "client_subject_header)");
    // A plain address string has nowhere to put TLS: it is the map form or nothing.
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlisten:\n  - address: 127.0.0.1:8443\n    tls: true\n") ==
          "t.yaml:4:10: 'listen[0].tls' must be a map with keys certificates, min_version, ciphers, ciphersuites, "
          "groups, session_tickets, ticket_key_file, ticket_key_rotation, client_ca, verify_client, "
          "client_subject_header, got 'true'");
}

TEST_CASE("certificate and key files are read and checked at load time", "[config][tls]") {
    const auto& certs = test_certs();
    const std::string missing = certs.dir + "/missing.pem";
    CHECK(config_error_of(listener_with(missing, certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': cannot read certificate file " + missing +
              ": No such file or directory");
    CHECK(config_error_of(listener_with(certs.dir, certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': cannot read certificate file " + certs.dir +
              ": Is a directory");
    // A device or a FIFO could block the load or never end.
    CHECK(config_error_of(listener_with("/dev/zero", certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': certificate file /dev/zero is not a regular file");

    TempFile der("der.crt", std::string("\x30\x82\x01\x0a\x02\x82\x01\x01", 8));
    CHECK(config_error_of(listener_with(der.path(), certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': certificate file " + der.path() +
              " is not a PEM file (expected '-----BEGIN CERTIFICATE-----')");
    CHECK(config_error_of(listener_with(certs.localhost_rsa.key, certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': certificate file " + certs.localhost_rsa.key +
              " holds no certificate (its PEM blocks: PRIVATE KEY)");
    TempFile broken("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    CHECK(config_error_of(listener_with(broken.path(), certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': certificate file " + broken.path() +
              ": certificate 1 of 1 cannot be parsed");

    CHECK(config_error_of(listener_with(certs.localhost_rsa.cert, missing)) ==
          "t.yaml:7:16: 'listen[0].tls.certificates[0].key': cannot read key file " + missing +
              ": No such file or directory");
    CHECK(config_error_of(listener_with(certs.localhost_rsa.cert, certs.localhost_rsa.cert)) ==
          "t.yaml:7:16: 'listen[0].tls.certificates[0].key': key file " + certs.localhost_rsa.cert +
              " holds no private key (its PEM blocks: CERTIFICATE)");
    CHECK(config_error_of(listener_with(certs.localhost_rsa.cert, der.path())) ==
          "t.yaml:7:16: 'listen[0].tls.certificates[0].key': key file " + der.path() +
              " is not a PEM file (expected '-----BEGIN PRIVATE KEY-----')");
    TempFile encrypted("encrypted.key",
                       "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                       "-----END ENCRYPTED PRIVATE KEY-----\n");
    CHECK(config_error_of(listener_with(certs.localhost_rsa.cert, encrypted.path())) ==
          "t.yaml:7:16: 'listen[0].tls.certificates[0].key': key file " + encrypted.path() +
              " holds an encrypted key: lb reads keys without a passphrase");
    // Another certificate's key, of the same and of another type.
    for (const std::string& key : {certs.localhost_ecdsa.key, certs.other.key}) {
        CHECK(config_error_of(listener_with(certs.localhost_rsa.cert, key)) ==
              "t.yaml:7:16: 'listen[0].tls.certificates[0].key': key file " + key +
                  " does not match the certificate in " + certs.localhost_rsa.cert + " (CN=localhost,O=lb tests)");
    }
    // The second entry is checked as the first.
    CHECK(config_error_of(localhost_listener("        - cert: " + certs.other.cert +
                                             "\n          key: " + certs.wildcard.key + "\n")) ==
          "t.yaml:9:16: 'listen[0].tls.certificates[1].key': key file " + certs.wildcard.key +
              " does not match the certificate in " + certs.other.cert + " (CN=other.test,O=lb tests)");
    CHECK(config_error_of(listener_with("\"\"", certs.localhost_rsa.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert' must not be empty");
}

TEST_CASE("an expired certificate is an error, one expiring within 30 days a warning", "[config][tls]") {
    const auto& certs = test_certs();
    std::string expired_on = lb::net::format_utc(lb::net::read_certificate_file(certs.expired.cert).not_after);
    CHECK(config_error_of(listener_with(certs.expired.cert, certs.expired.key)) ==
          "t.yaml:6:17: 'listen[0].tls.certificates[0].cert': the certificate in " + certs.expired.cert +
              " (CN=localhost,O=lb tests) expired on " + expired_on);

    Config config = load_config_string(listener_with(certs.expiring_soon.cert, certs.expiring_soon.key), "t.yaml");
    REQUIRE(config.warnings.size() == 1);
    const lb::core::ConfigWarning& warning = config.warnings[0];
    CHECK(warning.file == "t.yaml");
    CHECK(warning.line == 6);
    CHECK(warning.column == 17);
    std::string expires_on = lb::net::format_utc(lb::net::read_certificate_file(certs.expiring_soon.cert).not_after);
    // Made 10 days from now, so 9 whole days are left by the time it is read.
    CHECK_THAT(warning.to_string(),
               StartsWith("t.yaml:6:17: 'listen[0].tls.certificates[0].cert': the certificate in " +
                          certs.expiring_soon.cert + " (CN=localhost,O=lb tests) expires on " + expires_on + ", in ") &&
                   (Contains("in 9 days") || Contains("in 10 days")));
    // The config itself is whole.
    CHECK(config.listeners[0].tls->certificates[0].cert == certs.expiring_soon.cert);
}

TEST_CASE("cipher lists, ciphersuites and groups OpenSSL rejects are errors", "[config][tls]") {
    CHECK(config_error_of(localhost_listener("      ciphers: NOT-A-CIPHER\n")) ==
          "t.yaml:8:16: 'listen[0].tls.ciphers': cipher 'NOT-A-CIPHER' is not one OpenSSL knows (or it selects no "
          "usable cipher)");
    CHECK(config_error_of(localhost_listener("      ciphers: \"!aNULL\"\n")) ==
          "t.yaml:8:16: 'listen[0].tls.ciphers': OpenSSL rejects the cipher list '!aNULL': no cipher match");
    // OpenSSL itself drops an unknown name among known ones; lb does not.
    CHECK(config_error_of(
              localhost_listener("      ciphers: ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA257\n")) ==
          "t.yaml:8:16: 'listen[0].tls.ciphers': cipher 'ECDHE-RSA-AES128-GCM-SHA257' is not one OpenSSL knows (or "
          "it selects no usable cipher)");
    CHECK(config_error_of(localhost_listener("      ciphers: HIGH:!aNULL:!MD5:@STRENGTH\n")) == "");
    CHECK(config_error_of(localhost_listener("      ciphersuites: TLS_AES_128_GCM_SHA256:TLS_AES_128_GCM_SHA257\n")) ==
          "t.yaml:8:21: 'listen[0].tls.ciphersuites': 'TLS_AES_128_GCM_SHA257' is not a TLS 1.3 ciphersuite OpenSSL "
          "knows (e.g. TLS_AES_128_GCM_SHA256)");
    CHECK(config_error_of(localhost_listener("      ciphersuites: ECDHE-RSA-AES128-GCM-SHA256\n")) ==
          "t.yaml:8:21: 'listen[0].tls.ciphersuites': 'ECDHE-RSA-AES128-GCM-SHA256' is not a TLS 1.3 ciphersuite "
          "OpenSSL knows (e.g. TLS_AES_128_GCM_SHA256)");
    CHECK(config_error_of(localhost_listener("      ciphersuites: \"\"\n")) == "");
    CHECK(config_error_of(localhost_listener("      min_version: \"1.3\"\n      ciphersuites: \"\"\n")) ==
          "t.yaml:9:21: 'listen[0].tls.ciphersuites' is empty and 'min_version' is 1.3: no cipher is left");
    CHECK(config_error_of(localhost_listener("      groups: X25519:P-999\n")) ==
          "t.yaml:8:15: 'listen[0].tls.groups': 'P-999' is not a group OpenSSL knows (e.g. X25519, prime256v1, "
          "secp384r1)");
    CHECK(config_error_of(localhost_listener("      groups: \"\"\n")) ==
          "t.yaml:8:15: 'listen[0].tls.groups': the groups list is empty");
    CHECK(config_error_of(localhost_listener("      min_version: \"1.1\"\n")) ==
          "t.yaml:8:20: 'listen[0].tls.min_version' must be \"1.2\" or \"1.3\", got '1.1'");
}

TEST_CASE("session ticket keys are checked", "[config][tls]") {
    const auto& certs = test_certs();
    TempFile short_key("short.key", std::string(lb::net::kTicketKeyFileMinBytes - 1, 'k'));
    CHECK(config_error_of(localhost_listener("      ticket_key_file: " + short_key.path() + "\n")) ==
          "t.yaml:8:24: 'listen[0].tls.ticket_key_file': ticket key file " + short_key.path() +
              " holds 31 bytes; it needs at least 32 (e.g. openssl rand 80 > FILE)");
    TempFile exact_key("exact.key", std::string(lb::net::kTicketKeyFileMinBytes, 'k'));
    CHECK(config_error_of(localhost_listener("      ticket_key_file: " + exact_key.path() + "\n")) == "");
    CHECK(config_error_of(localhost_listener("      ticket_key_file: " + certs.dir + "/none.key\n")) ==
          "t.yaml:8:24: 'listen[0].tls.ticket_key_file': cannot read ticket key file " + certs.dir +
              "/none.key: No such file or directory");
    CHECK(config_error_of(
              localhost_listener("      session_tickets: false\n      ticket_key_file: " + exact_key.path() + "\n")) ==
          "t.yaml:9:24: 'listen[0].tls.ticket_key_file' is set but 'session_tickets' is false");
    CHECK(config_error_of(localhost_listener("      ticket_key_rotation: 30s\n")) ==
          "t.yaml:8:28: 'listen[0].tls.ticket_key_rotation' must be between 1m and 24h, got '30s'");
    CHECK(config_error_of(localhost_listener("      ticket_key_rotation: 90500ms\n")) ==
          "t.yaml:8:28: 'listen[0].tls.ticket_key_rotation' must be whole seconds, got '90500ms'");
}

TEST_CASE("client certificate settings are checked", "[config][tls]") {
    const auto& certs = test_certs();
    CHECK(config_error_of(localhost_listener("      verify_client: required\n")) ==
          "t.yaml:8:22: 'listen[0].tls.verify_client' is required but no 'client_ca' is set: the CA certificates to "
          "verify clients against");
    CHECK(config_error_of(localhost_listener("      verify_client: optional\n")) ==
          "t.yaml:8:22: 'listen[0].tls.verify_client' is optional but no 'client_ca' is set: the CA certificates to "
          "verify clients against");
    CHECK(
        config_error_of(localhost_listener("      client_ca: " + certs.ca.cert + "\n      verify_client: always\n")) ==
        "t.yaml:9:22: 'listen[0].tls.verify_client' must be none, optional or required, got 'always'");
    CHECK(config_error_of(
              localhost_listener("      client_ca: " + certs.dir + "/none.pem\n      verify_client: required\n")) ==
          "t.yaml:8:18: 'listen[0].tls.client_ca': cannot read CA file " + certs.dir +
              "/none.pem: No such file or directory");
    CHECK(
        config_error_of(localhost_listener("      client_ca: " + certs.ca.key + "\n      verify_client: required\n")) ==
        "t.yaml:8:18: 'listen[0].tls.client_ca': CA file " + certs.ca.key +
            " holds no certificate (its PEM blocks: PRIVATE KEY)");
    CHECK(config_error_of(localhost_listener("      client_ca: " + certs.ca.cert + "\n")) ==
          "t.yaml:8:18: 'listen[0].tls.client_ca' is set but 'verify_client' is none: set verify_client to optional "
          "or required");
    CHECK(config_error_of(localhost_listener("      client_subject_header: X-Client\n")) ==
          "t.yaml:8:30: 'listen[0].tls.client_subject_header' is set but 'verify_client' is none: there is no client "
          "certificate to pass on");
    CHECK(config_error_of(
              localhost_listener("      client_ca: " + certs.ca.cert +
                                 "\n      verify_client: optional\n      client_subject_header: \"X Client\"\n")) ==
          "t.yaml:10:30: 'listen[0].tls.client_subject_header' must be a header name, got 'X Client'");
}

TEST_CASE("an OCSP response file is read and parsed", "[config][tls]") {
    const auto& certs = test_certs();
    CHECK(config_error_of(localhost_listener("          ocsp: " + certs.dir + "/none.der\n")) ==
          "t.yaml:8:17: 'listen[0].tls.certificates[0].ocsp': cannot read OCSP response file " + certs.dir +
              "/none.der: No such file or directory");
    CHECK(config_error_of(localhost_listener("          ocsp: " + certs.localhost_rsa.cert + "\n")) ==
          "t.yaml:8:17: 'listen[0].tls.certificates[0].ocsp': OCSP response file " + certs.localhost_rsa.cert +
              " is not a DER OCSP response");
    // tryLater (3), a response with no body: parsed, but nothing to staple.
    TempFile try_later("try-later.der", std::string("\x30\x03\x0a\x01\x03", 5));
    CHECK(config_error_of(localhost_listener("          ocsp: " + try_later.path() + "\n")) ==
          "t.yaml:8:17: 'listen[0].tls.certificates[0].ocsp': OCSP response file " + try_later.path() +
              " holds an unsuccessful response (trylater)");
}

TEST_CASE("backends speak TLS with tls: true, a map, or upstream.tls as their default", "[config][tls]") {
    const auto& certs = test_certs();
    Config plain = load_config_string(backend_with("true"));
    CHECK(plain.backends[0].tls.enabled);
    lb::net::TlsUpstreamConfig enabled_defaults;
    enabled_defaults.enabled = true;
    CHECK(plain.backends[0].tls == enabled_defaults);
    CHECK_FALSE(load_config_string(backend_with("false")).backends[0].tls.enabled);

    Config full = load_config_string(backend_with("\n      verify: true\n      ca_file: " + certs.ca.cert +
                                                  "\n      sni: api.internal\n      cert: " + certs.client.cert +
                                                  "\n      key: " + certs.client.key + "\n      min_version: \"1.3\""));
    const lb::net::TlsUpstreamConfig& tls = full.backends[0].tls;
    CHECK(tls.enabled);
    CHECK(tls.verify);
    CHECK(tls.ca_file == certs.ca.cert);
    CHECK(tls.sni == "api.internal");
    CHECK(tls.client_certificate == lb::net::CertificateFiles{certs.client.cert, certs.client.key, ""});
    CHECK(tls.min_version == lb::net::TlsVersion::tls1_3);
    CHECK(load_config_string(backend_with("{}")).backends[0].tls == enabled_defaults);
    CHECK_FALSE(load_config_string(backend_with("{verify: false}")).backends[0].tls.verify);

    // upstream.tls reaches string and map backends; a backend's own tls: replaces it whole.
    Config defaulted = load_config_string("upstream:\n  tls:\n    ca_file: " + certs.ca.cert +
                                          "\nbackends:\n  - 127.0.0.1:9001\n  - address: 127.0.0.1:9002\n"
                                          "  - address: 127.0.0.1:9003\n    tls: false\n"
                                          "  - address: 127.0.0.1:9004\n    tls: {sni: other.test}\n");
    REQUIRE(defaulted.backends.size() == 4);
    CHECK(defaulted.backends[0].tls.enabled);
    CHECK(defaulted.backends[0].tls.ca_file == certs.ca.cert);
    CHECK(defaulted.backends[1].tls == defaulted.backends[0].tls);
    CHECK_FALSE(defaulted.backends[2].tls.enabled);
    CHECK(defaulted.backends[3].tls.enabled);
    CHECK(defaulted.backends[3].tls.ca_file.empty());
    CHECK(defaulted.backends[3].tls.sni == "other.test");
    CHECK(load_config_string("upstream: {tls: true, keepalive: 4}\nbackends: [127.0.0.1:9001]\n")
              .backends[0]
              .tls.enabled);
}

TEST_CASE("a backend's tls files and values are checked where they are written", "[config][tls]") {
    const auto& certs = test_certs();
    CHECK(config_error_of(backend_with("yes")) ==
          "t.yaml:3:10: 'backends[0].tls' must be true, false or a map with verify, ca_file, sni, cert, key, "
          "min_version, got 'yes'");
    CHECK(config_error_of(backend_with("[a]")) ==
          "t.yaml:3:10: 'backends[0].tls' must be true, false or a map with verify, ca_file, sni, cert, key, "
          "min_version, got a list");
    CHECK(config_error_of(backend_with("{ca: x}")) ==
          "t.yaml:3:11: unknown key 'ca' in 'backends[0].tls' (expected one of: verify, ca_file, sni, cert, key, "
          "min_version)");
    CHECK(config_error_of(backend_with("{ca_file: " + certs.dir + "/none.pem}")) ==
          "t.yaml:3:20: 'backends[0].tls.ca_file': cannot read CA file " + certs.dir +
              "/none.pem: No such file or directory");
    CHECK(config_error_of(backend_with("{ca_file: " + certs.localhost_rsa.key + "}")) ==
          "t.yaml:3:20: 'backends[0].tls.ca_file': CA file " + certs.localhost_rsa.key +
              " holds no certificate (its PEM blocks: PRIVATE KEY)");
    CHECK(config_error_of(backend_with("{verify: false, ca_file: " + certs.ca.cert + "}")) ==
          "t.yaml:3:35: 'backends[0].tls.ca_file' is set but 'verify' is false: nothing would be checked against it");
    CHECK(config_error_of(backend_with("{sni: 10.0.0.1}")) ==
          "t.yaml:3:16: 'backends[0].tls.sni' must be a host name: TLS sends no IP address as SNI");
    CHECK(config_error_of(backend_with("{sni: \"a b\"}")) ==
          "t.yaml:3:16: 'backends[0].tls.sni': invalid character ' ' in host 'a b'");
    CHECK(config_error_of(backend_with("{cert: " + certs.client.cert + "}")) ==
          "t.yaml:3:10: 'backends[0].tls.key' is required");
    CHECK(config_error_of(backend_with("{key: " + certs.client.key + "}")) ==
          "t.yaml:3:10: 'backends[0].tls.cert' is required");
    CHECK(config_error_of(backend_with("{cert: " + certs.client.cert + ", key: " + certs.other_client.key + "}")) ==
          "t.yaml:3:" + std::to_string(24 + certs.client.cert.size()) + ": 'backends[0].tls.key': key file " +
              certs.other_client.key + " does not match the certificate in " + certs.client.cert +
              " (CN=lb test client,O=lb tests)");
    CHECK(config_error_of(backend_with("{cert: " + certs.expired.cert + ", key: " + certs.expired.key + "}")) ==
          "t.yaml:3:17: 'backends[0].tls.cert': the certificate in " + certs.expired.cert +
              " (CN=localhost,O=lb tests) expired on " +
              lb::net::format_utc(lb::net::read_certificate_file(certs.expired.cert).not_after));
    CHECK(config_error_of(backend_with("{min_version: \"1.0\"}")) ==
          "t.yaml:3:24: 'backends[0].tls.min_version' must be \"1.2\" or \"1.3\", got '1.0'");
    // upstream.tls is checked once, where it is written.
    CHECK(config_error_of("upstream:\n  tls: {ca_file: " + certs.dir + "/none.pem}\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:2:18: 'upstream.tls.ca_file': cannot read CA file " + certs.dir +
              "/none.pem: No such file or directory");

    // A client certificate that expires soon: a warning where it is written, once for upstream.tls.
    Config config = load_config_string("upstream:\n  tls:\n    cert: " + certs.expiring_soon.cert + "\n    key: " +
                                           certs.expiring_soon.key + "\nbackends: [127.0.0.1:9001, 127.0.0.1:9002]\n",
                                       "t.yaml");
    REQUIRE(config.warnings.size() == 1);
    CHECK_THAT(config.warnings[0].to_string(),
               StartsWith("t.yaml:3:11: 'upstream.tls.cert': the certificate in " + certs.expiring_soon.cert));
    CHECK(config.backends[1].tls.client_certificate.cert == certs.expiring_soon.cert);
}

TEST_CASE("certificate summaries and dates", "[config][tls]") {
    const auto& certs = test_certs();
    lb::net::CertificateSummary localhost = lb::net::read_certificate_file(certs.localhost_rsa.cert);
    CHECK(localhost.subject == "CN=localhost,O=lb tests");
    CHECK(localhost.names == std::vector<std::string>{"localhost", "127.0.0.1", "::1"});
    CHECK(localhost.chain_length == 1);
    CHECK(lb::net::read_certificate_file(certs.wildcard.cert).names == std::vector<std::string>{"*.wild.test"});

    // A leaf followed by its chain: the summary is the leaf's.
    TempFile chain("chain.pem", [&] {
        std::ifstream leaf(certs.other.cert), ca(certs.ca.cert);
        return std::string(std::istreambuf_iterator<char>(leaf), {}) +
               std::string(std::istreambuf_iterator<char>(ca), {});
    }());
    lb::net::CertificateSummary chained = lb::net::read_certificate_file(chain.path());
    CHECK(chained.subject == "CN=other.test,O=lb tests");
    CHECK(chained.chain_length == 2);

    auto now = std::chrono::system_clock::now();
    lb::net::CertificateSummary summary{"CN=x", {}, now - 24h, now + 31 * 24h, 1};
    CHECK_FALSE(lb::net::check_certificate_dates(summary, "x.pem", now).has_value());
    summary.not_after = now + 29 * 24h + 1h;
    CHECK(lb::net::check_certificate_dates(summary, "x.pem", now).value_or("") ==
          "the certificate in x.pem (CN=x) expires on " + lb::net::format_utc(summary.not_after) + ", in 29 days");
    summary.not_after = now + 1h;
    CHECK_THAT(lb::net::check_certificate_dates(summary, "x.pem", now).value_or(""), EndsWith(", in less than a day"));
    summary.not_after = now;
    CHECK_THROWS_WITH(lb::net::check_certificate_dates(summary, "x.pem", now),
                      "the certificate in x.pem (CN=x) expired on " + lb::net::format_utc(now));
    summary = {"CN=x", {}, now + 2h, now + 400 * 24h, 1};
    CHECK(lb::net::check_certificate_dates(summary, "x.pem", now).value_or("") ==
          "the certificate in x.pem (CN=x) is not valid before " + lb::net::format_utc(summary.not_before));
    CHECK(lb::net::format_utc(std::chrono::system_clock::from_time_t(0)) == "1970-01-01 00:00:00 UTC");
}
