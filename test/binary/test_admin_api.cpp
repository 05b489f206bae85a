// The admin API against the real binary with 2 workers: drain, disable, enable and weight change where traffic
// goes (counted by X-Backend-Id over fresh connections, which the kernel spreads over both workers), the state
// shows in /backends, /status and /metrics, survives a SIGHUP reload, and a token, when configured, guards POSTs.
#include <catch2/catch.hpp>
#include <csignal>
#include <map>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/metrics_text.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// One request to the admin listener, on a connection of its own.
Response admin(uint16_t port, const std::string& method, const std::string& target, const std::string& headers = "") {
    Client client(port);
    client.send(method + " " + target + " HTTP/1.1\r\nHost: admin\r\n" + headers + "\r\n");
    return client.read_response(method == "HEAD");
}

// Which backend served each of `n` requests, each on a new connection.
std::map<std::string, int> tally(uint16_t port, int n = 40) {
    std::map<std::string, int> counts;
    for (int i = 0; i < n; ++i) {
        Response r = http_get(port, "/");
        REQUIRE(r.status == 200);
        ++counts[r.header("X-Backend-Id")];
    }
    return counts;
}

std::string config(const StartedBackend& a, const StartedBackend& b, const std::string& admin_extra = "") {
    return "listen: 127.0.0.1:0\nworkers: 2\nalgorithm: weighted_round_robin\nadmin:\n  listen: 127.0.0.1:0\n" +
           admin_extra + "backends:\n  - " + a.address() + "\n  - " + b.address() + "\nhealth:\n  enabled: false\n";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("the admin API drains, disables, enables and reweighs a backend on every worker", "[admin][binary]") {
    StartedBackend a("a");
    StartedBackend b("b");
    RunningLb lb("admin-api", config(a, b));
    const uint16_t port = lb.admin_port();
    REQUIRE(port != 0);

    // Round robin per worker: each worker alternates, so the total is even to within one per worker.
    auto even = tally(lb.port());
    CHECK(even["a"] >= 18);
    CHECK(even["b"] >= 18);
    Response listing = admin(port, "GET", "/backends");
    CHECK(listing.status == 200);
    CHECK(listing.header("Content-Type") == "application/json");
    CHECK(contains(listing.body, "{\"name\":\"" + a.address() + "\",\"state\":\"up\""));

    SECTION("a cross-site POST is refused and changes nothing") {
        Response r = admin(port, "POST", "/backends/" + a.address() + "/drain", "Origin: http://evil.example\r\n");
        CHECK(r.status == 403);
        CHECK(r.head.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
        CHECK(tally(lb.port())["a"] >= 15);
        // The page's own origin (the Host it was loaded from) passes.
        CHECK(admin(port, "POST", "/backends/" + a.address() + "/drain", "Origin: http://admin\r\n").status == 200);
    }
    SECTION("drain") {
        Response r = admin(port, "POST", "/backends/" + a.address() + "/drain");
        CHECK(r.status == 200);
        CHECK(contains(r.body, "\"state\":\"draining\""));
        CHECK(tally(lb.port())["b"] == 40);
        CHECK(contains(admin(port, "GET", "/backends").body, "\"admin_state\":\"draining\""));
        CHECK(contains(admin(port, "GET", "/status").body,
                       "\"state\":\"draining\",\"why\":\"drained by the admin API\""));
        CHECK(lb.metric(backend_series("lb_backend_admin_state", a.port(), "state=\"draining\"")) == 1);
        CHECK(lb.metric(backend_series("lb_backend_admin_state", a.port(), "state=\"enabled\"")) == 0);
        // Once: a repeated drain changes nothing and logs nothing.
        CHECK(admin(port, "POST", "/backends/" + a.address() + "/drain").status == 200);
        lb.wait_for_log("admin API: backend " + a.address() + " is now draining (was enabled)");
        std::string log = lb.log();
        CHECK(log.find("is now draining") == log.rfind("is now draining"));
    }
    SECTION("disable, then enable") {
        CHECK(admin(port, "POST", "/backends/" + a.address() + "/disable").status == 200);
        CHECK(tally(lb.port())["b"] == 40);
        CHECK(lb.metric(backend_series("lb_backend_admin_state", a.port(), "state=\"disabled\"")) == 1);
        CHECK(contains(admin(port, "GET", "/status").body, "\"state\":\"disabled\""));
        CHECK(admin(port, "POST", "/backends/" + a.address() + "/enable").status == 200);
        auto back = tally(lb.port());
        CHECK(back["a"] >= 18);
        CHECK(back["b"] >= 18);
    }
    SECTION("weight") {
        Response r = admin(port, "POST", "/backends/" + a.address() + "/weight?value=3");
        CHECK(r.status == 200);
        CHECK(contains(r.body, "\"weight\":3,\"configured_weight\":1"));
        // Smooth weighted round robin per worker: 3 of every 4 on each, whatever split the kernel made.
        auto split = tally(lb.port());
        CHECK(split["a"] >= 28);
        CHECK(split["a"] + split["b"] == 40);
        CHECK(lb.metric(backend_series("lb_backend_weight", a.port())) == 3);
        lb.wait_for_log("admin API: backend " + a.address() + " weight 3 (was 1, 1 in lb.yaml)");
    }
    SECTION("errors") {
        Response unknown = admin(port, "POST", "/backends/127.0.0.1:1/drain");
        CHECK(unknown.status == 404);
        CHECK(contains(unknown.body, "\"error\":"));
        Response wrong_method = admin(port, "GET", "/backends/" + a.address() + "/drain");
        CHECK(wrong_method.status == 405);
        CHECK(wrong_method.header("Allow") == "POST");
        CHECK(admin(port, "DELETE", "/backends").header("Allow") == "GET, HEAD");
        for (const char* bad : {"0", "1001", "-1", "x", ""}) {
            INFO(bad);
            CHECK(admin(port, "POST", "/backends/" + a.address() + "/weight?value=" + bad).status == 400);
        }
        CHECK(admin(port, "POST", "/backends/" + a.address() + "/weight").status == 400);
        CHECK(admin(port, "POST", "/backends/" + a.address() + "/explode").status == 404);
        CHECK(contains(admin(port, "GET", "/backends").body, "\"admin_state\":\"enabled\",\"weight\":1"));
    }
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("admin API changes survive a SIGHUP reload by host:port", "[admin][binary][reload]") {
    StartedBackend a("a");
    StartedBackend b("b");
    StartedBackend c("c");
    RunningLb lb("admin-api-reload", config(a, b));
    const uint16_t port = lb.admin_port();
    REQUIRE(admin(port, "POST", "/backends/" + a.address() + "/disable").status == 200);
    REQUIRE(admin(port, "POST", "/backends/" + b.address() + "/weight?value=5").status == 200);
    // The reload reorders the backends and adds one: the overrides follow the names, not the positions.
    REQUIRE(lb.reload(std::string("listen: 127.0.0.1:0\nworkers: 2\nalgorithm: weighted_round_robin\nadmin:\n  listen: "
                                  "127.0.0.1:0\nbackends:") +
                      "\n  - " + c.address() + "\n  - " + b.address() + "\n  - " + a.address() +
                      "\nhealth:\n  enabled: false\n"));
    std::string listing = admin(port, "GET", "/backends").body;
    CHECK(contains(listing, "{\"name\":\"" + a.address() + "\",\"state\":\"disabled\""));
    CHECK(contains(listing,
                   "{\"name\":\"" + b.address() +
                       "\",\"state\":\"up\",\"why\":\"no check has failed\",\"admin_state\":\"enabled\",\"weight\":5"));
    CHECK(contains(listing, "{\"name\":\"" + c.address() + "\",\"state\":\"up\""));
    auto counts = tally(lb.port(), 60);
    CHECK(counts["a"] == 0);
    CHECK(counts["b"] >= 46);  // 5 of every 6 per worker
    CHECK(counts["c"] >= 6);
    CHECK(lb.metric(backend_series("lb_backend_admin_state", a.port(), "state=\"disabled\"")) == 1);
    // A weight edited in lb.yaml wins over the one set through the API.
    REQUIRE(lb.reload(std::string("listen: 127.0.0.1:0\nworkers: 2\nalgorithm: weighted_round_robin\nadmin:\n  listen: "
                                  "127.0.0.1:0\nbackends:") +
                      "\n  - " + c.address() + "\n  - address: " + b.address() + "\n    weight: 2\n  - " + a.address() +
                      "\nhealth:\n  enabled: false\n"));
    CHECK(contains(admin(port, "GET", "/backends").body, "\"weight\":2,\"configured_weight\":2"));
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("with admin.token_file every POST needs the bearer token", "[admin][binary][token]") {
    StartedBackend a("a");
    StartedBackend b("b");
    std::string token_file = write_temp_file("admin-token", "correct-horse\n");
    RunningLb lb("admin-api-token", config(a, b, "  token_file: " + token_file + "\n"));
    const uint16_t port = lb.admin_port();
    const std::string drain = "/backends/" + a.address() + "/drain";
    Response none = admin(port, "POST", drain);
    CHECK(none.status == 401);
    CHECK(none.header("WWW-Authenticate") == "Bearer");
    CHECK(admin(port, "POST", drain, "Authorization: Bearer wrong-horse!\r\n").status == 401);
    CHECK(admin(port, "POST", drain, "Authorization: Bearer correct-hors\r\n").status == 401);
    CHECK(admin(port, "POST", drain, "Authorization: Basic correct-horse\r\n").status == 401);
    // Reads stay open on loopback.
    CHECK(admin(port, "GET", "/backends").status == 200);
    CHECK(tally(lb.port(), 8)["a"] >= 2);
    CHECK(admin(port, "POST", drain, "Authorization: Bearer correct-horse\r\n").status == 200);
    CHECK(tally(lb.port(), 8)["b"] == 8);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a drained backend finishes the requests it has, and with every backend out new ones get 503",
          "[admin][binary][drain]") {
    StartedBackend a("a");
    StartedBackend b("b");
    RunningLb lb("admin-api-in-flight", config(a, b));
    const uint16_t port = lb.admin_port();
    REQUIRE(admin(port, "POST", "/backends/" + b.address() + "/disable").status == 200);
    Client slow(lb.port());
    slow.send("GET /?delay_ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until([&] { return contains(admin(port, "GET", "/backends").body, "\"in_flight\":1"); },
               "the request is in flight on a");
    REQUIRE(admin(port, "POST", "/backends/" + a.address() + "/drain").status == 200);
    CHECK(http_get(lb.port(), "/").status == 503);
    Response finished = slow.read_response();
    CHECK(finished.status == 200);
    CHECK(finished.header("X-Backend-Id") == "a");
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}
