// HTTPS on a listener, in-process, with real TLS clients (curl, openssl s_client) and the certificates of
// test_certs(): the handshake, SNI, ALPN, both versions, resumption, plain HTTP sent to the TLS port, a stalled
// handshake, bodies both ways, client certificates and the subject header, OCSP stapling.
#include <poll.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

lb::net::TlsListenerConfig tls_config(const std::vector<CertAndKey>& certificates) {
    lb::net::TlsListenerConfig tls;
    for (const auto& c : certificates) tls.certificates.push_back({c.cert, c.key, ""});
    return tls;
}

lb::core::ListenerConfig tls_listener(const lb::net::TlsListenerConfig& tls) {
    return lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}, tls};
}

lb::core::ListenerConfig tls_listener(const std::vector<CertAndKey>& certificates) {
    return tls_listener(tls_config(certificates));
}

// localhost's certificate, asking clients for certificates from the test CA and passing the verified subject to
// backends in X-Client-Subject.
lb::net::TlsListenerConfig client_certificate_config(lb::net::ClientVerification verify) {
    const TestCerts& certs = test_certs();
    lb::net::TlsListenerConfig tls = tls_config({certs.localhost_ecdsa});
    tls.client_ca = certs.ca.cert;
    tls.verify_client = verify;
    tls.client_subject_header = "X-Client-Subject";
    return tls;
}

// curl to https://localhost:PORT`target`, trusting the test CA; `options` may add a client certificate.
CommandResult curl_https(uint16_t port, const std::string& options, const std::string& target = "/") {
    return run_command("curl -s --max-time 10 --cacert " + test_certs().ca.cert + " " + options +
                       " 'https://localhost:" + std::to_string(port) + target + "'");
}

std::string client_certificate_options(const CertAndKey& certificate) {
    return "--cert " + certificate.cert + " --key " + certificate.key;
}

// lb_tls_handshakes_total of the one TLS listener on 127.0.0.1:0, for one result.
double handshakes(lb::core::Server& server, const std::string& result) {
    return metric_value(server.render_metrics(),
                        "lb_tls_handshakes_total{listener=\"127.0.0.1:0\",result=\"" + result + "\"}");
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}

constexpr const char* kSpoofedSubject = "X-Client-Subject: CN=admin";
constexpr const char* kClientSubject = "X-Client-Subject: CN=lb test client,O=lb tests\n";

// Runs openssl s_client; with `input` it sends that and waits for lb to close (-ign_eof), without it the
// handshake alone is looked at.
std::string s_client(uint16_t port, const std::string& options, const std::string& input = "") {
    std::string wait = input.empty() ? "" : " -ign_eof";
    return run_command("printf '" + input + "' | timeout 10 openssl s_client" + wait +
                       " -connect 127.0.0.1:" + std::to_string(port) + " " + options + " 2>&1")
        .output;
}

}  // namespace

TEST_CASE("HTTPS: curl with the CA gets the backend's answer, which was told the request came over TLS", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners.push_back(tls_listener({certs.localhost_ecdsa})); });
    uint16_t port = proxy.server().port(1);
    auto result = run_command("curl -s --max-time 10 --cacert " + certs.ca.cert +
                              " https://localhost:" + std::to_string(port) + "/?echo=headers");
    REQUIRE(result.exit_code == 0);
    CHECK(result.output.find("X-Forwarded-Proto: https\n") != std::string::npos);
    // Bodies both ways, then several requests on one TLS connection.
    std::string body(1 << 20, 'u');
    std::string file = write_temp_file("tls-upload.bin", body);
    std::string base = "curl -s --max-time 20 --cacert " + certs.ca.cert + " -o /dev/null -w '%{size_download} ' ";
    std::string url = "https://localhost:" + std::to_string(port);
    CHECK(run_command(base + "--data-binary @" + file + " " + url + "/?echo=body").output == "1048576 ");
    CHECK(run_command(base + url + "/?bytes=3000000").output == "3000000 ");
    auto keep_alive = run_command("curl -s --max-time 20 --cacert " + certs.ca.cert +
                                  " -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' " + url + "/ " + url +
                                  "/ " + url + "/");
    CHECK(keep_alive.output == "1 0 0 ");
}

TEST_CASE("TLS 1.2 and 1.3, ALPN http/1.1, and nothing else offered", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({certs.localhost_ecdsa})}; });
    uint16_t port = proxy.server().port();
    std::string tls12 =
        s_client(port, "-tls1_2 -alpn http/1.1", "GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n");
    CHECK(tls12.find("Protocol  : TLSv1.2") != std::string::npos);
    CHECK(tls12.find("ALPN protocol: http/1.1") != std::string::npos);
    CHECK(tls12.find("b1") != std::string::npos);
    std::string tls13 =
        s_client(port, "-tls1_3 -alpn h2,http/1.1", "GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n");
    CHECK(tls13.find("TLSv1.3") != std::string::npos);
    CHECK(tls13.find("ALPN protocol: http/1.1") != std::string::npos);
    std::string h2_only = s_client(port, "-alpn h2");
    CHECK(h2_only.find("No ALPN negotiated") != std::string::npos);
    std::string tls11 = s_client(port, "-tls1_1");
    CHECK(tls11.find("Cipher is (NONE)") != std::string::npos);
}

TEST_CASE("SNI picks the certificate by name, exact or wildcard, else the first", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener({certs.localhost_ecdsa, certs.other, certs.wildcard})};
    });
    uint16_t port = proxy.server().port();
    CHECK(s_client(port, "-servername other.test").find("CN = other.test") != std::string::npos);
    CHECK(s_client(port, "-servername a.wild.test").find("CN = *.wild.test") != std::string::npos);
    CHECK(s_client(port, "-servername wild.test").find("CN = localhost") != std::string::npos);
    CHECK(s_client(port, "-servername nowhere.test").find("CN = localhost") != std::string::npos);
    CHECK(s_client(port, "-noservername").find("CN = localhost") != std::string::npos);
}

TEST_CASE("RSA and ECDSA certificates for one name: each client gets one it can use", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener({certs.localhost_ecdsa, certs.localhost_rsa})};
    });
    uint16_t port = proxy.server().port();
    CHECK(s_client(port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256").find("Cipher is ECDHE-RSA") !=
          std::string::npos);
    CHECK(s_client(port, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256").find("Cipher is ECDHE-ECDSA") !=
          std::string::npos);
}

TEST_CASE("sessions resume, also across workers", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(
        1, [&](lb::core::Config& c) { c.listeners = {tls_listener({certs.localhost_ecdsa})}; }, 2);
    uint16_t port = proxy.server().port();
    for (std::string version : {"-tls1_2", "-tls1_3"}) {
        std::string session = write_temp_file("session" + version, "");
        s_client(port, version + " -sess_out " + session,
                 "GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n");
        // Several new connections: with two workers, some land on the one that did not issue the ticket.
        int reused = 0;
        for (int i = 0; i < 6; ++i) {
            std::string out = s_client(port, version + " -sess_in " + session,
                                       "GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n");
            reused += out.find("Reused, ") != std::string::npos;
        }
        INFO(version);
        CHECK(reused == 6);
    }
}

TEST_CASE("plain HTTP sent to the TLS port gets a 400 that says so", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({certs.localhost_ecdsa})}; });
    Client client(proxy.server().port());
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 400);
    CHECK(r.body.find("HTTPS") != std::string::npos);
    CHECK(client.wait_closed());
}

TEST_CASE("a handshake that stalls is closed by the header timeout while other connections go on", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener({certs.localhost_ecdsa})};
        c.timeouts.client_header = 300ms;
    });
    uint16_t port = proxy.server().port();
    Client stalled(port);
    stalled.send(std::string("\x16\x03\x01\x00\x80", 5));  // a record header, then nothing
    auto served = run_command("curl -s -k --max-time 10 https://127.0.0.1:" + std::to_string(port) + "/");
    CHECK(served.output == "b1\n");
    CHECK(stalled.wait_closed());
}

TEST_CASE("a failed handshake leaves other connections untouched", "[tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({certs.localhost_ecdsa})}; });
    uint16_t port = proxy.server().port();
    Client garbage(port);
    garbage.send(std::string("\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9));  // a ClientHello of length 0
    garbage.read_until_closed();                                           // an alert, then the close
    auto served = run_command("curl -s -k --max-time 10 https://127.0.0.1:" + std::to_string(port) + "/");
    CHECK(served.output == "b1\n");
}

TEST_CASE("TLS shows in /metrics (handshakes by result, versions, ciphers, certificate expiry) and /status",
          "[tls][metrics]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(
        1,
        [&](lb::core::Config& c) {
            c.listeners = {tls_listener({certs.localhost_ecdsa, certs.other})};
        },
        2);
    uint16_t port = proxy.server().port();
    for (int i = 0; i < 3; ++i) {
        CHECK(run_command("curl -s -k --max-time 10 https://127.0.0.1:" + std::to_string(port) + "/").output == "b1\n");
    }
    Client plain(port);
    plain.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(plain.read_response().status == 400);
    std::string text = http_get(proxy.server().admin_port(), "/metrics").body;
    std::string listener = "listener=\"127.0.0.1:0\"";
    CHECK(text.find("lb_tls_handshakes_total{" + listener + ",result=\"success\"} 3\n") != std::string::npos);
    CHECK(text.find("lb_tls_handshakes_total{" + listener + ",result=\"plain_http\"} 1\n") != std::string::npos);
    CHECK(text.find("lb_tls_versions_total{" + listener + ",version=\"TLSv1.3\"} 3\n") != std::string::npos);
    CHECK(text.find("lb_tls_ciphers_total{" + listener + ",cipher=\"TLS_AES_") != std::string::npos);
    CHECK(text.find("lb_tls_certificate_expiry_timestamp_seconds{" + listener) != std::string::npos);
    CHECK(text.find("names=\"localhost\"") != std::string::npos);
    CHECK(text.find("names=\"other.test\"") != std::string::npos);
    std::string file = write_temp_file("tls.prom", text);
    CHECK(run_command("promtool check metrics < " + file).exit_code == 0);
    std::string status = http_get(proxy.server().admin_port(), "/status").body;
    CHECK(status.find("\"certificates\":[{\"listener\":\"127.0.0.1:0\"") != std::string::npos);
    CHECK(status.find("\"names\":[\"localhost\"]") != std::string::npos);
    CHECK(status.find("\"names\":[\"other.test\"]") != std::string::npos);
}

TEST_CASE(
    "verify_client required: no certificate, or one from another CA, is refused and counted, while the CA's client "
    "gets through and its subject reaches the backend, never the one it sent",
    "[tls][client-certificates]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener(client_certificate_config(lb::net::ClientVerification::required))};
    });
    uint16_t port = proxy.server().port();
    for (std::string version : {"--tlsv1.2 --tls-max 1.2", "--tlsv1.3"}) {
        INFO(version);
        CHECK(curl_https(port, version).exit_code != 0);
        CHECK(curl_https(port, version + " " + client_certificate_options(certs.other_client)).exit_code != 0);
    }
    wait_until(
        [&] {
            return handshakes(proxy.server(), "no_client_certificate") == 2 &&
                   handshakes(proxy.server(), "unknown_ca") == 2;
        },
        "both refusals of each version are counted");
    CHECK(handshakes(proxy.server(), "success") == 0);
    CHECK(proxy.backend(0).requests_served() == 0);

    for (std::string version : {"--tlsv1.2 --tls-max 1.2", "--tlsv1.3"}) {
        INFO(version);
        auto accepted = curl_https(port,
                                   version + " " + client_certificate_options(certs.client) + " -H '" +
                                       kSpoofedSubject + "' -H 'x-client-subject: CN=root'",
                                   "/?echo=headers");
        CHECK(accepted.exit_code == 0);
        CHECK(accepted.output.find(kClientSubject) != std::string::npos);
        CHECK(count_of(accepted.output, "X-Client-Subject:") == 1);
        CHECK(accepted.output.find("CN=admin") == std::string::npos);
        CHECK(accepted.output.find("CN=root") == std::string::npos);
    }
    CHECK(handshakes(proxy.server(), "success") == 2);
}

TEST_CASE(
    "verify_client optional: a client without a certificate gets through with no subject, even one it sent, "
    "and a certificate given must verify",
    "[tls][client-certificates]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener(client_certificate_config(lb::net::ClientVerification::optional))};
    });
    uint16_t port = proxy.server().port();
    auto anonymous = curl_https(port, std::string("-H '") + kSpoofedSubject + "'", "/?echo=headers");
    CHECK(anonymous.exit_code == 0);
    CHECK(anonymous.output.find("X-Forwarded-Proto: https\n") != std::string::npos);
    CHECK(anonymous.output.find("X-Client-Subject") == std::string::npos);

    auto verified = curl_https(port, client_certificate_options(certs.client), "/?echo=headers");
    CHECK(verified.exit_code == 0);
    CHECK(verified.output.find(kClientSubject) != std::string::npos);

    CHECK(curl_https(port, client_certificate_options(certs.other_client)).exit_code != 0);
    wait_until([&] { return handshakes(proxy.server(), "unknown_ca") == 1; }, "the foreign certificate is counted");
    CHECK(handshakes(proxy.server(), "success") == 2);
}

TEST_CASE("the client subject header is lb's on every listener: a client of a plain listener cannot send it either",
          "[tls][client-certificates]") {
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners.push_back(tls_listener(client_certificate_config(lb::net::ClientVerification::optional)));
    });
    Response plain = http_get(proxy.server().port(0), "/?echo=headers",
                              std::string(kSpoofedSubject) + "\r\nx-client-subject: CN=root\r\n");
    CHECK(plain.status == 200);
    CHECK(plain.body.find("X-Forwarded-Proto: http\n") != std::string::npos);
    CHECK(plain.body.find("CN=admin") == std::string::npos);
    CHECK(plain.body.find("CN=root") == std::string::npos);
}

TEST_CASE("a resumed session keeps its verified client certificate: the subject still reaches the backend",
          "[tls][client-certificates]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener(client_certificate_config(lb::net::ClientVerification::required))};
    });
    uint16_t port = proxy.server().port();
    const std::string request = "GET /?echo=headers HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n";
    const std::string identity = " -cert " + certs.client.cert + " -key " + certs.client.key;
    for (std::string version : {"-tls1_2", "-tls1_3"}) {
        INFO(version);
        std::string session = write_temp_file("client-session" + version, "");
        std::string first = s_client(port, version + identity + " -sess_out " + session, request);
        CHECK(first.find(kClientSubject) != std::string::npos);
        std::string resumed = s_client(port, version + " -sess_in " + session, request);
        CHECK(resumed.find("Reused, ") != std::string::npos);
        CHECK(resumed.find(kClientSubject) != std::string::npos);
    }
}

TEST_CASE(
    "a session from a listener that asks for no client certificate does not resume on one that requires it, "
    "even with the same ticket keys",
    "[tls][client-certificates]") {
    const TestCerts& certs = test_certs();
    std::string ticket_key = write_temp_file("shared-ticket.key", std::string(48, 'k'));
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        lb::net::TlsListenerConfig open = tls_config({certs.localhost_ecdsa});
        lb::net::TlsListenerConfig guarded = client_certificate_config(lb::net::ClientVerification::required);
        open.ticket_key_file = guarded.ticket_key_file = ticket_key;
        c.listeners = {tls_listener(open), tls_listener(guarded)};
    });
    const std::string request = "GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n";
    for (std::string version : {"-tls1_2", "-tls1_3"}) {
        INFO(version);
        std::string session = write_temp_file("open-session" + version, "");
        s_client(proxy.server().port(0), version + " -sess_out " + session, request);
        // The ticket is good where it came from...
        CHECK(s_client(proxy.server().port(0), version + " -sess_in " + session, request).find("Reused, ") !=
              std::string::npos);
        // ... and worth nothing where a certificate is required: a full handshake, which asks for one.
        std::string guarded = s_client(proxy.server().port(1), version + " -sess_in " + session, request);
        CHECK(guarded.find("Reused, ") == std::string::npos);
        CHECK(guarded.find("\nb1") == std::string::npos);
    }
    CHECK(proxy.backend(0).requests_served() == 4);
}

TEST_CASE("OCSP stapling: a certificate's response is stapled when the client asks, and only for that certificate",
          "[tls][ocsp]") {
    const TestCerts& certs = test_certs();
    // The RSA certificate with its chain, as a client checking the response (curl --cert-status) needs the issuer.
    std::string rsa_chain =
        write_temp_file("localhost-rsa-chain.pem", read_file(certs.localhost_rsa.cert) + read_file(certs.ca.cert));
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        lb::net::TlsListenerConfig tls = tls_config({certs.localhost_ecdsa, {rsa_chain, certs.localhost_rsa.key}});
        tls.certificates[1].ocsp = certs.ocsp_localhost_rsa;
        c.listeners = {tls_listener(tls)};
    });
    uint16_t port = proxy.server().port();
    std::string rsa12 = s_client(port, "-status -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256");
    CHECK(rsa12.find("OCSP Response Status: successful") != std::string::npos);
    CHECK(rsa12.find("Cert Status: good") != std::string::npos);
    std::string rsa13 = s_client(port, "-status -tls1_3 -sigalgs rsa_pss_rsae_sha256");
    CHECK(rsa13.find("Cert Status: good") != std::string::npos);
    // curl checks the stapled response against the certificate it got, and the CA.
    CHECK(curl_https(port, "--cert-status --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256").output == "b1\n");

    // The ECDSA certificate has no response: none is stapled, rather than the RSA certificate's.
    std::string ecdsa12 = s_client(port, "-status -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256");
    CHECK(ecdsa12.find("Cipher is ECDHE-ECDSA") != std::string::npos);
    CHECK(ecdsa12.find("OCSP response: no response sent") != std::string::npos);
    std::string ecdsa13 = s_client(port, "-status -tls1_3 -sigalgs ecdsa_secp256r1_sha256");
    CHECK(ecdsa13.find("OCSP response: no response sent") != std::string::npos);
    // A client that does not ask gets nothing.
    CHECK(s_client(port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256").find("OCSP") == std::string::npos);
}
