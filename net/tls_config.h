// What lb.yaml says about TLS, as plain data: config/ fills it in (checking the files as it loads), net/ builds
// OpenSSL contexts from it (tls_context.h). No OpenSSL types here.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace lb::net {

enum class TlsVersion : uint8_t { tls1_2, tls1_3 };

// Mozilla's "intermediate" profile (https://wiki.mozilla.org/Security/Server_Side_TLS, version 5.7): TLS 1.2 and
// 1.3, forward-secret AEAD suites only, the client's order not imposed.
inline constexpr const char* kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kIntermediateCiphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
inline constexpr const char* kIntermediateGroups = "X25519:prime256v1:secp384r1";

// A certificate (PEM: the leaf first, then its chain) and its private key (PEM).
struct CertificateFiles {
    std::string cert;
    std::string key;
    std::string ocsp;  // optional: a DER OCSP response for this certificate, stapled; re-read on reload
    bool operator==(const CertificateFiles&) const = default;
};

enum class ClientVerification : uint8_t { none, optional, required };

// A listener's `tls:` section.
struct TlsListenerConfig {
    // The first is the default; the others are chosen by SNI from their names (exact or *.wildcard). Several
    // certificates for the same names (RSA and ECDSA) are chosen between by what the client supports.
    std::vector<CertificateFiles> certificates;
    TlsVersion min_version = TlsVersion::tls1_2;
    std::string ciphers = kIntermediateCiphers;            // TLS 1.2 (OpenSSL cipher list)
    std::string ciphersuites = kIntermediateCiphersuites;  // TLS 1.3
    std::string groups = kIntermediateGroups;
    // Session resumption by tickets (TLS 1.2 and 1.3). Their keys are shared by every worker and rotate; from
    // `ticket_key_file` (at least 32 bytes of secret) they are the same in every lb instance given the file.
    bool session_tickets = true;
    std::string ticket_key_file;
    std::chrono::seconds ticket_key_rotation{3600};
    // Client certificates: checked against `client_ca` when asked for; the verified subject goes to the backend
    // in `client_subject_header` when that is set.
    std::string client_ca;
    ClientVerification verify_client = ClientVerification::none;
    std::string client_subject_header;
    bool operator==(const TlsListenerConfig&) const = default;
};

// TLS towards a backend (a backend's `tls:`, or `upstream.tls` for all).
struct TlsUpstreamConfig {
    bool enabled = false;
    bool verify = true;   // the backend's certificate against `ca_file` (or the system's CAs) and its name
    std::string ca_file;  // empty: the system's trusted CAs
    std::string sni;      // empty: the backend's host name, unless that is an IP address
    CertificateFiles client_certificate;  // mTLS: empty cert means none
    TlsVersion min_version = TlsVersion::tls1_2;
    bool operator==(const TlsUpstreamConfig&) const = default;
};

}  // namespace lb::net
