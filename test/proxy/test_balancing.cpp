// The selection algorithms through the real proxy: exact order with one shard, distribution with several, and
// the pool's rules around them (connection limits with the wait queue, backups).
#include <catch2/catch.hpp>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::string served_by(uint16_t port, const std::string& target = "/", const std::string& headers = "") {
    Response r = http_get(port, target, headers);
    REQUIRE(r.status == 200);
    return r.header("X-Backend-Id");
}

std::map<std::string, int> tally(uint16_t port, int n, const std::string& target = "/") {
    std::map<std::string, int> counts;
    for (int i = 0; i < n; ++i) ++counts[served_by(port, target)];
    return counts;
}

}  // namespace

TEST_CASE("round_robin through the proxy", "[balancing]") {
    ProxyFixture proxy(3, [](lb::core::Config& c) { c.balancer.algorithm = "round_robin"; });
    std::string order;
    for (int i = 0; i < 6; ++i) order += served_by(proxy.port());
    CHECK(order == "b1b2b3b1b2b3");
}

TEST_CASE("weighted_round_robin is smooth: weights 5,1,1 give a a b a c a a", "[balancing]") {
    ProxyFixture proxy(3, [](lb::core::Config& c) {
        c.balancer.algorithm = "weighted_round_robin";
        c.backends[0].weight = 5;
    });
    std::string order;
    for (int i = 0; i < 7; ++i) order += served_by(proxy.port()).substr(1);
    CHECK(order == "1121311");
}

TEST_CASE("least_connections favours the backend with fewer long requests", "[balancing]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) { c.balancer.algorithm = "least_connections"; });
    // Two long requests: one lands on each backend. Then b1's finishes early; new requests go to b1 while b2
    // is still busy with its long one.
    Client long1(proxy.port()), long2(proxy.port());
    long1.send("GET /?delay_ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until([&] { return proxy.backend(0).connections_accepted() + proxy.backend(1).connections_accepted() == 1; },
               "the first long request reached a backend");
    long2.send("GET /?delay_ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until([&] { return proxy.backend(0).connections_accepted() + proxy.backend(1).connections_accepted() == 2; },
               "the second long request reached a backend");
    std::string short_one = long1.read_response().header("X-Backend-Id");
    auto counts = tally(proxy.port(), 10);
    CHECK(counts[short_one] == 10);
}

TEST_CASE("random_two_choices spreads requests over every backend and every shard", "[balancing]") {
    ProxyFixture proxy(
        3, [](lb::core::Config& c) { c.balancer.algorithm = "random_two_choices"; }, 2);
    auto counts = tally(proxy.port(), 300);
    for (const char* id : {"b1", "b2", "b3"}) {
        INFO(id);
        CHECK(counts[id] > 50);
    }
}

TEST_CASE("peak_ewma steers traffic away from a backend that slows down", "[balancing]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) {
        c.balancer.algorithm = "peak_ewma";
        c.balancer.peak_ewma.default_latency = 1ms;
    });
    // With both fast, the one that measured faster takes most requests. Slow that one down.
    auto before = tally(proxy.port(), 40);
    size_t favourite = before["b1"] >= before["b2"] ? 0 : 1;
    std::string slow = favourite == 0 ? "b1" : "b2", fast = favourite == 0 ? "b2" : "b1";
    REQUIRE(before[slow] >= 20);
    proxy.backend(favourite).set_extra_delay(30ms);
    auto after = tally(proxy.port(), 60);
    INFO("after " << slow << " slowed down: " << slow << " " << after[slow] << ", " << fast << " " << after[fast]);
    CHECK(after[slow] < 10);
    CHECK(after[fast] > 50);
}

TEST_CASE("consistent_hash keeps a key on one backend, and different keys spread", "[balancing]") {
    ProxyFixture proxy(
        3,
        [](lb::core::Config& c) {
            c.balancer.algorithm = "consistent_hash";
            c.balancer.consistent_hash.key_source = lb::pool::HashKeySource::header;
            c.balancer.consistent_hash.key_name = "X-User";
        },
        2);
    std::set<std::string> used;
    for (int user = 0; user < 30; ++user) {
        std::string header = "X-User: user-" + std::to_string(user) + "\r\n";
        std::string first = served_by(proxy.port(), "/", header);
        for (int again = 0; again < 3; ++again) CHECK(served_by(proxy.port(), "/", header) == first);
        used.insert(first);
    }
    CHECK(used.size() == 3);
}

TEST_CASE("max_connections: a request waits in the queue for a slot, then is served", "[balancing][queue]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.backends[0].max_connections = 1; });
    auto slow = std::async(std::launch::async, [&] {
        return status_of(proxy.port(), "GET /?delay_ms=300 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    });
    wait_until([&] { return proxy.backend(0).connections_accepted() == 1; }, "the slow request reached the backend");
    // The backend is at its limit: this one waits for the slow one to finish instead of being refused.
    CHECK(http_get(proxy.port(), "/").status == 200);
    CHECK(slow.get() == 200);
    Response metrics = http_get(proxy.server().admin_port(), "/metrics");
    CHECK(metrics.body.find("lb_queue_waits_total 1") != std::string::npos);
}

TEST_CASE("max_connections: a request that waits too long gets 503", "[balancing][queue]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.backends[0].max_connections = 1;
        c.queue.timeout = 150ms;
    });
    auto slow = std::async(std::launch::async, [&] {
        return status_of(proxy.port(), "GET /?delay_ms=1500 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    });
    wait_until([&] { return proxy.backend(0).connections_accepted() == 1; }, "the slow request reached the backend");
    CHECK(http_get(proxy.port(), "/").status == 503);
    CHECK(slow.get() == 200);
}

TEST_CASE("a backup backend serves only while no primary is eligible", "[balancing][backup]") {
    ProxyFixture proxy(3, [](lb::core::Config& c) { c.backends[2].backup = true; });
    auto counts = tally(proxy.port(), 10);
    CHECK(counts["b3"] == 0);
    set_backend_health(proxy.server(), 0, false);
    set_backend_health(proxy.server(), 1, false);
    counts = tally(proxy.port(), 5);
    CHECK(counts["b3"] == 5);
    set_backend_health(proxy.server(), 1, true);
    CHECK(served_by(proxy.port()) == "b2");
}
