// Certificates for TLS tests, made at test time: a local CA, server certificates it signed for localhost and for
// other names, odd ones (expired, expiring soon, signed by an unrelated CA), a client certificate and a stapled
// OCSP response. Nothing is checked in and nothing is fetched.
//
//     const lb::test::TestCerts& certs = lb::test::test_certs();
//     run_command("curl --cacert " + certs.ca.cert + " https://localhost:" + port + "/");
//     options.tls_cert = certs.localhost_rsa.cert; options.tls_key = certs.localhost_rsa.key;
//
// Every path is an absolute path to a PEM file (keys: unencrypted PKCS#8), except `ocsp_localhost_rsa` (DER). The
// files are made once per process, on the first call, in a fresh directory under $TMPDIR (or /tmp) that is
// removed when the process exits. Callable from any thread; the files are never changed after they are made, so
// tests may read them concurrently but must not write them (copy one with write_temp_file to damage it).
#pragma once

#include <string>

namespace lb::test {

// A certificate and its private key. For a leaf, `cert` holds the leaf alone: its issuer is the CA named below.
struct CertAndKey {
    std::string cert;
    std::string key;
};

struct TestCerts {
    std::string dir;  // where the files are

    // "lb test CA": what a client trusts (curl --cacert, a backend's `tls.ca_file`, a listener's `client_ca`).
    // ECDSA P-256, valid from 60 days ago for 10 years.
    CertAndKey ca;
    // "lb other CA": unrelated to `ca`; nothing it signed verifies against `ca`.
    CertAndKey other_ca;

    // Server certificates signed by `ca`, valid from an hour ago for a year, extendedKeyUsage serverAuth. The
    // localhost ones name DNS:localhost, IP:127.0.0.1 and IP:::1 (CN localhost).
    CertAndKey localhost_rsa;    // RSA 2048
    CertAndKey localhost_ecdsa;  // ECDSA P-256
    CertAndKey other;            // DNS:other.test (CN other.test), ECDSA
    CertAndKey wildcard;         // DNS:*.wild.test (CN *.wild.test), ECDSA: matches a.wild.test, not wild.test

    // localhost (names as above, ECDSA) with odd dates or issuer.
    CertAndKey expired;              // valid from 30 days ago until yesterday
    CertAndKey expiring_soon;        // valid from an hour ago for 10 days (a load-time warning, not an error)
    CertAndKey untrusted_localhost;  // signed by `other_ca`: a client trusting `ca` must refuse it

    // Client certificates (extendedKeyUsage clientAuth), ECDSA.
    CertAndKey client;        // CN "lb test client", signed by `ca`: accepted where client_ca is `ca`
    CertAndKey other_client;  // CN "lb other client", signed by `other_ca`: refused there

    // A DER OCSP response from `ca` saying `localhost_rsa` is good, produced an hour ago, next update in 7 days.
    std::string ocsp_localhost_rsa;
};

// The certificates of this process, made on the first call. Throws std::runtime_error if they cannot be made.
const TestCerts& test_certs();

}  // namespace lb::test
