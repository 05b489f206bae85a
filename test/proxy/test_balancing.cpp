// The selection algorithms through the real proxy: exact order with one shard, distribution with several, and
// the pool's rules around them (connection limits with the wait queue, backups).
#include <catch2/catch.hpp>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "test/support/metrics_text.h"
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

TEST_CASE("least_connections favours the backend with fewer requests in flight", "[balancing]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) { c.balancer.algorithm = "least_connections"; });
    // Two requests held in flight: one lands on each backend. Then the first ends; new requests all go to its
    // backend while the other is still busy with the second.
    HeldRequest first(proxy.port());
    wait_until([&] { return proxy.backend(0).connections_accepted() + proxy.backend(1).connections_accepted() == 1; },
               "the first request reached a backend");
    HeldRequest second(proxy.port());
    wait_until([&] { return proxy.backend(0).connections_accepted() + proxy.backend(1).connections_accepted() == 2; },
               "the second request reached a backend");
    CHECK(proxy.backend(0).connections_accepted() == 1);
    Response done = first.finish();
    REQUIRE(done.status == 200);
    std::string free_one = done.header("X-Backend-Id");
    auto counts = tally(proxy.port(), 10);
    CHECK(counts[free_one] == 10);
    CHECK(second.finish().status == 200);
}

TEST_CASE("random_two_choices spreads requests over every backend from every shard", "[balancing]") {
    ProxyFixture proxy(
        3, [](lb::core::Config& c) { c.balancer.algorithm = "random_two_choices"; }, 2);
    auto counts = tally(proxy.port(), 300);
    for (const char* id : {"b1", "b2", "b3"}) {
        INFO(id);
        CHECK(counts[id] > 50);
    }
    // Each shard picks on its own: each that took requests sent them to every backend.
    auto by_shard = responses_by_shard(proxy.server());
    for (size_t shard = 0; shard < by_shard.size(); ++shard) {
        INFO("shard " << shard << ": " << by_shard[shard][0] << " " << by_shard[shard][1] << " " << by_shard[shard][2]);
        // The kernel spreads the 300 connections over both shards' listeners about evenly.
        CHECK(by_shard[shard][0] + by_shard[shard][1] + by_shard[shard][2] >= 30);
        for (uint64_t count : by_shard[shard]) CHECK(count > 0);
    }
}

TEST_CASE("random_two_choices is random, and of two candidates takes the one with fewer in flight", "[balancing]") {
    ProxyFixture proxy(3, [](lb::core::Config& c) { c.balancer.algorithm = "random_two_choices"; });
    // Idle backends: a random order, not a rotation. Round robin would never send two requests in a row to one
    // backend; random picks do so about a third of the time.
    std::string previous;
    int repeats = 0;
    for (int i = 0; i < 60; ++i) {
        std::string id = served_by(proxy.port());
        repeats += id == previous;
        previous = id;
    }
    CHECK(repeats > 0);
    // With one backend busy, the two distinct candidates always include an idle one, which wins: the busy backend
    // gets nothing, as long as it is busy.
    HeldRequest held(proxy.port());
    wait_until(
        [&] { return metric_sum(proxy.server().render_metrics(), "lb_backend_upstream_connections_active") == 1; },
        "the held request is in flight to a backend");
    auto counts = tally(proxy.port(), 30);
    Response held_response = held.finish();
    REQUIRE(held_response.status == 200);
    INFO("held on " << held_response.header("X-Backend-Id"));
    CHECK(counts[held_response.header("X-Backend-Id")] == 0);
}

TEST_CASE("peak_ewma steers traffic away from a backend that slows down", "[balancing]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) {
        c.balancer.algorithm = "peak_ewma";
        c.balancer.peak_ewma.default_latency = 1ms;
        c.balancer.peak_ewma.decay = 60s;  // the slow backend's estimate stays high for the whole test
    });
    // With both fast, the one that measured faster takes most requests. Slow that one down, by far more than any
    // hiccup of a loaded machine: after its first slow answer, its estimate is a second.
    auto before = tally(proxy.port(), 40);
    size_t favourite = before["b1"] >= before["b2"] ? 0 : 1;
    std::string slow = favourite == 0 ? "b1" : "b2", fast = favourite == 0 ? "b2" : "b1";
    REQUIRE(before[slow] >= 20);
    proxy.backend(favourite).set_extra_delay(1000ms);
    auto after = tally(proxy.port(), 60);
    INFO("after " << slow << " slowed down: " << slow << " " << after[slow] << ", " << fast << " " << after[fast]);
    CHECK(after[slow] <= 2);
    CHECK(after[fast] >= 58);
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
    HeldRequest holder(proxy.port());
    wait_until([&] { return proxy.backend(0).connections_accepted() == 1; }, "the held request took the slot");
    // The backend is at its limit: this one waits for the held one to finish instead of being refused.
    Client waiting(proxy.port());
    waiting.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until([&] { return metric_value(proxy.server().render_metrics(), "lb_queue_waits_total") == 1; },
               "the request waits in the queue");
    CHECK(holder.finish().status == 200);
    CHECK(waiting.read_response().status == 200);
    CHECK(metric_value(proxy.server().render_metrics(), "lb_queue_waits_total") == 1);
}

TEST_CASE("max_connections: a request that waits too long gets 503", "[balancing][queue]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.backends[0].max_connections = 1;
        c.queue.timeout = 150ms;  // the slot never comes free while the test holds it: only the timeout ends the wait
    });
    HeldRequest holder(proxy.port());
    wait_until([&] { return proxy.backend(0).connections_accepted() == 1; }, "the held request took the slot");
    CHECK(http_get(proxy.port(), "/").status == 503);
    CHECK(metric_value(proxy.server().render_metrics(), "lb_errors_total{kind=\"queue_timeout\"}") == 1);
    CHECK(holder.finish().status == 200);
}

TEST_CASE("max_connections: with the queue full, a request gets 503 at once", "[balancing][queue]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.backends[0].max_connections = 1;
        c.queue.size = 1;
        c.queue.timeout = 60s;  // the refusal below cannot come from the queue's timeout
    });
    HeldRequest holder(proxy.port());
    wait_until([&] { return proxy.backend(0).connections_accepted() == 1; }, "the held request took the slot");
    Client waiting(proxy.port());
    waiting.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until([&] { return metric_value(proxy.server().render_metrics(), "lb_queue_waits_total") == 1; },
               "one request waits in the queue");
    Response refused = http_get(proxy.port(), "/");
    CHECK(refused.status == 503);
    CHECK(refused.header("Connection") == "close");
    std::string metrics = proxy.server().render_metrics();
    CHECK(metric_value(metrics, "lb_errors_total{kind=\"no_backend\"}") == 1);
    CHECK(metric_value(metrics, "lb_errors_total{kind=\"queue_timeout\"}") == 0);
    // The one in the queue is served once the slot comes free.
    CHECK(holder.finish().status == 200);
    CHECK(waiting.read_response().status == 200);
    CHECK(proxy.backend(0).requests_served() == 2);
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
