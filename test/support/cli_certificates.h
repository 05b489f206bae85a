// Certificates for TLS tests, made with the openssl CLI when a test first asks for them: a CA, a server
// certificate it signed for localhost and 127.0.0.1, a client certificate it signed, and an unrelated CA that
// verifies none of them. Once per test process, in a temporary directory removed at exit.
#pragma once

#include <string>

namespace lb::test {

struct CliCertificates {
    std::string ca;        // the CA's certificate (PEM): verifies the two below
    std::string other_ca;  // an unrelated CA's certificate: verifies nothing here
    std::string server_cert;  // CN localhost, subjectAltName DNS:localhost and IP:127.0.0.1, for serverAuth
    std::string server_key;
    std::string client_cert;  // CN lb-test-client, for clientAuth
    std::string client_key;
};

// Any thread. Throws std::runtime_error with the command and its output when openssl fails.
const CliCertificates& cli_certificates();

}  // namespace lb::test
