// The two pool rules that bend health, as pure code with the clock passed in: panic mode (no healthy backend at
// all: use every one) and slow start (a backend that comes back ramps its weight from a tenth to all of it).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "pool/balancer.h"
#include "pool/shard_pool.h"
#include "pool/slow_start.h"

using namespace lb::pool;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const std::vector<Backend>> make_snapshot(std::vector<uint32_t> weights, size_t backups = 0) {
    auto backends = std::make_shared<std::vector<Backend>>();
    for (size_t i = 0; i < weights.size(); ++i) {
        Backend backend{"10.0.2." + std::to_string(i + 1) + ":80", weights[i]};
        backend.backup = i >= weights.size() - backups;
        backends->push_back(backend);
    }
    return backends;
}

ShardPool make_pool(std::string_view algorithm, std::shared_ptr<const std::vector<Backend>> backends,
                    ShardPoolOptions options) {
    BalancerOptions balancer;
    balancer.algorithm = algorithm;
    auto made = make_balancer(balancer, *backends, options.seed);
    return ShardPool(std::move(backends), std::move(made), options);
}

ShardPoolOptions with_panic() {
    ShardPoolOptions options;
    options.panic = true;
    return options;
}

ShardPoolOptions with_slow_start(std::chrono::milliseconds window) {
    ShardPoolOptions options;
    options.slow_start = window;
    return options;
}

std::vector<int> pick_many(ShardPool& pool, int count) {
    std::vector<int> picks(pool.size(), 0);
    for (int i = 0; i < count; ++i) {
        Selection selection = pool.choose({}, std::chrono::nanoseconds(i), "key-" + std::to_string(i));
        REQUIRE(selection.picked());
        ++picks[selection.backend];
    }
    return picks;
}

}  // namespace

TEST_CASE("slow_start_weight ramps linearly from a tenth of the weight over the window", "[pool][slow_start]") {
    CHECK(slow_start_weight(100, 0ms, 10s) == 10);
    CHECK(slow_start_weight(100, 500ms, 10s) == 10);  // the floor: a tenth
    CHECK(slow_start_weight(100, 3s, 10s) == 30);
    CHECK(slow_start_weight(10, 3s, 10s) == 3);
    CHECK(slow_start_weight(100, 9999ms, 10s) == 99);
    CHECK(slow_start_weight(100, 10s, 10s) == 100);
    CHECK(slow_start_weight(100, 1h, 10s) == 100);
    CHECK(slow_start_weight(100, 5s, 0ms) == 100);  // off
    CHECK(slow_start_weight(1, 0ms, 10s) == 1);     // never below 1
    CHECK(slow_start_weight(0, 0ms, 10s) == 1);
    CHECK(slow_start_weight(7, -5ms, 10s) == 1);
    CHECK(slow_start_weight(UINT32_MAX, 1h - 1ms, 1h) < UINT32_MAX);  // no overflow on the way

    // Monotonic over the window.
    uint32_t last = 0;
    for (int ms = 0; ms <= 10'000; ms += 250) {
        uint32_t w = slow_start_weight(1000, std::chrono::milliseconds(ms), 10s);
        CHECK(w >= last);
        last = w;
    }
    CHECK(last == 1000);
}

TEST_CASE("panic mode: with no healthy backend, every backend not draining is used", "[pool][panic]") {
    for (std::string_view algorithm : balancer_names()) {
        SECTION(std::string(algorithm)) {
            ShardPool pool = make_pool(algorithm, make_snapshot({1, 1, 1}), with_panic());
            pool.set_healthy(0, false);
            pool.set_healthy(1, false);
            CHECK_FALSE(pool.panicking());  // one healthy backend left: it takes everything
            CHECK(pick_many(pool, 300) == std::vector<int>{0, 0, 300});

            pool.set_healthy(2, false);
            CHECK(pool.panicking());
            auto picks = pick_many(pool, 3000);
            for (int p : picks) CHECK(p > 0);
            CHECK_FALSE(pool.state(0).healthy);  // the pool still knows what the checks said

            // Draining is not health: a draining backend stays out even in panic.
            pool.set_draining_for_test(1, true);
            CHECK(pick_many(pool, 1000)[1] == 0);

            // One backend back: panic ends, and only it is used.
            pool.set_healthy(0, true);
            CHECK_FALSE(pool.panicking());
            CHECK(pick_many(pool, 300) == std::vector<int>{300, 0, 0});
        }
    }
}

TEST_CASE("without panic mode, no healthy backend means none_healthy", "[pool][panic]") {
    ShardPool pool = make_pool("round_robin", make_snapshot({1, 1}), {});
    pool.set_healthy(0, false);
    pool.set_healthy(1, false);
    CHECK_FALSE(pool.panicking());
    CHECK(pool.choose({}, 0ns).status == SelectStatus::none_healthy);
}

TEST_CASE("panic mode counts backups: a healthy backup means no panic", "[pool][panic][backup]") {
    ShardPool pool = make_pool("round_robin", make_snapshot({1, 1, 1}, 1), with_panic());
    pool.set_healthy(0, false);
    pool.set_healthy(1, false);
    CHECK_FALSE(pool.panicking());
    CHECK(pick_many(pool, 10) == std::vector<int>{0, 0, 10});  // the backup serves
    pool.set_healthy(2, false);
    CHECK(pool.panicking());
    // In panic the tiers still hold: primaries first.
    CHECK(pick_many(pool, 100)[2] == 0);
}

TEST_CASE("a pool with no backends is not in panic", "[pool][panic]") {
    ShardPool pool = make_pool("round_robin", make_snapshot({}), with_panic());
    CHECK_FALSE(pool.panicking());
    CHECK(pool.choose({}, 0ns).status == SelectStatus::none_healthy);
}

TEST_CASE("slow start: a backend that comes back ramps its weight up with the clock", "[pool][slow_start]") {
    ShardPool pool = make_pool("weighted_round_robin", make_snapshot({100, 100}), with_slow_start(10s));
    // Healthy from the start: no ramp.
    CHECK(pool.weight(1) == 100);
    CHECK_FALSE(pool.ramping());

    pool.set_healthy(1, false, 5s);
    CHECK_FALSE(pool.ramping());
    CHECK(pool.weight(1) == 100);
    pool.set_healthy(1, true, 20s);
    CHECK(pool.ramping());
    CHECK(pool.weight(1) == 10);
    CHECK(pool.weight(0) == 100);
    // The algorithms see the ramped weight: about 10 of every 110 picks.
    auto picks = pick_many(pool, 1100);
    CHECK(picks[1] == 100);

    CHECK(pool.advance_slow_start(23s));
    CHECK(pool.weight(1) == 30);
    CHECK(pool.advance_slow_start(25s));
    CHECK(pool.weight(1) == 50);
    CHECK_FALSE(pool.advance_slow_start(30s));  // the window has passed: the ramp ends
    CHECK_FALSE(pool.ramping());
    CHECK(pool.weight(1) == 100);
    CHECK_FALSE(pool.advance_slow_start(40s));
    CHECK(pool.weight(1) == 100);
}

TEST_CASE("slow start: going down mid-ramp and back starts the ramp again", "[pool][slow_start]") {
    ShardPool pool = make_pool("round_robin", make_snapshot({40, 40, 40}), with_slow_start(4s));
    pool.set_healthy(0, false, 0s);
    pool.set_healthy(2, false, 0s);
    pool.set_healthy(0, true, 1s);
    pool.set_healthy(2, true, 2s);
    CHECK(pool.advance_slow_start(3s));
    CHECK(pool.weight(0) == 20);  // 2 s of 4
    CHECK(pool.weight(2) == 10);  // 1 s of 4
    pool.set_healthy(0, false, 3s);
    pool.set_healthy(0, true, 4s);
    CHECK(pool.weight(0) == 4);  // cold again: a tenth
    CHECK(pool.advance_slow_start(5s));
    CHECK(pool.weight(0) == 10);
    CHECK(pool.weight(2) == 30);
    CHECK(pool.advance_slow_start(6s));  // backend 2's ramp ends, backend 0's goes on
    CHECK(pool.weight(2) == 40);
    CHECK(pool.advance_slow_start(7500ms));
    CHECK(pool.weight(0) == 35);
    CHECK_FALSE(pool.advance_slow_start(8s));
    CHECK(pool.weight(0) == 40);
}

TEST_CASE("slow start off: a backend that comes back gets its whole weight at once", "[pool][slow_start]") {
    ShardPool pool = make_pool("weighted_round_robin", make_snapshot({5, 5}), {});
    pool.set_healthy(0, false, 1s);
    pool.set_healthy(0, true, 2s);
    CHECK_FALSE(pool.ramping());
    CHECK(pool.weight(0) == 5);
    CHECK_FALSE(pool.advance_slow_start(3s));
}
