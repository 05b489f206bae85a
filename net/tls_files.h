// Checks on what a `tls:` section names, so that a config that loads can build its OpenSSL contexts: the files
// are readable and hold what they should, a key belongs to its certificate, a certificate has not expired, and
// OpenSSL accepts the cipher, ciphersuite and group lists. Used by config/ at load time; no config types but
// tls_config.h's, no OpenSSL types in this header.
//
// Every check reads the files anew (nothing is cached) and throws std::runtime_error with a message that names
// the file and says what is wrong; it never prompts (an encrypted key is refused, not asked a passphrase for).
// Callable from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace lb::net {

using SystemTime = std::chrono::system_clock::time_point;

// A session ticket key file holds at least this many bytes of secret (as nginx's ssl_session_ticket_key needs
// 48 or 80, HAProxy's 48 or 80; lb derives its keys from whatever length is given).
inline constexpr size_t kTicketKeyFileMinBytes = 32;
// A certificate that expires sooner than this is worth a warning at load time.
inline constexpr std::chrono::hours kCertificateExpiryWarning{30 * 24};

// The first certificate of a PEM file: the one a server presents (the others are its chain).
struct CertificateSummary {
    std::string subject;             // RFC 2253, most specific first: "CN=localhost,O=lb tests"
    std::vector<std::string> names;  // subjectAltName DNS names and IP addresses, as text
    SystemTime not_before;
    SystemTime not_after;
    size_t chain_length = 0;  // certificates in the file, the first included
};

// Reads a PEM file of certificates (the leaf first, then its chain). Throws when it cannot be read, is not PEM
// (a DER file, say), holds no certificate (only a key, say), or a certificate in it cannot be parsed.
CertificateSummary read_certificate_file(const std::string& path);

// Reads a PEM private key and checks that it belongs to the first certificate of `cert_path` (which must have
// passed read_certificate_file). Throws when the key cannot be read or parsed, is encrypted, or does not match.
void check_private_key_file(const std::string& key_path, const std::string& cert_path);

// The dates of a certificate read from `path`, at `now`: throws when it has expired (the message gives the date);
// returns a warning (the date and the days left) when it expires within kCertificateExpiryWarning, or when it is
// not valid yet; nothing otherwise.
std::optional<std::string> check_certificate_dates(const CertificateSummary& certificate, const std::string& path,
                                                   SystemTime now);

// A PEM file of trusted CA certificates (a listener's client_ca, a backend's ca_file): readable, at least one
// certificate, each one parsed. Returns how many it holds.
size_t check_ca_file(const std::string& path);

// A file of at least kTicketKeyFileMinBytes bytes. Throws when unreadable or shorter.
void check_ticket_key_file(const std::string& path);

// A DER OCSP response (as `openssl ocsp -respout` writes), to be stapled: readable, parsed, and a successful
// response. Whether it is for the certificate and still fresh is for whoever staples it.
void check_ocsp_response_file(const std::string& path);

// OpenSSL's own parsers on a throwaway context. Throws with OpenSSL's reason, naming the entry it does not know.
// `ciphers`: a TLS 1.2 cipher list ("ECDHE-RSA-AES128-GCM-SHA256:..."), in which every plain entry (not !x, -x,
// +x or @x) must select at least one cipher, so that a misspelt name is not dropped silently as OpenSSL does.
void check_cipher_list(const std::string& ciphers);
// `ciphersuites`: TLS 1.3 suite names separated by ':'; each must be one OpenSSL knows. Empty is allowed (it turns
// TLS 1.3 off; the caller decides whether that is acceptable).
void check_ciphersuites(const std::string& ciphersuites);
// `groups`: key exchange groups separated by ':' ("X25519:prime256v1:secp384r1").
void check_groups(const std::string& groups);

// "2025-06-01 12:00:00 UTC": how dates appear in the messages above.
std::string format_utc(SystemTime time);

}  // namespace lb::net
