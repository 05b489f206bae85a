// TLS towards backends, in-process: lb in front of demo backends that serve HTTPS (certificates made at test time
// by test_certs()), with curl as the client on lb's plain listener. Verification passing and failing (an unknown
// issuer, a name that does not match), `verify: false`, a client certificate for a backend that requires one, the
// SNI sent, sessions resumed on the next connection, and health checks that reach a TLS backend as requests do.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// What lb writes on stderr (its log) while this lives: fd 2 goes to a file and comes back at destruction.
class StderrCapture {
  public:
    StderrCapture() : path_(write_temp_file("tls-upstream-stderr.log", "")) {
        int file = ::open(path_.c_str(), O_WRONLY | O_APPEND);
        REQUIRE(file >= 0);
        saved_ = ::dup(STDERR_FILENO);
        REQUIRE(saved_ >= 0);
        REQUIRE(::dup2(file, STDERR_FILENO) >= 0);
        ::close(file);
    }
    ~StderrCapture() {
        ::dup2(saved_, STDERR_FILENO);
        ::close(saved_);
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;

    std::string text() const {
        std::ifstream in(path_);
        std::stringstream all;
        all << in.rdbuf();
        return all.str();
    }
    // Lines that contain every one of `parts`.
    size_t lines_with(const std::vector<std::string>& parts) const {
        std::istringstream in(text());
        size_t count = 0;
        for (std::string line; std::getline(in, line);) {
            bool all = true;
            for (const auto& part : parts) all = all && line.find(part) != std::string::npos;
            count += all ? 1 : 0;
        }
        return count;
    }

  private:
    std::string path_;
    int saved_ = -1;
};

// Backend `index` serves HTTPS with `cert`, and requires a client certificate from `client_ca` when it is given.
ProxyFixture::BackendTweak serve_tls(const lb::test::CertAndKey& cert, const std::string& client_ca = "") {
    return [=](size_t, lb::demo::DemoBackendOptions& options) {
        options.tls_cert = cert.cert;
        options.tls_key = cert.key;
        options.tls_client_ca = client_ca;
    };
}

// lb reaches every backend over TLS, trusting the test CA.
lb::net::TlsUpstreamConfig trusting_test_ca() {
    lb::net::TlsUpstreamConfig tls;
    tls.enabled = true;
    tls.ca_file = test_certs().ca.cert;
    return tls;
}

std::function<void(lb::core::Config&)> upstream_tls(const lb::net::TlsUpstreamConfig& tls) {
    return [=](lb::core::Config& c) {
        for (auto& b : c.backends) b.tls = tls;
    };
}

struct CurlResult {
    int status = 0;
    std::string head;  // status line and headers, lower-cased names kept as sent
    std::string body;
};

// One GET through lb's plain listener with curl.
CurlResult curl_get(uint16_t port, const std::string& target = "/") {
    auto result = run_command("curl -s -i --max-time 10 http://127.0.0.1:" + std::to_string(port) + target);
    REQUIRE(result.exit_code == 0);
    CurlResult out;
    size_t end = result.output.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    out.head = result.output.substr(0, end + 2);
    out.body = result.output.substr(end + 4);
    REQUIRE(out.head.size() > 12);
    out.status = std::stoi(out.head.substr(9, 3));
    return out;
}

// The literal address getaddrinfo gives first for `host`, as lb resolves a backend's host.
std::string first_address_of(const std::string& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    REQUIRE(getaddrinfo(host.c_str(), nullptr, &hints, &found) == 0);
    char text[INET6_ADDRSTRLEN] = {};
    const void* address = found->ai_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(found->ai_addr)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr);
    inet_ntop(found->ai_family, address, text, sizeof text);
    freeaddrinfo(found);
    return text;
}

// lb_backend_tls_handshakes_total of the backend on `backend_port`, for `result`.
double tls_handshakes(lb::core::Server& server, uint16_t backend_port, const std::string& result) {
    return metric_value(server.render_metrics(),
                        backend_series("lb_backend_tls_handshakes_total", backend_port, "result=\"" + result + "\""));
}

double errors_of_kind(lb::core::Server& server, const std::string& kind) {
    return metric_value(server.render_metrics(), "lb_errors_total{kind=\"" + kind + "\"}");
}

}  // namespace

TEST_CASE("a TLS backend whose certificate verifies against ca_file gets the request over TLS", "[tls][upstream]") {
    ProxyFixture proxy(1, upstream_tls(trusting_test_ca()), 1, serve_tls(test_certs().localhost_rsa));
    CurlResult r = curl_get(proxy.port());
    CHECK(r.status == 200);
    CHECK(r.body == "b1\n");
    CHECK(r.head.find("X-TLS-Version: TLSv1.3\r\n") != std::string::npos);
    CHECK(proxy.backend(0).tls_handshakes() == 1);
    CHECK(errors_of_kind(proxy.server(), "connect_refused") == 0);
    CHECK(tls_handshakes(proxy.server(), proxy.backend(0).port(), "success") == 1);
    CHECK(tls_handshakes(proxy.server(), proxy.backend(0).port(), "unknown_ca") == 0);
}

TEST_CASE("a backend certificate that does not verify: 502, a connect failure in metrics, the reason in the log",
          "[tls][upstream]") {
    StderrCapture log;
    uint16_t backend_port = 0;
    SECTION("signed by a CA lb does not trust") {
        ProxyFixture proxy(1, upstream_tls(trusting_test_ca()), 1, serve_tls(test_certs().untrusted_localhost));
        backend_port = proxy.backend(0).port();
        CHECK(curl_get(proxy.port()).status == 502);
        CHECK(errors_of_kind(proxy.server(), "connect_refused") == 1);
        CHECK(tls_handshakes(proxy.server(), backend_port, "unknown_ca") == 1);
        CHECK(tls_handshakes(proxy.server(), backend_port, "success") == 0);
        CHECK(proxy.backend(0).requests_served() == 0);
        CHECK(log.lines_with({"backend 127.0.0.1:" + std::to_string(backend_port) + " connect failed",
                              "certificate verify failed (unable to get local issuer certificate)"}) == 1);
    }
    SECTION("a trusted certificate for another name than the configured sni") {
        lb::net::TlsUpstreamConfig tls = trusting_test_ca();
        tls.sni = "other.test";
        ProxyFixture proxy(1, upstream_tls(tls), 1, serve_tls(test_certs().localhost_rsa));
        backend_port = proxy.backend(0).port();
        CHECK(curl_get(proxy.port()).status == 502);
        CHECK(errors_of_kind(proxy.server(), "connect_refused") == 1);
        CHECK(tls_handshakes(proxy.server(), backend_port, "unknown_ca") == 1);
        CHECK(tls_handshakes(proxy.server(), backend_port, "success") == 0);
        CHECK(proxy.backend(0).requests_served() == 0);
        CHECK(log.lines_with({"backend 127.0.0.1:" + std::to_string(backend_port) + " connect failed",
                              "certificate verify failed (hostname mismatch)"}) == 1);
    }
    SECTION("an expired certificate") {
        ProxyFixture proxy(1, upstream_tls(trusting_test_ca()), 1, serve_tls(test_certs().expired));
        backend_port = proxy.backend(0).port();
        CHECK(curl_get(proxy.port()).status == 502);
        CHECK(errors_of_kind(proxy.server(), "connect_refused") == 1);
        CHECK(tls_handshakes(proxy.server(), backend_port, "unknown_ca") == 1);
        CHECK(tls_handshakes(proxy.server(), backend_port, "success") == 0);
        CHECK(log.lines_with({"backend 127.0.0.1:" + std::to_string(backend_port) + " connect failed",
                              "certificate verify failed (certificate has expired)"}) == 1);
    }
}

TEST_CASE("verify: false accepts a certificate nobody trusts, for any name", "[tls][upstream]") {
    lb::net::TlsUpstreamConfig tls = trusting_test_ca();
    tls.verify = false;
    tls.sni = "other.test";
    ProxyFixture proxy(1, upstream_tls(tls), 1, serve_tls(test_certs().untrusted_localhost));
    CurlResult r = curl_get(proxy.port());
    CHECK(r.status == 200);
    CHECK(r.body == "b1\n");
    CHECK(errors_of_kind(proxy.server(), "connect_refused") == 0);
}

TEST_CASE("a backend that requires a client certificate accepts lb's and refuses lb without one", "[tls][upstream]") {
    const auto& certs = test_certs();
    StderrCapture log;
    SECTION("with tls.client_certificate") {
        lb::net::TlsUpstreamConfig tls = trusting_test_ca();
        tls.client_certificate = {certs.client.cert, certs.client.key, ""};
        ProxyFixture proxy(1, upstream_tls(tls), 1, serve_tls(certs.localhost_ecdsa, certs.ca.cert));
        CurlResult r = curl_get(proxy.port());
        CHECK(r.status == 200);
        CHECK(r.head.find("X-TLS-Client: CN=lb test client") != std::string::npos);
        CHECK(proxy.backend(0).tls_failures() == 0);
    }
    SECTION("with a client certificate from a CA the backend does not trust") {
        lb::net::TlsUpstreamConfig tls = trusting_test_ca();
        tls.client_certificate = {certs.other_client.cert, certs.other_client.key, ""};
        ProxyFixture proxy(1, upstream_tls(tls), 1, serve_tls(certs.localhost_ecdsa, certs.ca.cert));
        CHECK(curl_get(proxy.port()).status == 502);
        // TLS 1.3: the backend refuses once lb has sent its side of the handshake and the request with it.
        CHECK(errors_of_kind(proxy.server(), "upstream_reset") == 1);
        CHECK(proxy.backend(0).requests_served() == 0);
        wait_until([&] { return proxy.backend(0).tls_failures() == 1; }, "the backend refused the handshake");
        CHECK(log.lines_with({"backend 127.0.0.1:" + std::to_string(proxy.backend(0).port()) + " connection failed",
                              "alert unknown ca"}) == 1);
    }
    SECTION("without one") {
        ProxyFixture proxy(1, upstream_tls(trusting_test_ca()), 1, serve_tls(certs.localhost_ecdsa, certs.ca.cert));
        CHECK(curl_get(proxy.port()).status == 502);
        CHECK(errors_of_kind(proxy.server(), "upstream_reset") == 1);
        CHECK(proxy.backend(0).requests_served() == 0);
        wait_until([&] { return proxy.backend(0).tls_failures() == 1; }, "the backend refused the handshake");
        CHECK(log.lines_with({"backend 127.0.0.1:" + std::to_string(proxy.backend(0).port()) + " connection failed",
                              "alert certificate required"}) == 1);
    }
}

TEST_CASE("the SNI sent is the configured sni, else the host unless it is an IP address", "[tls][upstream]") {
    const auto& certs = test_certs();
    SECTION("sni configured") {
        lb::net::TlsUpstreamConfig tls = trusting_test_ca();
        tls.sni = "localhost";
        ProxyFixture proxy(1, upstream_tls(tls), 1, serve_tls(certs.localhost_rsa));
        CurlResult r = curl_get(proxy.port());
        CHECK(r.status == 200);
        CHECK(r.head.find("X-TLS-SNI: localhost\r\n") != std::string::npos);
    }
    SECTION("a host name: sent as SNI and verified") {
        // The backend listens where lb will find "localhost": 127.0.0.1 or ::1, as this machine resolves it.
        ProxyFixture proxy(
            1,
            [](lb::core::Config& c) {
                upstream_tls(trusting_test_ca())(c);
                c.backends[0].endpoint.host = "localhost";
            },
            1,
            [&](size_t index, lb::demo::DemoBackendOptions& options) {
                serve_tls(certs.localhost_rsa)(index, options);
                options.host = first_address_of("localhost");
            });
        CurlResult r = curl_get(proxy.port());
        CHECK(r.status == 200);
        CHECK(r.head.find("X-TLS-SNI: localhost\r\n") != std::string::npos);
    }
    SECTION("an IP address, no sni: none sent, the certificate's IP name verified") {
        ProxyFixture proxy(1, upstream_tls(trusting_test_ca()), 1, serve_tls(certs.localhost_rsa));
        CurlResult r = curl_get(proxy.port());
        CHECK(r.status == 200);
        CHECK(r.head.find("X-TLS-SNI") == std::string::npos);
    }
}

TEST_CASE("a new connection to a TLS backend resumes the session of the last one", "[tls][upstream]") {
    // No keep-alive towards the backend: every request makes a connection of its own.
    ProxyFixture proxy(
        1,
        [](lb::core::Config& c) {
            upstream_tls(trusting_test_ca())(c);
            c.upstream_keepalive = 0;
        },
        1, serve_tls(test_certs().localhost_rsa));
    for (int i = 0; i < 3; ++i) REQUIRE(curl_get(proxy.port()).status == 200);
    CHECK(proxy.backend(0).tls_handshakes() == 3);
    CHECK(proxy.backend(0).tls_resumed() == 2);
    // lb counts them too.
    uint16_t port = proxy.backend(0).port();
    CHECK(tls_handshakes(proxy.server(), port, "success") == 3);
    CHECK(metric_value(proxy.server().render_metrics(),
                       backend_series("lb_backend_tls_resumed_handshakes_total", port)) == 2);
}

namespace {

// Fast active checks: a backend flips after 2 checks, 50 ms apart.
void fast_checks(lb::core::Config& c) {
    c.health.enabled = true;
    c.health.interval = 50ms;
    c.health.timeout = 2000ms;
    c.health.rise = 2;
    c.health.fall = 2;
}

bool every_shard_sees(lb::core::Server& server, size_t backend, bool up) {
    for (bool view : shard_views_of_backend(server, backend)) {
        if (view != up) return false;
    }
    return true;
}

// b1: a certificate lb trusts; b2: one it does not; b3: a trusted one, and it requires lb's client certificate;
// b4: a trusted one, and it requires a client certificate from a CA that did not sign lb's.
ProxyFixture::BackendTweak four_tls_backends() {
    const auto& certs = test_certs();
    return [&certs](size_t index, lb::demo::DemoBackendOptions& options) {
        const lb::test::CertAndKey& cert = index == 1 ? certs.untrusted_localhost : certs.localhost_ecdsa;
        options.tls_cert = cert.cert;
        options.tls_key = cert.key;
        if (index == 2) options.tls_client_ca = certs.ca.cert;
        if (index == 3) options.tls_client_ca = certs.other_ca.cert;
    };
}

lb::net::TlsUpstreamConfig with_client_certificate() {
    lb::net::TlsUpstreamConfig tls = trusting_test_ca();
    tls.client_certificate = {test_certs().client.cert, test_certs().client.key, ""};
    return tls;
}

double checks_of(lb::core::Server& server, uint16_t backend_port, const std::string& result) {
    return metric_value(server.render_metrics(),
                        backend_series("lb_backend_health_checks_total", backend_port, "result=\"" + result + "\""));
}

}  // namespace

TEST_CASE(
    "health checks over TLS: trusted backends come up, and one whose certificate fails or that refuses lb's "
    "stays down, said once",
    "[tls][upstream][health]") {
    StderrCapture log;
    ProxyFixture proxy(
        4,
        [](lb::core::Config& c) {
            upstream_tls(with_client_certificate())(c);
            fast_checks(c);
            c.health.initial_state = lb::health::InitialState::unhealthy;
        },
        1, four_tls_backends());
    wait_until([&] { return every_shard_sees(proxy.server(), 0, true); }, "b1 is up");
    wait_until([&] { return every_shard_sees(proxy.server(), 2, true); }, "b3 (client certificate) is up");
    uint16_t bad_port = proxy.backend(1).port();
    wait_until([&] { return checks_of(proxy.server(), bad_port, "connect_error") >= 5; }, "five checks of b2 failed");
    CHECK(every_shard_sees(proxy.server(), 1, false));
    CHECK(checks_of(proxy.server(), bad_port, "bad_status") == 0);
    CHECK(checks_of(proxy.server(), bad_port, "success") == 0);
    CHECK(proxy.backend(1).requests_served() == 0);

    auto snapshot = proxy.server().health_monitor()->snapshot();
    CHECK(snapshot[0].last_reason == "status 200");
    CHECK(snapshot[2].last_reason == "status 200");
    REQUIRE(snapshot[1].last_result.has_value());
    CHECK(*snapshot[1].last_result == lb::health::CheckResult::tls_handshake);
    CHECK(snapshot[1].last_reason ==
          "TLS handshake failed: certificate verify failed (unable to get local issuer certificate)");
    // b2 started down and stays down: no transition names it, so one line of its own does, and only one.
    CHECK(log.lines_with(
              {"health: backend 127.0.0.1:" + std::to_string(bad_port) + " is still down",
               "TLS handshake failed: certificate verify failed (unable to get local issuer certificate)"}) == 1);
    CHECK(log.lines_with({"health: backend 127.0.0.1:" + std::to_string(bad_port), "certificate verify failed"}) == 1);
    // b4 refuses lb's client certificate: with TLS 1.3 after lb's side of the handshake, a handshake failure all
    // the same.
    uint16_t refusing_port = proxy.backend(3).port();
    wait_until([&] { return checks_of(proxy.server(), refusing_port, "connect_error") >= 2; },
               "two checks of b4 failed");
    CHECK(every_shard_sees(proxy.server(), 3, false));
    CHECK(checks_of(proxy.server(), refusing_port, "bad_status") == 0);
    snapshot = proxy.server().health_monitor()->snapshot();
    REQUIRE(snapshot[3].last_result.has_value());
    CHECK(*snapshot[3].last_result == lb::health::CheckResult::tls_handshake);
    CHECK(snapshot[3].last_reason.rfind("TLS handshake failed: ", 0) == 0);
    CHECK(snapshot[3].last_reason.find("alert unknown ca") != std::string::npos);
    // Requests go to b1 and b3 only.
    for (int i = 0; i < 6; ++i) {
        std::string body = curl_get(proxy.port()).body;
        CHECK((body == "b1\n" || body == "b3\n"));
    }
}

TEST_CASE("health checks over TLS: a backend that starts up goes down when its certificate does not verify, said once",
          "[tls][upstream][health]") {
    StderrCapture log;
    // The configured sni is the name verified: the backend's certificate names localhost, not other.test.
    ProxyFixture proxy(
        1,
        [](lb::core::Config& c) {
            lb::net::TlsUpstreamConfig tls = trusting_test_ca();
            tls.sni = "other.test";
            upstream_tls(tls)(c);
            fast_checks(c);
        },
        1, serve_tls(test_certs().localhost_rsa));
    uint16_t port = proxy.backend(0).port();
    wait_until([&] { return every_shard_sees(proxy.server(), 0, false); }, "b1 is down");
    wait_until([&] { return checks_of(proxy.server(), port, "connect_error") >= 5; }, "five checks of b1 failed");
    CHECK(checks_of(proxy.server(), port, "bad_status") == 0);
    CHECK(log.lines_with({"health: backend 127.0.0.1:" + std::to_string(port) + " is down",
                          "TLS handshake failed: certificate verify failed (hostname mismatch)"}) == 1);
    CHECK(log.lines_with({"health: backend 127.0.0.1:" + std::to_string(port), "certificate verify failed"}) == 1);
}
