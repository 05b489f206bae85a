// The lb command line and process lifecycle: --check, --help, --version, graceful shutdown on SIGTERM, and
// SO_REUSEPORT shards sharing the accepted connections.
#include <catch2/catch.hpp>
#include <csignal>
#include <memory>
#include <set>
#include <thread>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;

namespace {

// No upstream keep-alive: each request opens its own backend connection, which is how the test sees that a
// request has reached the backend.
std::string minimal_config(uint16_t listen_port, uint16_t backend_port) {
    return "listen: 127.0.0.1:" + std::to_string(listen_port) +
           "\nworkers: 2\nbackends:\n  - 127.0.0.1:" + std::to_string(backend_port) +
           "\nupstream:\n  keepalive: 0\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n";
}

}  // namespace

TEST_CASE("lb --check accepts a valid file and rejects a bad one with file, line and reason", "[cli]") {
    auto good = run_command(std::string(LB_BINARY) + " --check -c " + LB_SOURCE_DIR "/lb.yaml");
    CHECK(good.exit_code == 0);
    CHECK(good.output.find("OK") != std::string::npos);

    std::string bad =
        write_temp_file("bad.yaml", "listen: 127.0.0.1:8080\nbackends:\n  - 127.0.0.1:9001\nretires: 3\n");
    auto result = run_command(std::string(LB_BINARY) + " --check -c " + bad);
    CHECK(result.exit_code == 1);
    CHECK(result.output.find(bad + ":4:1: unknown key 'retires'") != std::string::npos);

    auto missing = run_command(std::string(LB_BINARY) + " -c /nonexistent/lb.yaml");
    CHECK(missing.exit_code == 1);
    CHECK(missing.output.find("/nonexistent/lb.yaml") != std::string::npos);
}

TEST_CASE("lb --help and --version", "[cli]") {
    auto help = run_command(std::string(LB_BINARY) + " --help");
    CHECK(help.exit_code == 0);
    CHECK(help.output.find("--check") != std::string::npos);
    auto version = run_command(std::string(LB_BINARY) + " --version");
    CHECK(version.exit_code == 0);
    CHECK(version.output.rfind("lb ", 0) == 0);
    CHECK(run_command(std::string(LB_BINARY) + " --bogus").exit_code == 2);
}

TEST_CASE("SIGTERM or SIGINT: lb stops accepting, closes idle connections, lets a request in flight finish, exits 0",
          "[lifecycle][shutdown]") {
    int stop_signal = GENERATE(SIGTERM, SIGINT);
    lb::demo::DemoBackend backend({});
    backend.start();
    RunningLb lb("drain", minimal_config(0, backend.port()));

    Client idle(lb.port());
    idle.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(idle.read_response().status == 200);
    // In flight until the test sends its last byte, however long the shutdown takes to start.
    HeldRequest held(lb.port());
    // Without upstream keep-alive, the request is with the backend once lb has opened a connection for it.
    wait_until([&] { return backend.connections_accepted() == 2; }, "the held request reached the backend");

    lb.process().signal(stop_signal);
    lb.wait_for_log("draining connections");
    CHECK(idle.wait_closed());  // an idle keep-alive connection is closed once the drain's idle grace (1 s) ends
    // New connections are refused once every worker has closed its listener.
    wait_until([&] { return status_of(lb.port(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == -1; }, "lb stops accepting");
    CHECK(lb.process().running());
    Response r = held.finish();
    CHECK(r.status == 200);
    CHECK(r.body == "b1\n");
    CHECK(r.header("Connection") == "close");
    CHECK(held.client().wait_closed());
    CHECK(lb.process().wait() == 0);
    CHECK(lb.log().find("stopped") != std::string::npos);
}

TEST_CASE("a second signal makes lb exit at once, with a request still in flight", "[lifecycle][shutdown]") {
    int second_signal = GENERATE(SIGTERM, SIGINT);
    lb::demo::DemoBackend backend({});
    backend.start();
    // A drain that could last ten minutes, and a request that never finishes by itself: only the second signal
    // can end lb within the test.
    std::string config = minimal_config(0, backend.port()) + "timeouts:\n  drain: 10m\n";
    RunningLb lb("second-signal", config);
    HeldRequest held(lb.port());
    wait_until([&] { return backend.connections_accepted() == 1; }, "the held request reached the backend");
    lb.process().signal(SIGTERM);
    lb.wait_for_log("draining connections");
    CHECK(lb.process().running());
    lb.process().signal(second_signal);
    CHECK(lb.process().wait() == 1);
    CHECK(lb.log().find("second signal: exiting without waiting for the drain") != std::string::npos);
    CHECK(held.client().read_until_closed().empty());  // no response: the process is gone
}

TEST_CASE("with 4 shards, connections are accepted on more than one shard", "[lifecycle][shards]") {
    ProxyFixture proxy(1, {}, 4);
    REQUIRE(proxy.server().shard_count() == 4);
    for (int i = 0; i < 64; ++i) REQUIRE(http_get(proxy.port(), "/").status == 200);
    size_t shards_used = 0;
    uint64_t total = 0;
    for (size_t s = 0; s < 4; ++s) {
        total += proxy.server().connections_accepted(s);
        shards_used += proxy.server().connections_accepted(s) > 0 ? 1 : 0;
    }
    CHECK(total == 64);
    CHECK(shards_used > 1);
}

TEST_CASE("each shard starts its rotation at a different backend", "[lifecycle][shards]") {
    ProxyFixture proxy(3, {}, 3);
    // The first request each shard serves goes to a different backend, so the first requests after a start
    // spread over all three however the kernel distributes connections.
    std::set<std::string> first_per_shard;
    std::vector<uint64_t> seen(3, 0);
    for (int i = 0; i < 200 && first_per_shard.size() < 3; ++i) {
        std::string id = http_get(proxy.port(), "/").header("X-Backend-Id");
        for (size_t s = 0; s < 3; ++s) {
            uint64_t accepted = proxy.server().connections_accepted(s);
            if (accepted == 1 && seen[s] == 0) first_per_shard.insert(id);
            seen[s] = accepted;
        }
    }
    CHECK(first_per_shard.size() == 3);
}

TEST_CASE("the drain timeout closes requests still in flight, and the shards stop", "[lifecycle][shutdown]") {
    ProxyFixture proxy(
        1, [](lb::core::Config& c) { c.timeouts.drain = std::chrono::milliseconds{200}; }, 2);
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(std::make_unique<Client>(proxy.port()));
        clients.back()->send("GET /?delay_ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    wait_until([&] { return proxy.backend(0).connections_accepted() == 4; }, "every request reached the backend");
    proxy.stop();  // returns only once every shard has stopped, with no handle left (checked inside)
    for (auto& client : clients) CHECK(client->read_until_closed().empty());
}

TEST_CASE("a drain serves a connection's first request if it comes soon, and closes one that stays silent",
          "[lifecycle][shutdown]") {
    // Header and drain timeouts far longer than the client's read timeout: only the drain's idle grace
    // (timeouts.drain_idle_grace, 1 s) can close the silent connection in time.
    ProxyFixture proxy(
        1,
        [](lb::core::Config& c) {
            c.timeouts.client_header = std::chrono::seconds{60};
            c.timeouts.drain = std::chrono::seconds{60};
        },
        2);
    Client silent(proxy.port(), std::chrono::seconds{10});
    Client late(proxy.port());  // connected before the drain, its request sent after the listeners closed
    wait_until([&] { return proxy.server().connections_accepted(0) + proxy.server().connections_accepted(1) == 2; },
               "both connections are accepted");
    proxy.server().retire();  // returns once every shard is draining with its listener closed

    late.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = late.read_response();
    CHECK(r.status == 200);
    CHECK(r.header("Connection") == "close");
    CHECK(late.wait_closed());
    CHECK(silent.wait_closed());
    proxy.stop();
}
