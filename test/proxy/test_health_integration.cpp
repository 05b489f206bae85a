// Health through the whole balancer: active checks take a backend out of rotation and bring it back, passive
// ejection reacts to real traffic, slow start and panic mode, and the broadcast reaching every shard.
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// Fast active checks: a backend is down after 2 failed checks and up after 2 good ones, 50 ms apart.
void fast_checks(lb::core::Config& c) {
    c.health.enabled = true;
    c.health.interval = 50ms;
    c.health.timeout = 500ms;
    c.health.rise = 2;
    c.health.fall = 2;
    c.health.passive.consecutive_failures = 0;
}

bool every_shard_sees(lb::core::Server& server, size_t backend, bool up) {
    for (bool view : shard_views_of_backend(server, backend)) {
        if (view != up) return false;
    }
    return true;
}

std::map<std::string, int> tally(uint16_t port, int n) {
    std::map<std::string, int> counts;
    for (int i = 0; i < n; ++i) {
        Response r = http_get(port, "/");
        REQUIRE(r.status == 200);
        ++counts[r.header("X-Backend-Id")];
    }
    return counts;
}

double metric(uint16_t admin_port, const std::string& sample_prefix) {
    std::string text = http_get(admin_port, "/metrics").body;
    size_t at = text.find("\n" + sample_prefix);
    if (at == std::string::npos) return -1;
    size_t end = text.find('\n', at + 1);
    std::string line = text.substr(at + 1, end - at - 1);
    return std::stod(line.substr(line.rfind(' ') + 1));
}

}  // namespace

TEST_CASE("a killed backend leaves rotation after fall failed checks and returns after rise good ones",
          "[health][active]") {
    ProxyFixture proxy(3, fast_checks);
    proxy.backend(1).stop();
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "b2 is down on every shard");
    auto counts = tally(proxy.port(), 12);
    CHECK(counts["b2"] == 0);
    CHECK(counts["b1"] == 6);
    CHECK(counts["b3"] == 6);

    proxy.restart_backend(1);
    wait_until([&] { return every_shard_sees(proxy.server(), 1, true); }, "b2 is back on every shard");
    counts = tally(proxy.port(), 12);
    CHECK(counts["b2"] == 4);
    auto snapshot = proxy.server().health_monitor()->snapshot();
    CHECK(snapshot[1].healthy);
    CHECK(snapshot[1].last_reason == "status 200");
}

TEST_CASE("with retries, a client loop running across a backend's death sees no failed request", "[health][retry]") {
    ProxyFixture proxy(3, [](lb::core::Config& c) {
        fast_checks(c);
        c.retries = 2;
    });
    std::atomic<bool> running{true};
    std::atomic<int> failures{0}, requests{0};
    std::thread client([&] {
        while (running) {
            if (status_of(proxy.port(), "GET /?delay_ms=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") != 200) {
                ++failures;
            }
            ++requests;
        }
    });
    wait_until([&] { return requests > 30; }, "traffic flows");
    proxy.backend(1).stop();
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "b2 is down");
    int at_down = requests;
    wait_until([&] { return requests > at_down + 30; }, "traffic flows after the death");
    running = false;
    client.join();
    CHECK(failures == 0);
}

TEST_CASE("a backend answering 500 on its health path is marked down", "[health][active]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) {
        fast_checks(c);
        c.backends[1].health.path = "/health?status=500";
    });
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "b2 is down");
    CHECK(every_shard_sees(proxy.server(), 0, true));
    CHECK(proxy.server().health_monitor()->snapshot()[1].last_reason == "status 500");
    // The status page shows the state and the last check's result.
    std::string status = http_get(proxy.server().admin_port(), "/status").body;
    CHECK(status.find("\"state\":\"down\",") != std::string::npos);
    CHECK(status.find("\"last_check\":\"status 500\"") != std::string::npos);
    CHECK(tally(proxy.port(), 4)["b1"] == 4);
}

TEST_CASE("a health check against a closed port is counted as connect_error in /metrics", "[health][active][metrics]") {
    uint16_t dead = reserve_closed_port();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        fast_checks(c);
        c.backends.push_back(make_config({dead}).backends[0]);
    });
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "the closed port is down");
    auto checks = [&](uint16_t port, const char* result) {
        return metric(proxy.server().admin_port(), "lb_backend_health_checks_total{backend=\"127.0.0.1:" +
                                                       std::to_string(port) + "\",result=\"" + result + "\"}");
    };
    CHECK(checks(dead, "connect_error") >= 2);  // fall is 2
    CHECK(checks(dead, "bad_status") == 0);
    CHECK(checks(dead, "timeout") == 0);
    CHECK(checks(dead, "success") == 0);
    wait_until([&] { return checks(proxy.backend(0).port(), "success") >= 1; }, "the live backend's check counted");
    CHECK(checks(proxy.backend(0).port(), "connect_error") == 0);
}

TEST_CASE("a backend answering slower than max_response_time is marked down", "[health][active]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) {
        fast_checks(c);
        c.health.max_response_time = 100ms;
    });
    proxy.backend(1).set_extra_delay(250ms);
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "b2 is down");
    CHECK(every_shard_sees(proxy.server(), 0, true));
}

TEST_CASE("passive ejection after consecutive connect failures, then the ejection timer brings it back",
          "[health][passive]") {
    uint16_t dead = reserve_closed_port();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.health.enabled = false;  // no active checks: only real traffic can tell
        c.health.passive.consecutive_failures = 3;
        c.health.passive.base_ejection_time = 300ms;
        c.health.passive.max_ejected_percent = 50;
        c.backends.push_back(make_config({dead}).backends[0]);
        c.retries = 1;
    });
    // Every request still succeeds (a refused connect is retried on b1) while failures accumulate on the dead one.
    for (int i = 0; i < 6 && !every_shard_sees(proxy.server(), 1, false); ++i) {
        CHECK(http_get(proxy.port(), "/").status == 200);
    }
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "the dead backend is ejected");
    double refused = metric(proxy.server().admin_port(), "lb_errors_total{kind=\"connect_refused\"}");
    for (int i = 0; i < 10; ++i) CHECK(http_get(proxy.port(), "/").status == 200);
    // Ejected: no request tried it.
    CHECK(metric(proxy.server().admin_port(), "lb_errors_total{kind=\"connect_refused\"}") == refused);
    CHECK(metric(proxy.server().admin_port(),
                 "lb_backend_passive_ejections_total{backend=\"127.0.0.1:" + std::to_string(dead) + "\"}") == 1);
    wait_until([&] { return every_shard_sees(proxy.server(), 1, true); }, "the ejection ends");
}

TEST_CASE("slow start ramps a returning backend's weight up to its configured weight", "[health][slow_start]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) {
        fast_checks(c);
        c.health.slow_start = 4000ms;  // long enough that 20 requests land early in the ramp even under TSan
        c.balancer.algorithm = "weighted_round_robin";
        c.backends[0].weight = 10;
        c.backends[1].weight = 10;
    });
    std::string weight_b2 = "lb_backend_weight{backend=\"127.0.0.1:" + std::to_string(proxy.backend(1).port()) + "\"}";
    CHECK(metric(proxy.server().admin_port(), weight_b2) == 10);
    proxy.backend(1).stop();
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "b2 is down");
    proxy.restart_backend(1);
    wait_until([&] { return every_shard_sees(proxy.server(), 1, true); }, "b2 is back");
    double ramping = metric(proxy.server().admin_port(), weight_b2);
    CHECK(ramping < 10);
    auto counts = tally(proxy.port(), 20);
    INFO("while ramping: b1 " << counts["b1"] << ", b2 " << counts["b2"]);
    CHECK(counts["b2"] < counts["b1"]);
    wait_until([&] { return metric(proxy.server().admin_port(), weight_b2) == 10; }, "the ramp ends");
}

TEST_CASE("panic mode routes to every backend when none is healthy", "[health][panic]") {
    bool panic = GENERATE(false, true);
    ProxyFixture proxy(2, [&](lb::core::Config& c) {
        fast_checks(c);
        c.health.path = "/health?status=503";
        c.health.panic = panic;
    });
    wait_until([&] { return every_shard_sees(proxy.server(), 0, false) && every_shard_sees(proxy.server(), 1, false); },
               "every backend is down");
    CHECK(http_get(proxy.port(), "/").status == (panic ? 200 : 503));
}

TEST_CASE("a health transition reaches every one of 4 shards within a few milliseconds", "[health][broadcast]") {
    ProxyFixture proxy(2, fast_checks, 4);
    REQUIRE(proxy.server().shard_count() == 4);
    proxy.backend(1).stop();
    wait_until([&] { return proxy.server().last_health_transition_ns_for_test() != 0; }, "the transition is decided");
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "every shard applied it");
    // Each shard stamps the moment it applied the transition, so this is the broadcast's own latency, without
    // this thread's polling.
    const uint64_t decided = proxy.server().last_health_transition_ns_for_test();
    uint64_t last_applied = 0;
    for (size_t shard = 0; shard < 4; ++shard) {
        last_applied = std::max(last_applied, proxy.server().health_applied_ns_for_test(shard));
    }
    REQUIRE(last_applied >= decided);
    double elapsed_ms = static_cast<double>(last_applied - decided) / 1e6;
    WARN("decided-to-applied on the last of 4 shards: " << elapsed_ms << " ms");
    // The issue asks for "a few milliseconds"; a plain build sees about 0.1 ms. The bound is loose because TSan
    // runs this on 2 loaded cores, where a woken shard thread can wait a scheduler tick or two.
    CHECK(elapsed_ms < 50);
}
