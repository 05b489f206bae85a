// What an operator scrapes from a running lb binary: health checks by result, the connection gauges and the byte
// counters, each against what the test itself did, exactly.
#include <catch2/catch.hpp>
#include <csignal>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/metrics_text.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

TEST_CASE("a running lb counts its health checks by result", "[metrics][health]") {
    StartedBackend passing("passing");
    StartedBackend failing("failing");
    StartedBackend silent("silent");
    RefusingPort refusing;
    auto address = [](uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
    // Each backend gives one kind of result, whatever the clock: the silent one never answers its checks.
    RunningLb lb("health-checks",
                 "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - " +
                     address(passing.port()) + "\n  - address: " + address(failing.port()) +
                     "\n    health:\n      path: /health?status=500\n  - address: " + address(silent.port()) +
                     "\n    health:\n      path: /health?silent=1\n  - " + address(refusing.port()) +
                     "\nhealth:\n  interval: 50ms\n  timeout: 1s\n  fall: 2\n  rise: 2\n");
    auto checks = [&](uint16_t port, const char* result) {
        return lb.metric(
            backend_series("lb_backend_health_checks_total", port, std::string("result=\"") + result + "\""));
    };
    struct Expected {
        uint16_t port;
        const char* result;
    };
    for (const Expected& e : {Expected{passing.port(), "success"}, Expected{failing.port(), "bad_status"},
                              Expected{silent.port(), "timeout"}, Expected{refusing.port(), "connect_error"}}) {
        INFO(e.port << " " << e.result);
        // The silent backend's checks take the whole timeout each: one is enough there.
        const double enough = e.port == silent.port() ? 1 : 3;
        wait_until([&] { return checks(e.port, e.result) >= enough; }, "checks counted");
        for (const char* other : {"success", "bad_status", "timeout", "connect_error"}) {
            if (std::string(other) != e.result) CHECK(checks(e.port, other) == 0);
        }
    }
    CHECK(lb.metric(backend_series("lb_backend_up", passing.port())) == 1);
    for (uint16_t down : {failing.port(), silent.port(), refusing.port()}) {
        wait_until([&] { return lb.metric(backend_series("lb_backend_up", down)) == 0; }, "the backend is down");
    }
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a running lb's connection gauges and byte counters follow its traffic exactly", "[metrics][connections]") {
    StartedBackend backend("b1");
    RunningLb lb("connections",
                 "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - 127.0.0.1:" +
                     std::to_string(backend.port()) + "\nhealth:\n  enabled: false\n");
    const std::string active = backend_series("lb_backend_upstream_connections_active", backend.port());
    const std::string idle = backend_series("lb_backend_upstream_connections_idle", backend.port());
    CHECK(lb.metric("lb_client_connections_active") == 0);
    CHECK(lb.metric("lb_client_received_bytes_total") == 0);
    CHECK(lb.metric("lb_client_sent_bytes_total") == 0);

    const std::string head = "POST /?bytes=1000 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n";
    Response response;
    {
        Client client(lb.port());
        // A request in flight: its body's last byte is still to come.
        client.send(head + "h");
        wait_until([&] { return lb.metric(active) == 1; }, "an upstream connection is in use");
        CHECK(lb.metric("lb_client_connections_active") == 1);
        CHECK(lb.metric(idle) == 0);
        client.send("d");
        response = client.read_response();
        REQUIRE(response.status == 200);
        REQUIRE(response.body.size() == 1000);
        // Done: the upstream connection is parked, the client's stays open.
        wait_until([&] { return lb.metric(idle) == 1; }, "the upstream connection is back in the pool");
        wait_until([&] { return lb.metric(active) == 0; }, "no upstream connection is in use");
        CHECK(lb.metric("lb_client_connections_active") == 1);
    }
    wait_until([&] { return lb.metric("lb_client_connections_active") == 0; }, "the client connection is closed");
    CHECK(lb.metric("lb_client_connections_accepted_total") == 1);
    // Every byte the client sent and received, counted once.
    CHECK(lb.metric("lb_client_received_bytes_total") == head.size() + 2);
    CHECK(lb.metric("lb_client_sent_bytes_total") == response.head.size() + response.body.size());
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}
