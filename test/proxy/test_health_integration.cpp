// Health through the whole balancer: active checks take a backend out of rotation and bring it back, passive
// ejection reacts to real traffic, slow start and panic mode, and the broadcast reaching every shard.
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/raw_backend.h"
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

// One series from a fresh scrape; fails the test when the series is missing, so that an equality cannot pass on a
// metric that is not there.
double metric(uint16_t admin_port, const std::string& series) { return scrape_metric(admin_port, series); }

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
    RefusingPort refusing;
    const uint16_t dead = refusing.port();
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

TEST_CASE("passive ejection after consecutive connect failures: no request tries the backend while it is ejected",
          "[health][passive]") {
    RefusingPort refusing;
    const uint16_t dead = refusing.port();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.health.enabled = false;  // no active checks: only real traffic can tell
        c.health.passive.consecutive_failures = 3;
        c.health.passive.base_ejection_time = 600s;  // longer than the test: the ejection cannot end during it
        c.health.passive.max_ejected_percent = 50;
        c.backends.push_back(make_config({dead}).backends[0]);
        c.retries = 1;
    });
    // Every request still succeeds (a refused connect is retried on b1) while failures accumulate on the dead one.
    for (int i = 0; i < 6 && !every_shard_sees(proxy.server(), 1, false); ++i) {
        CHECK(http_get(proxy.port(), "/").status == 200);
    }
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "the dead backend is ejected");
    const std::string refused = "lb_errors_total{kind=\"connect_refused\"}";
    double refused_before = metric(proxy.server().admin_port(), refused);
    // Three at least; a request or two more may have tried it while the ejection was on its way to the shard.
    CHECK(refused_before >= 3);
    for (int i = 0; i < 10; ++i) CHECK(http_get(proxy.port(), "/").status == 200);
    // Ejected: no request tried it.
    CHECK(metric(proxy.server().admin_port(), refused) == refused_before);
    CHECK(metric(proxy.server().admin_port(), backend_series("lb_backend_passive_ejections_total", dead)) == 1);
    CHECK(metric(proxy.server().admin_port(), backend_series("lb_backend_up", dead)) == 0);
}

TEST_CASE("a passive ejection ends when its time is up", "[health][passive]") {
    RefusingPort refusing;
    const uint16_t dead = refusing.port();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.health.enabled = false;
        c.health.passive.consecutive_failures = 3;
        // Long enough that the test sees the ejection before it ends (it waits for that state), short enough to wait
        // for its end.
        c.health.passive.base_ejection_time = 2000ms;
        c.health.passive.max_ejected_percent = 50;
        c.backends.push_back(make_config({dead}).backends[0]);
        c.retries = 1;
    });
    // No request in between: only the ejection timer can bring it back.
    for (int i = 0; i < 6 && !every_shard_sees(proxy.server(), 1, false); ++i) {
        CHECK(http_get(proxy.port(), "/").status == 200);
    }
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "the dead backend is ejected");
    wait_until([&] { return every_shard_sees(proxy.server(), 1, true); }, "the ejection ends");
    CHECK(metric(proxy.server().admin_port(), backend_series("lb_backend_passive_ejections_total", dead)) == 1);
}

TEST_CASE("passive checks count what live requests through lb meet: resets, timeouts, and 5xx if asked",
          "[health][passive]") {
    // The failing backend is scripted; b1 is a healthy demo backend. A request the failing one spoils on a fresh
    // connection before any response byte is retried on b1 (a GET), so clients mostly see 200 while failures
    // accumulate.
    struct Case {
        std::string name;
        RawBackend::Serve serve;
        bool count_5xx;
    };
    auto answer_500 = [](int fd) {
        while (!RawBackend::read_head(fd).empty()) {
            if (!RawBackend::write_all(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")) return;
        }
    };
    auto reset = [](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        linger abort{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        ::shutdown(fd, SHUT_RDWR);  // with SO_LINGER 0 the close that follows is a reset
    };
    auto never_answer = [](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        char sink[64];
        while (::recv(fd, sink, sizeof sink, 0) > 0) {
        }
    };
    Case c = GENERATE_COPY(Case{"resets", reset, false}, Case{"response timeouts", never_answer, false},
                           Case{"500s, counted", answer_500, true});
    INFO(c.name);
    RawBackend failing(c.serve);
    ProxyFixture proxy(1, [&](lb::core::Config& config) {
        config.health.enabled = false;
        config.health.passive.consecutive_failures = 3;
        config.health.passive.base_ejection_time = 600s;
        config.health.passive.count_5xx = c.count_5xx;
        // For the backend that never answers: it cannot answer in time, whatever the clock; b1 has a second.
        if (c.name == "response timeouts") config.timeouts.upstream_response = 1000ms;
        config.backends.push_back(make_config({failing.port()}).backends[0]);
        config.retries = 1;
    });
    for (int i = 0; i < 20 && !every_shard_sees(proxy.server(), 1, false); ++i) http_get(proxy.port(), "/");
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "the failing backend is ejected");
    CHECK(metric(proxy.server().admin_port(), backend_series("lb_backend_passive_ejections_total", failing.port())) ==
          1);
    // Ejected: the requests that follow all go to b1.
    for (int i = 0; i < 6; ++i) CHECK(http_get(proxy.port(), "/").header("X-Backend-Id") == "b1");
}

TEST_CASE("a 5xx is not a passive failure unless count_5xx is set", "[health][passive]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.health.enabled = false;
        c.health.passive.consecutive_failures = 3;
        c.health.passive.base_ejection_time = 600s;
    });
    for (int i = 0; i < 10; ++i) CHECK(http_get(proxy.port(), "/?status=500").status == 500);
    CHECK(every_shard_sees(proxy.server(), 0, true));
    CHECK(metric(proxy.server().admin_port(),
                 backend_series("lb_backend_passive_ejections_total", proxy.backend(0).port())) == 0);
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

TEST_CASE("a health transition reaches every one of 4 shards", "[health][broadcast]") {
    ProxyFixture proxy(2, fast_checks, 4);
    REQUIRE(proxy.server().shard_count() == 4);
    proxy.backend(1).stop();
    wait_until([&] { return proxy.server().last_health_transition_ns_for_test() != 0; }, "the transition is decided");
    wait_until([&] { return every_shard_sees(proxy.server(), 1, false); }, "every shard applied it");
    // Each shard stamps the moment it applied the transition, so this is the broadcast's own latency, without
    // this thread's polling. It is reported, not bounded: a loaded machine may delay a woken thread by a
    // scheduler tick or more, which says nothing about lb.
    const uint64_t decided = proxy.server().last_health_transition_ns_for_test();
    uint64_t last_applied = 0;
    for (size_t shard = 0; shard < 4; ++shard) {
        uint64_t applied = proxy.server().health_applied_ns_for_test(shard);
        CHECK(applied >= decided);
        last_applied = std::max(last_applied, applied);
    }
    WARN("decided-to-applied on the last of 4 shards: " << static_cast<double>(last_applied - decided) / 1e6 << " ms");
    // Applied, and acted on: no request reaches the stopped backend, on any shard.
    for (int i = 0; i < 40; ++i) CHECK(http_get(proxy.port(), "/").header("X-Backend-Id") == "b1");
}
