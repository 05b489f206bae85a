// Every error status lb sends, each provoked for real, and the request-smuggling shapes that must never reach
// a backend.
#include <catch2/catch.hpp>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// Sends `request`, expects `status` with Connection: close, then a clean close.
void expect_rejected(uint16_t port, const std::string& request, int status) {
    Client client(port);
    client.send(request);
    Response r = client.read_response();
    CHECK(r.status == status);
    CHECK(r.header("Connection") == "close");
    CHECK(r.body.rfind("lb: ", 0) == 0);
    CHECK(client.wait_closed());
}

}  // namespace

TEST_CASE("malformed and ambiguous requests get 400 and never reach a backend", "[errors][smuggling]") {
    ProxyFixture proxy(1);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"garbage request line", "NOT HTTP AT ALL\r\n\r\n"},
        {"Content-Length with Transfer-Encoding",
         "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        {"two different Content-Lengths",
         "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
        {"invalid chunk size",
         "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
        {"bare LF line endings", "GET / HTTP/1.1\nHost: t\n\n"},
        {"obs-fold header continuation", "GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n"},
        {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"},
        {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
        {"Transfer-Encoding not ending in chunked", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nxx"},
        {"space before the colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n"},
        {"CONNECT, which lb does not support", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
    };
    for (const auto& [name, request] : cases) {
        SECTION(name) { expect_rejected(proxy.port(), request, 400); }
    }
    CHECK(proxy.backend(0).requests_served() == 0);
    CHECK(proxy.backend(0).connections_accepted() == 0);
}

TEST_CASE("a client too slow sending its header section gets 408", "[errors][timeout]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.timeouts.client_header = 200ms; });
    Client client(proxy.port());
    client.send("GET / HTTP/1.1\r\nHost: te");
    Response r = client.read_response();
    CHECK(r.status == 408);
    CHECK(client.wait_closed());
    CHECK(proxy.backend(0).connections_accepted() == 0);
}

TEST_CASE("an idle client connection is closed without a response", "[errors][timeout]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.timeouts.client_keepalive = 200ms; });
    Client client(proxy.port());
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(client.read_response().status == 200);
    CHECK(client.read_until_closed().empty());
}

TEST_CASE("limits: URI 414, header section 431, body 413", "[errors][limits]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.limits.uri_bytes = 1024;
        c.limits.header_bytes = 4096;
        c.limits.header_count = 20;
        c.limits.request_body_bytes = 1000;
    });
    SECTION("URI too long") {
        expect_rejected(proxy.port(), "GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n", 414);
    }
    SECTION("header section too large") {
        expect_rejected(proxy.port(), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n",
                        431);
    }
    SECTION("too many header fields") {
        std::string headers;
        for (int i = 0; i < 25; ++i) headers += "X-H" + std::to_string(i) + ": v\r\n";
        expect_rejected(proxy.port(), "GET / HTTP/1.1\r\nHost: t\r\n" + headers + "\r\n", 431);
    }
    SECTION("declared body too large") {
        expect_rejected(proxy.port(), "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413);
    }
    SECTION("chunked body grows too large") {
        expect_rejected(proxy.port(),
                        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" +
                            std::string(1001, 'x') + "\r\n0\r\n\r\n",
                        413);
    }
    CHECK(proxy.backend(0).requests_served() == 0);
}

TEST_CASE("no backend available gets 503", "[errors][503]") {
    ProxyFixture proxy(2);
    set_backend_health(proxy.server(), 0, false);
    set_backend_health(proxy.server(), 1, false);
    expect_rejected(proxy.port(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 503);
    set_backend_health(proxy.server(), 1, true);
    CHECK(http_get(proxy.port(), "/").header("X-Backend-Id") == "b2");
}

TEST_CASE("a backend too slow to respond gets 504", "[errors][504]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.timeouts.upstream_response = 200ms; });
    // silent=1 never answers: the timeout is certain however slow the machine.
    expect_rejected(proxy.port(), "GET /?silent=1 HTTP/1.1\r\nHost: t\r\n\r\n", 504);
}

TEST_CASE("a backend that dies mid-response closes the client connection", "[errors][midstream]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send("GET /?bytes=1000000&mid_close=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string received = client.read_until_closed();
    CHECK(received.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(received.find("Content-Length: 1000000") != std::string::npos);
    CHECK(received.size() < 1000000);
    // Part of the response went out: nothing is sent again.
    CHECK(proxy.backend(0).connections_accepted() == 1);
    CHECK(metric_value(proxy.server().render_metrics(), "lb_retries_total") == 0);
}

TEST_CASE("a pooled connection the backend closed while idle is dropped, not used", "[errors][pool]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(client.read_response().status == 200);
    wait_until([&] { return proxy.server().idle_upstream_connections() == 1; }, "the connection is back in the pool");
    // Stopping the backend closes every connection it had, the pooled one included: lb notices the close while
    // the connection is idle, without a request having to fail on it first.
    proxy.restart_backend(0);
    wait_until([&] { return proxy.server().idle_upstream_connections() == 0; }, "lb dropped the closed connection");
    // The next request goes out on a new connection at once: not on the dead one first, then again.
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.header("X-Conn-Request") == "1");
    std::string metrics = proxy.server().render_metrics();
    CHECK(metric_value(metrics, "lb_retries_total") == 0);
    CHECK(metric_value(metrics, "lb_errors_total{kind=\"upstream_reset\"}") == 0);
}

TEST_CASE("a response that is not HTTP gets 502", "[errors][502]") {
    ProxyFixture proxy(1);
    expect_rejected(proxy.port(), "GET /?invalid=1 HTTP/1.1\r\nHost: t\r\n\r\n", 502);
    CHECK(metric_value(proxy.server().render_metrics(), "lb_errors_total{kind=\"bad_response\"}") == 1);
    // The connection that carried it is not reused.
    CHECK(proxy.server().idle_upstream_connections() == 0);
    CHECK(http_get(proxy.port(), "/").status == 200);
}
