// When lb sends a request again, and when it must not (README, "Retries"): each case counts what every backend
// saw and lb_retries_total, so that a retry that did not happen, or one that should not have, fails the case.
#include <catch2/catch.hpp>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

double metric(ProxyFixture& proxy, const std::string& series) {
    return metric_value(proxy.server().render_metrics(), series);
}

double retries(ProxyFixture& proxy) { return metric(proxy, "lb_retries_total"); }

double errors(ProxyFixture& proxy, const std::string& kind) {
    return metric(proxy, "lb_errors_total{kind=\"" + kind + "\"}");
}

uint64_t connections_seen(ProxyFixture& proxy, size_t backends) {
    uint64_t total = 0;
    for (size_t i = 0; i < backends; ++i) total += proxy.backend(i).connections_accepted();
    return total;
}

// Sends `request`, expects `status` with Connection: close, then the close.
void expect_rejected(uint16_t port, const std::string& request, int status) {
    Client client(port);
    client.send(request);
    Response r = client.read_response();
    CHECK(r.status == status);
    CHECK(r.header("Connection") == "close");
    CHECK(client.wait_closed());
}

const std::string kGet = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

}  // namespace

TEST_CASE("a refused connect goes to the next backend", "[retry][connect]") {
    RefusingPort dead;
    ProxyFixture proxy(2, [&](lb::core::Config& c) {
        c.backends.insert(c.backends.begin(), make_config({dead.port()}).backends[0]);
        c.retries = 1;
    });
    // One shard rotates dead, b1, b2; a retry takes the rotation's next place. So the requests go: dead then b1,
    // b2, dead then b1, b2, ...: every other one is refused by the dead backend and sent to b1, and every client
    // sees a 200.
    for (int i = 0; i < 6; ++i) CHECK(http_get(proxy.port(), "/").status == 200);
    CHECK(proxy.backend(0).requests_served() == 3);
    CHECK(proxy.backend(1).requests_served() == 3);
    CHECK(errors(proxy, "connect_refused") == 3);
    CHECK(retries(proxy) == 3);
}

TEST_CASE("a timed-out connect goes to a backend not yet tried", "[retry][connect]") {
    UnansweredPort unanswered;
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.backends.insert(c.backends.begin(), make_config({unanswered.port()}).backends[0]);
        c.retries = 1;
        // A connect to the unanswered port never completes, whatever the clock: this only says how long the test
        // waits, and is far longer than a connect to the live backend on loopback takes.
        c.timeouts.connect = 1000ms;
    });
    // The shard's rotation starts at the first backend: the unanswered one.
    Response r = http_get(proxy.port(), "/");
    CHECK(r.status == 200);
    CHECK(r.header("X-Backend-Id") == "b1");
    CHECK(errors(proxy, "connect_timeout") == 1);
    CHECK(errors(proxy, "connect_refused") == 0);
    CHECK(retries(proxy) == 1);
}

TEST_CASE("connect failures are retried on untried backends only, up to retries, then 502", "[retry][connect]") {
    RefusingPort dead1, dead2, dead3;
    SECTION("more retries allowed than backends: each is tried once") {
        ProxyFixture proxy(0, [&](lb::core::Config& c) {
            c = make_config({dead1.port(), dead2.port()});
            c.retries = 3;
        });
        expect_rejected(proxy.port(), kGet, 502);
        CHECK(errors(proxy, "connect_refused") == 2);
        CHECK(retries(proxy) == 1);
    }
    SECTION("fewer retries than backends: the last one is never tried") {
        ProxyFixture proxy(0, [&](lb::core::Config& c) {
            c = make_config({dead1.port(), dead2.port(), dead3.port()});
            c.retries = 1;
        });
        expect_rejected(proxy.port(), kGet, 502);
        CHECK(errors(proxy, "connect_refused") == 2);
        CHECK(retries(proxy) == 1);
    }
}

TEST_CASE("a request without a body that fails on a reused keep-alive connection is sent again on a fresh one",
          "[retry][reused]") {
    // Whatever the method, a zero-length POST included: only the head went out, and a backend that closes a
    // pooled connection just as it is reused has processed nothing.
    std::string request = GENERATE(as<std::string>{}, "GET /?drop_if_reused=1 HTTP/1.1\r\nHost: t\r\n\r\n",
                                   "DELETE /?drop_if_reused=1 HTTP/1.1\r\nHost: t\r\n\r\n",
                                   "POST /?drop_if_reused=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send(kGet);
    REQUIRE(client.read_response().header("X-Conn-Request") == "1");
    client.send(request);
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.header("X-Conn-Request") == "1");  // the first request on a new connection
    CHECK(proxy.backend(0).connections_accepted() == 2);
    CHECK(errors(proxy, "upstream_reset") == 1);
    CHECK(retries(proxy) == 1);
}

TEST_CASE("with retries 0, a request without a body that meets a stale reused connection is still sent once more",
          "[retry][reused]") {
    // The keep-alive race is not the backend's answer: nginx too gives a cached connection's failure a try of its
    // own. Once only: the resend goes on a fresh connection, whose failure is the backend's.
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.retries = 0; });
    Client client(proxy.port());
    client.send(kGet);
    REQUIRE(client.read_response().header("X-Conn-Request") == "1");
    client.send("GET /?drop_if_reused=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.header("X-Conn-Request") == "1");
    CHECK(proxy.backend(0).connections_accepted() == 2);
    CHECK(retries(proxy) == 1);
    // Dropped on the reused connection, then on the fresh one it is resent on: that failure is the backend's, and
    // there is no retry left for it.
    client.send("GET /?drop=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(client.read_response().status == 502);
    CHECK(proxy.backend(0).connections_accepted() == 3);
    CHECK(retries(proxy) == 2);
}

TEST_CASE("a request whose body was sent is never retried, whatever its method", "[retry][body]") {
    std::string method = GENERATE(as<std::string>{}, "POST", "PUT", "PATCH", "DELETE", "GET");
    SECTION("on a reused keep-alive connection the backend drops") {
        ProxyFixture proxy(1);
        Client client(proxy.port());
        client.send(kGet);
        REQUIRE(client.read_response().status == 200);
        client.send(method + " /?drop_if_reused=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody");
        Response r = client.read_response();
        CHECK(r.status == 502);
        CHECK(proxy.backend(0).connections_accepted() == 1);
        CHECK(retries(proxy) == 0);
    }
    SECTION("on a fresh connection, with another backend to go to") {
        ProxyFixture proxy(2);
        expect_rejected(proxy.port(), method + " /?drop=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody", 502);
        CHECK(connections_seen(proxy, 2) == 1);
        expect_rejected(
            proxy.port(),
            method + " /?drop=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n", 502);
        CHECK(connections_seen(proxy, 2) == 2);
        CHECK(retries(proxy) == 0);
    }
}

TEST_CASE("an idempotent request without a body cut off on a fresh connection goes to another backend, a POST does not",
          "[retry][fresh]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) { c.retries = 2; });
    // Both backends drop it: the GET is tried on each once, then lb gives up with 502 (retries would have allowed a
    // third attempt, but no untried backend is left).
    expect_rejected(proxy.port(), "GET /?drop=1 HTTP/1.1\r\nHost: t\r\n\r\n", 502);
    CHECK(proxy.backend(0).connections_accepted() == 1);
    CHECK(proxy.backend(1).connections_accepted() == 1);
    CHECK(retries(proxy) == 1);
    // A POST may have been acted on before the connection broke, even with no body: one backend saw it.
    expect_rejected(proxy.port(), "POST /?drop=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 502);
    CHECK(connections_seen(proxy, 2) == 3);
    CHECK(retries(proxy) == 1);
}

TEST_CASE("a response that does not come in time is not asked for again: 504", "[retry][timeout]") {
    // silent=1: the backend reads the request and never answers, so the timeout is certain, whatever the clock.
    ProxyFixture proxy(2, [](lb::core::Config& c) { c.timeouts.upstream_response = 200ms; });
    expect_rejected(proxy.port(), "GET /?silent=1 HTTP/1.1\r\nHost: t\r\n\r\n", 504);
    CHECK(connections_seen(proxy, 2) == 1);
    CHECK(errors(proxy, "upstream_timeout") == 1);
    CHECK(retries(proxy) == 0);
}

TEST_CASE("nothing is retried once response bytes reached the client", "[retry][midstream]") {
    std::string failure = GENERATE(as<std::string>{}, "mid_close=1", "reset_mid_body=1");
    ProxyFixture proxy(2);
    Client client(proxy.port());
    // An idempotent GET with no body, which lb would otherwise send again.
    client.send("GET /?bytes=1000000&" + failure + " HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string received = client.read_until_closed();
    CHECK(received.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(received.size() < 1000000);
    CHECK(connections_seen(proxy, 2) == 1);
    CHECK(errors(proxy, "upstream_reset") == 1);
    CHECK(retries(proxy) == 0);
}

TEST_CASE("an invalid response is not retried: 502", "[retry][invalid]") {
    ProxyFixture proxy(2);
    expect_rejected(proxy.port(), "GET /?invalid=1 HTTP/1.1\r\nHost: t\r\n\r\n", 502);
    CHECK(connections_seen(proxy, 2) == 1);
    CHECK(errors(proxy, "bad_response") == 1);
    CHECK(retries(proxy) == 0);
}
