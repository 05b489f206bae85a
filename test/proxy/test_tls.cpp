// HTTPS on a listener, in-process, with real TLS clients (curl, openssl s_client): the handshake, SNI, ALPN, both
// versions, resumption, plain HTTP sent to the TLS port, a stalled handshake, and bodies both ways.
#include <poll.h>

#include <catch2/catch.hpp>

#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// A self-signed certificate for `names` (the first is the CN), ECDSA P-256 unless `rsa`.
struct Certificate {
    std::string cert;
    std::string key;
};

Certificate make_certificate(const std::string& tag, const std::vector<std::string>& names, bool rsa = false) {
    std::string dir = write_temp_file(tag + ".dir-marker", "");
    std::string cert = dir + "." + tag + ".pem";
    std::string key = dir + "." + tag + ".key";
    std::string san;
    for (const auto& n : names) san += (san.empty() ? "" : ",") + std::string(n == "127.0.0.1" ? "IP:" : "DNS:") + n;
    std::string algorithm = rsa ? "-newkey rsa:2048" : "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
    auto result = run_command("openssl req -x509 " + algorithm + " -nodes -days 30 -subj /CN=" + names.front() +
                              " -addext subjectAltName=" + san + " -keyout " + key + " -out " + cert);
    REQUIRE(result.exit_code == 0);
    return {cert, key};
}

lb::core::ListenerConfig tls_listener(const std::vector<Certificate>& certificates) {
    lb::net::TlsListenerConfig tls;
    for (const auto& c : certificates) tls.certificates.push_back({c.cert, c.key, ""});
    return lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}, tls};
}

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
    Certificate site = make_certificate("site", {"localhost", "127.0.0.1"});
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners.push_back(tls_listener({site})); });
    uint16_t port = proxy.server().port(1);
    auto result = run_command("curl -s --max-time 10 --cacert " + site.cert +
                              " https://localhost:" + std::to_string(port) + "/?echo=headers");
    REQUIRE(result.exit_code == 0);
    CHECK(result.output.find("X-Forwarded-Proto: https\n") != std::string::npos);
    // Bodies both ways, then several requests on one TLS connection.
    std::string body(1 << 20, 'u');
    std::string file = write_temp_file("tls-upload.bin", body);
    std::string base = "curl -s --max-time 20 --cacert " + site.cert + " -o /dev/null -w '%{size_download} ' ";
    std::string url = "https://localhost:" + std::to_string(port);
    CHECK(run_command(base + "--data-binary @" + file + " " + url + "/?echo=body").output == "1048576 ");
    CHECK(run_command(base + url + "/?bytes=3000000").output == "3000000 ");
    auto keep_alive = run_command("curl -s --max-time 20 --cacert " + site.cert +
                                  " -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' " + url + "/ " + url +
                                  "/ " + url + "/");
    CHECK(keep_alive.output == "1 0 0 ");
}

TEST_CASE("TLS 1.2 and 1.3, ALPN http/1.1, and nothing else offered", "[tls]") {
    Certificate site = make_certificate("versions", {"localhost"});
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({site})}; });
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
    Certificate first = make_certificate("default", {"default.test"});
    Certificate other = make_certificate("other", {"other.test"});
    Certificate wild = make_certificate("wild", {"*.wild.test"});
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({first, other, wild})}; });
    uint16_t port = proxy.server().port();
    CHECK(s_client(port, "-servername other.test").find("CN = other.test") != std::string::npos);
    CHECK(s_client(port, "-servername a.wild.test").find("CN = *.wild.test") != std::string::npos);
    CHECK(s_client(port, "-servername nowhere.test").find("CN = default.test") != std::string::npos);
    CHECK(s_client(port, "-noservername").find("CN = default.test") != std::string::npos);
}

TEST_CASE("RSA and ECDSA certificates for one name: each client gets one it can use", "[tls]") {
    Certificate ecdsa = make_certificate("ecdsa", {"dual.test"});
    Certificate rsa = make_certificate("rsa", {"dual.test"}, true);
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({ecdsa, rsa})}; });
    uint16_t port = proxy.server().port();
    CHECK(s_client(port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256").find("Cipher is ECDHE-RSA") !=
          std::string::npos);
    CHECK(s_client(port, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256").find("Cipher is ECDHE-ECDSA") !=
          std::string::npos);
}

TEST_CASE("sessions resume, also across workers", "[tls]") {
    Certificate site = make_certificate("resume", {"localhost"});
    ProxyFixture proxy(
        1, [&](lb::core::Config& c) { c.listeners = {tls_listener({site})}; }, 2);
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
    Certificate site = make_certificate("plain", {"localhost"});
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({site})}; });
    Client client(proxy.server().port());
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 400);
    CHECK(r.body.find("HTTPS") != std::string::npos);
    CHECK(client.wait_closed());
}

TEST_CASE("a handshake that stalls is closed by the header timeout; other connections go on", "[tls]") {
    Certificate site = make_certificate("stall", {"localhost"});
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.listeners = {tls_listener({site})};
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
    Certificate site = make_certificate("failing", {"localhost"});
    ProxyFixture proxy(1, [&](lb::core::Config& c) { c.listeners = {tls_listener({site})}; });
    uint16_t port = proxy.server().port();
    Client garbage(port);
    garbage.send(std::string("\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9));  // a ClientHello of length 0
    garbage.read_until_closed();                                           // an alert, then the close
    auto served = run_command("curl -s -k --max-time 10 https://127.0.0.1:" + std::to_string(port) + "/");
    CHECK(served.output == "b1\n");
}

TEST_CASE("TLS shows in /metrics (handshakes by result, versions, ciphers, certificate expiry) and /status",
          "[tls][metrics]") {
    Certificate site = make_certificate("metrics", {"localhost", "metrics.test"});
    ProxyFixture proxy(
        1, [&](lb::core::Config& c) { c.listeners = {tls_listener({site})}; }, 2);
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
    CHECK(text.find("names=\"localhost,metrics.test\"") != std::string::npos);
    std::string file = write_temp_file("tls.prom", text);
    CHECK(run_command("promtool check metrics < " + file).exit_code == 0);
    std::string status = http_get(proxy.server().admin_port(), "/status").body;
    CHECK(status.find("\"certificates\":[{\"listener\":\"127.0.0.1:0\"") != std::string::npos);
    CHECK(status.find("\"names\":[\"localhost\",\"metrics.test\"]") != std::string::npos);
}
