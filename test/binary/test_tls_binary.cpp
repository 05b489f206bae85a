// HTTPS in the real lb binary, on an lb.yaml as an operator writes it: a plain and a TLS listener side by side,
// `lb --check` on certificates, and SIGHUP switching certificates while connections opened before go on, a broken
// certificate refused by the reload, and session tickets that outlive a reload.
#include <catch2/catch.hpp>
#include <csignal>
#include <string>
#include <vector>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/started_backend.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"
#include "test/support/tls_bridge.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// The configuration: plain HTTP and HTTPS (two certificates, chosen by SNI) on ports the kernel picks, two
// workers, one backend. The certificates' `cert:` lines are lines 6 and 8, their `key:` lines 7 and 9; `more_tls`
// adds keys to the tls: map (indented by 6).
std::string config(const CertAndKey& first, const CertAndKey& second, uint16_t backend_port,
                   const std::string& more_tls = "") {
    return "listen:\n"
           "  - 127.0.0.1:0\n"
           "  - address: 127.0.0.1:0\n"
           "    tls:\n"
           "      certificates:\n"
           "        - cert: " +
           first.cert + "\n          key: " + first.key + "\n        - cert: " + second.cert +
           "\n          key: " + second.key + "\n" + more_tls +
           "workers: 2\n"
           "backends:\n"
           "  - 127.0.0.1:" +
           std::to_string(backend_port) +
           "\n"
           "admin:\n"
           "  listen: 127.0.0.1:0\n"
           "health:\n"
           "  enabled: false\n";
}

std::string url(uint16_t port, const std::string& host = "localhost", const std::string& target = "/") {
    return "https://" + host + ":" + std::to_string(port) + target;
}

CommandResult curl(const std::string& options) { return run_command("curl -s --max-time 10 " + options); }

// The certificate lb presents for `server_name`: s_client's "subject=..." and "issuer=..." lines.
std::string presented_certificate(uint16_t port, const std::string& server_name = "localhost",
                                  const std::string& options = "") {
    std::string out = run_command("timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                                  " -servername " + server_name + " " + options + " </dev/null 2>&1")
                          .output;
    std::string lines;
    for (const char* key : {"\nsubject=", "\nissuer="}) {
        size_t at = out.find(key);
        if (at != std::string::npos) lines += out.substr(at + 1, out.find('\n', at + 1) - at);
    }
    return lines;
}

constexpr const char* kLocalhostByTestCa =
    "subject=O = lb tests, CN = localhost\nissuer=O = lb tests, CN = lb test CA\n";
constexpr const char* kLocalhostByOtherCa =
    "subject=O = lb tests, CN = localhost\nissuer=O = lb tests, CN = lb other CA\n";

// openssl s_client sending one request and reading until lb closes; `options` name the session files.
std::string s_client_request(uint16_t port, const std::string& options) {
    return run_command(
               "printf 'GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n' | timeout 10 "
               "openssl s_client -ign_eof -connect 127.0.0.1:" +
               std::to_string(port) + " -servername localhost " + options + " 2>&1")
        .output;
}

}  // namespace

TEST_CASE("the issue's lb.yaml: plain HTTP and HTTPS with two certificates both answer, and lb --check passes it",
          "[tls][binary]") {
    const TestCerts& certs = test_certs();
    StartedBackend b1("b1");
    RunningLb lb("tls-issue", config(certs.localhost_rsa, certs.other, b1.port()));
    REQUIRE(lb.ports().size() == 2);
    uint16_t plain = lb.ports()[0];
    uint16_t https = lb.ports()[1];
    CHECK(curl("http://127.0.0.1:" + std::to_string(plain) + "/").output == "b1\n");
    CHECK(curl("--cacert " + certs.ca.cert + " " + url(https)).output == "b1\n");
    // The second certificate, by SNI.
    CHECK(curl("--cacert " + certs.ca.cert + " --resolve other.test:" + std::to_string(https) + ":127.0.0.1 " +
               url(https, "other.test"))
              .output == "b1\n");
    // HTTP to the HTTPS port is told so; HTTPS to the plain port fails.
    auto confused = curl("http://127.0.0.1:" + std::to_string(https) + "/");
    CHECK(confused.output.find("this port speaks HTTPS") != std::string::npos);
    CHECK(curl("--cacert " + certs.ca.cert + " " + url(plain)).exit_code != 0);
    CHECK(lb.metric("lb_tls_handshakes_total{listener=\"127.0.0.1:0\",result=\"success\"}") == 2);

    auto check = run_command(std::string(LB_BINARY) + " --check -c " + lb.config_path());
    CHECK(check.exit_code == 0);
    CHECK(check.output == lb.config_path() + ": OK (1 backends)\n");
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("lb --check names file and line of a key that does not match its certificate", "[tls][binary]") {
    const TestCerts& certs = test_certs();
    std::string file =
        write_temp_file("tls-mismatch.yaml", config(certs.localhost_rsa, {certs.other.cert, certs.wildcard.key}, 9));
    auto check = run_command(std::string(LB_BINARY) + " --check -c " + file);
    CHECK(check.exit_code == 1);
    CHECK(check.output == "lb: invalid configuration: " + file +
                              ":9:16: 'listen[1].tls.certificates[1].key': key file " + certs.wildcard.key +
                              " does not match the certificate in " + certs.other.cert +
                              " (CN=other.test,O=lb tests)\n");
    // The same file does not start either.
    auto start = run_command(std::string(LB_BINARY) + " -c " + file);
    CHECK(start.exit_code == 1);
    CHECK(start.output.find(file + ":9:16: ") != std::string::npos);
}

TEST_CASE(
    "SIGHUP switches certificates: new handshakes get the new one, a request in flight on a TLS connection "
    "opened before finishes, an idle one is closed",
    "[tls][binary][reload]") {
    const TestCerts& certs = test_certs();
    StartedBackend b1("b1");
    RunningLb lb("tls-switch", config(certs.localhost_rsa, certs.other, b1.port()));
    uint16_t https = lb.ports()[1];
    REQUIRE(presented_certificate(https) == kLocalhostByTestCa);

    // Two TLS connections made before the reload, verified against the test CA: one with a request whose body
    // is still arriving, one idle between requests.
    TlsBridge busy_tls({.tls_port = https, .ca_file = certs.ca.cert});
    HeldRequest in_flight(busy_tls.port(), "/?echo=body");
    wait_until([&] { return b1.connections_accepted() > 0; }, "the request reaches b1");
    TlsBridge idle_tls({.tls_port = https, .ca_file = certs.ca.cert});
    Client idle(idle_tls.port());
    idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(idle.read_response().body == "b1\n");

    REQUIRE(lb.reload(config(certs.untrusted_localhost, certs.wildcard, b1.port())));
    CHECK(lb.log().find("reloaded " + lb.config_path() +
                        ": generation 2 listening on 127.0.0.1:" + std::to_string(lb.ports()[0]) +
                        ", 127.0.0.1:" + std::to_string(https) + " ") != std::string::npos);
    CHECK(presented_certificate(https) == kLocalhostByOtherCa);
    CHECK(presented_certificate(https, "a.wild.test").find("CN = *.wild.test") != std::string::npos);
    CHECK(presented_certificate(https, "other.test") == kLocalhostByOtherCa);  // no longer served: the default
    CHECK(curl("--cacert " + certs.other_ca.cert + " " + url(https)).output == "b1\n");
    CHECK(curl("--cacert " + certs.ca.cert + " " + url(https)).exit_code != 0);
    CHECK(curl("http://127.0.0.1:" + std::to_string(lb.ports()[0]) + "/").output == "b1\n");

    Response finished = in_flight.finish();
    CHECK(finished.status == 200);
    CHECK(finished.body == "hd");
    CHECK(finished.header("Connection") == "close");
    CHECK(busy_tls.end() != TlsBridge::End::handshake_failed);
    CHECK(idle.wait_closed());
    lb.wait_for_log("configuration generation 1 drained");
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a reload to a broken certificate is refused with file and line, and the old certificate goes on serving",
          "[tls][binary][reload]") {
    const TestCerts& certs = test_certs();
    StartedBackend b1("b1");
    RunningLb lb("tls-broken", config(certs.localhost_rsa, certs.other, b1.port()));
    uint16_t https = lb.ports()[1];
    TlsBridge kept_tls({.tls_port = https, .ca_file = certs.ca.cert});
    Client kept(kept_tls.port());
    kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(kept.read_response().body == "b1\n");

    std::string garbage = write_temp_file("not-a-certificate.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    CHECK_FALSE(lb.reload(config({garbage, certs.localhost_rsa.key}, certs.other, b1.port())));
    CHECK(lb.log().find("reload failed, keeping the running configuration: " + lb.config_path() + ":6:17: ") !=
          std::string::npos);
    // A key for another certificate.
    CHECK_FALSE(lb.reload(config(certs.untrusted_localhost, {certs.other.cert, certs.localhost_rsa.key}, b1.port())));
    CHECK(lb.log().find("reload failed, keeping the running configuration: " + lb.config_path() +
                        ":9:16: 'listen[1].tls.certificates[1].key': key file " + certs.localhost_rsa.key +
                        " does not match") != std::string::npos);

    CHECK(presented_certificate(https) == kLocalhostByTestCa);
    CHECK(presented_certificate(https, "other.test").find("CN = other.test") != std::string::npos);
    CHECK(curl("--cacert " + certs.ca.cert + " " + url(https)).output == "b1\n");
    kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(kept.read_response().body == "b1\n");
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE(
    "session tickets issued before a reload resume after it, and after a certificate switch, but not where the "
    "reload starts asking for client certificates",
    "[tls][binary][reload]") {
    const TestCerts& certs = test_certs();
    StartedBackend b1("b1");
    RunningLb lb("tls-tickets", config(certs.localhost_rsa, certs.other, b1.port()));
    uint16_t https = lb.ports()[1];
    const std::vector<std::string> versions = {"-tls1_2", "-tls1_3"};
    std::vector<std::string> sessions;
    for (const auto& version : versions) {
        sessions.push_back(write_temp_file("ticket" + version, ""));
        REQUIRE(s_client_request(https, version + " -sess_out " + sessions.back()).find("\nb1") != std::string::npos);
    }
    auto resumes = [&](size_t v) {
        std::string out = s_client_request(https, versions[v] + " -sess_in " + sessions[v]);
        INFO(out);
        return out.find("Reused, ") != std::string::npos && out.find("\nb1") != std::string::npos;
    };

    // Two workers: each resumption may land on either, and each must take the other's tickets.
    REQUIRE(lb.reload(config(certs.localhost_rsa, certs.other, b1.port()) + "retries: 1\n"));
    for (size_t v = 0; v < versions.size(); ++v) {
        INFO(versions[v]);
        for (int i = 0; i < 4; ++i) CHECK(resumes(v));
    }
    REQUIRE(lb.reload(config(certs.localhost_ecdsa, certs.other, b1.port())));
    for (size_t v = 0; v < versions.size(); ++v) {
        INFO(versions[v]);
        CHECK(resumes(v));
    }

    const std::string require_clients = "      client_ca: " + certs.ca.cert + "\n      verify_client: required\n";
    REQUIRE(lb.reload(config(certs.localhost_ecdsa, certs.other, b1.port(), require_clients)));
    for (size_t v = 0; v < versions.size(); ++v) {
        INFO(versions[v]);
        // Not resumed, and not served: the full handshake asks for a certificate.
        std::string out = s_client_request(https, versions[v] + " -sess_in " + sessions[v]);
        CHECK(out.find("Reused, ") == std::string::npos);
        CHECK(out.find("\nb1") == std::string::npos);
        // With one, a full handshake.
        out = s_client_request(https, versions[v] + " -sess_in " + sessions[v] + " -cert " + certs.client.cert +
                                          " -key " + certs.client.key);
        CHECK(out.find("Reused, ") == std::string::npos);
        CHECK(out.find("\nb1") != std::string::npos);
    }
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}
