// The ShardPool around the algorithms: what is never picked (unhealthy, draining, full, tried), when backups
// serve, what the caller is told when nothing can be picked, and per-shard connection limits. Every rule is
// checked with every algorithm. Panic mode and slow start: test_pool_health_rules.cpp.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "pool/algorithms/peak_ewma.h"
#include "pool/balancer.h"
#include "pool/shard_pool.h"

using namespace lb::pool;
using namespace std::chrono_literals;

namespace {

using Snapshot = std::shared_ptr<const std::vector<Backend>>;

Snapshot make_snapshot(size_t count, uint32_t max_connections = 0, size_t backups = 0) {
    auto backends = std::make_shared<std::vector<Backend>>();
    for (size_t i = 0; i < count; ++i) {
        Backend backend{"10.0.1." + std::to_string(i + 1) + ":80", 1};
        backend.max_connections = max_connections;
        backend.backup = i >= count - backups;
        backends->push_back(backend);
    }
    return backends;
}

BalancerOptions options_for(std::string_view algorithm) {
    BalancerOptions options;
    options.algorithm = algorithm;
    return options;
}

ShardPool make_pool(std::string_view algorithm, Snapshot backends, uint64_t seed = 1, unsigned shard_index = 0,
                    unsigned shard_count = 1) {
    auto balancer = make_balancer(options_for(algorithm), *backends, seed);
    return ShardPool(std::move(backends), std::move(balancer), {seed, shard_index, shard_count});
}

BackendSet set_of(std::initializer_list<BackendId> ids) {
    BackendSet set;
    for (BackendId id : ids) set.insert(id);
    return set;
}

// One pick with no clock, no key and nothing tried; the test fails if nothing could be picked.
BackendId pick(ShardPool& pool) {
    Selection selection = pool.choose({}, 0ns);
    REQUIRE(selection.picked());
    return selection.backend;
}

// Picks `count` times with distinct keys and a moving clock; returns how often each backend was picked.
// `hold`: dispatch every pick and never finish it (in flight only grows).
std::vector<int> pick_many(ShardPool& pool, int count, const BackendSet& tried = {}, bool hold = false) {
    std::vector<int> picks(pool.size(), 0);
    for (int i = 0; i < count; ++i) {
        auto selection = pool.choose(tried, std::chrono::nanoseconds(i) * 1000, "key-" + std::to_string(i));
        REQUIRE(selection.picked());
        ++picks[selection.backend];
        pool.on_dispatch(selection.backend);
        if (!hold) pool.on_finish(selection.backend, Result{Outcome::success, 1ms, std::chrono::nanoseconds(i) * 1000});
    }
    return picks;
}

}  // namespace

TEST_CASE("unhealthy and draining backends are never picked", "[pool][eligibility]") {
    for (std::string_view algorithm : balancer_names()) {
        SECTION(std::string(algorithm)) {
            ShardPool pool = make_pool(algorithm, make_snapshot(6));
            pool.set_healthy(1, false);
            pool.set_draining_for_test(4, true);
            auto picks = pick_many(pool, 3000);
            CHECK(picks[1] == 0);
            CHECK(picks[4] == 0);
            for (BackendId id : {0, 2, 3, 5}) CHECK(picks[id] > 0);
            // Back in service: picked again.
            pool.set_healthy(1, true);
            pool.set_draining_for_test(4, false);
            picks = pick_many(pool, 3000);
            CHECK(picks[1] > 0);
            CHECK(picks[4] > 0);
        }
    }
}

TEST_CASE("a draining backend's requests in flight finish normally", "[pool][eligibility]") {
    ShardPool pool = make_pool("round_robin", make_snapshot(2));
    pool.on_dispatch(0);
    pool.on_dispatch(0);
    pool.set_draining_for_test(0, true);
    CHECK(pool.state(0).in_flight == 2);
    CHECK_FALSE(pool.eligible(0));
    pool.on_finish(0, Outcome::success);
    pool.on_finish(0, Outcome::reset);
    CHECK(pool.state(0).in_flight == 0);
    // A duplicate finish cannot wrap the count.
    pool.on_finish(0, Outcome::success);
    CHECK(pool.state(0).in_flight == 0);
}

TEST_CASE("a full backend is not picked until a request finishes", "[pool][eligibility]") {
    for (std::string_view algorithm : balancer_names()) {
        SECTION(std::string(algorithm)) {
            auto backends = std::make_shared<std::vector<Backend>>(*make_snapshot(4));
            (*backends)[2].max_connections = 3;
            ShardPool pool = make_pool(algorithm, backends);
            // Hold every request: backend 2 must stop at 3 while the others keep taking more.
            auto picks = pick_many(pool, 400, {}, true);
            CHECK(picks[2] == 3);
            CHECK(pool.state(2).in_flight == 3);
            CHECK(pool.full(2));
            pool.on_finish(2, Outcome::success);
            CHECK_FALSE(pool.full(2));
        }
    }
}

TEST_CASE("many full backends: the pool still finds the free ones", "[pool][eligibility]") {
    // More full backends than the pool's bounded proposals: exercises the exclude-all-full pass.
    for (std::string_view algorithm : balancer_names()) {
        SECTION(std::string(algorithm)) {
            ShardPool pool = make_pool(algorithm, make_snapshot(64, 1));
            for (BackendId id = 0; id < 60; ++id) pool.on_dispatch(id);
            for (int i = 0; i < 4; ++i) {
                auto selection = pool.choose({}, 0ns, "key-" + std::to_string(i));
                REQUIRE(selection.picked());
                CHECK(selection.backend >= 60);
                pool.on_dispatch(selection.backend);
            }
            CHECK(pool.choose({}, 0ns, "one-more").status == SelectStatus::all_full);
        }
    }
}

TEST_CASE("tried backends are not picked again for the same request", "[pool][eligibility]") {
    for (std::string_view algorithm : balancer_names()) {
        SECTION(std::string(algorithm)) {
            ShardPool pool = make_pool(algorithm, make_snapshot(4));
            auto picks = pick_many(pool, 1000, set_of({0, 2}));
            CHECK(picks[0] == 0);
            CHECK(picks[2] == 0);
            // A retry walks through the rest, then is told everything was tried.
            BackendSet tried;
            for (int attempt = 0; attempt < 4; ++attempt) {
                auto selection = pool.choose(tried, 0ns, "same-key");
                REQUIRE(selection.picked());
                CHECK_FALSE(tried.contains(selection.backend));
                tried.insert(selection.backend);
            }
            CHECK(pool.choose(tried, 0ns, "same-key").status == SelectStatus::all_tried);
        }
    }
}

TEST_CASE("backups serve only while no primary is eligible", "[pool][eligibility][backup]") {
    for (std::string_view algorithm : balancer_names()) {
        SECTION(std::string(algorithm)) {
            // Backends 0-2 primary, 3-4 backup.
            ShardPool pool = make_pool(algorithm, make_snapshot(5, 0, 2));
            auto picks = pick_many(pool, 2000);
            CHECK(picks[3] + picks[4] == 0);

            // One primary left: it takes everything.
            pool.set_healthy(0, false);
            pool.set_draining_for_test(1, true);
            picks = pick_many(pool, 500);
            CHECK(picks[2] == 500);

            // No primary: both backups share the traffic.
            pool.set_healthy(2, false);
            picks = pick_many(pool, 2000);
            CHECK(picks[0] + picks[1] + picks[2] == 0);
            CHECK(picks[3] > 0);
            CHECK(picks[4] > 0);

            // A primary back: backups stop at once.
            pool.set_healthy(0, true);
            picks = pick_many(pool, 500);
            CHECK(picks[0] == 500);
        }
    }
}

TEST_CASE("backups take the request when every primary is full or tried", "[pool][eligibility][backup]") {
    auto backends = std::make_shared<std::vector<Backend>>(*make_snapshot(3, 0, 1));
    (*backends)[0].max_connections = 1;
    (*backends)[1].max_connections = 1;
    ShardPool pool = make_pool("round_robin", backends);
    // Tried primaries: the retry goes to the backup rather than failing.
    auto retry = pool.choose(set_of({0, 1}), 0ns);
    REQUIRE(retry.picked());
    CHECK(retry.backend == 2);
    // Full primaries: likewise.
    pool.on_dispatch(0);
    pool.on_dispatch(1);
    auto overflow = pool.choose({}, 0ns);
    REQUIRE(overflow.picked());
    CHECK(overflow.backend == 2);
}

TEST_CASE("when nothing can be picked the pool says why", "[pool][eligibility][status]") {
    SECTION("every backend unhealthy or draining: none_healthy, not a guess at a dead one") {
        ShardPool pool = make_pool("round_robin", make_snapshot(3));
        pool.set_healthy(0, false);
        pool.set_healthy(1, false);
        pool.set_draining_for_test(2, true);
        CHECK(pool.choose({}, 0ns).status == SelectStatus::none_healthy);
    }
    SECTION("every usable backend at its limit: all_full, so the caller may queue") {
        ShardPool pool = make_pool("least_connections", make_snapshot(3, 1));
        pool.set_healthy(2, false);
        pool.on_dispatch(0);
        pool.on_dispatch(1);
        CHECK(pool.choose({}, 0ns).status == SelectStatus::all_full);
    }
    SECTION("some tried, the untried ones full: still all_full") {
        ShardPool pool = make_pool("random_two_choices", make_snapshot(3, 1));
        pool.on_dispatch(2);
        CHECK(pool.choose(set_of({0, 1}), 0ns).status == SelectStatus::all_full);
    }
    SECTION("every usable backend tried: all_tried") {
        ShardPool pool = make_pool("peak_ewma", make_snapshot(3));
        pool.set_healthy(2, false);
        CHECK(pool.choose(set_of({0, 1}), 0ns).status == SelectStatus::all_tried);
    }
    SECTION("no backends at all: none_healthy") {
        ShardPool pool = make_pool("consistent_hash", make_snapshot(0));
        CHECK(pool.choose({}, 0ns).status == SelectStatus::none_healthy);
    }
}

TEST_CASE("max_connections is shared out between shards", "[pool][eligibility][limits]") {
    auto backends = std::make_shared<std::vector<Backend>>(*make_snapshot(2));
    (*backends)[0].max_connections = 10;
    (*backends)[1].max_connections = 2;
    uint32_t total = 0;
    std::vector<uint32_t> shares;
    for (unsigned shard = 0; shard < 4; ++shard) {
        ShardPool pool = make_pool("round_robin", backends, shard, shard, 4);
        shares.push_back(pool.connection_limit(0));
        total += pool.connection_limit(0);
        // Fewer connections than shards: one each, so every shard can still reach it.
        CHECK(pool.connection_limit(1) == 1);
    }
    CHECK(shares == std::vector<uint32_t>{3, 3, 2, 2});
    CHECK(total == 10);
    CHECK(make_pool("round_robin", make_snapshot(1)).connection_limit(0) == 0);  // unlimited
}

TEST_CASE("round robin through the pool keeps its exact order, per shard seed", "[pool][eligibility]") {
    auto letters = [](ShardPool& pool, int count) {
        std::string out;
        for (int i = 0; i < count; ++i) out += static_cast<char>('a' + pick(pool));
        return out;
    };
    ShardPool shard0 = make_pool("round_robin", make_snapshot(3), 0);
    ShardPool shard1 = make_pool("round_robin", make_snapshot(3), 1);
    CHECK(letters(shard0, 6) == "abcabc");
    CHECK(letters(shard1, 6) == "bcabca");
    shard0.set_healthy(1, false);
    CHECK(letters(shard0, 4) == "acac");
    ShardPool wrr = make_pool(
        "weighted_round_robin",
        std::make_shared<std::vector<Backend>>(std::vector<Backend>{{"a:80", 5}, {"b:80", 1}, {"c:80", 1}}), 0);
    CHECK(letters(wrr, 7) == "aabacaa");
}

TEST_CASE("shards seeded differently draw differently", "[pool][eligibility]") {
    ShardPool shard0 = make_pool("random_two_choices", make_snapshot(16), 0);
    ShardPool shard1 = make_pool("random_two_choices", make_snapshot(16), 1);
    std::vector<BackendId> first, second;
    for (int i = 0; i < 20; ++i) {
        first.push_back(pick(shard0));
        second.push_back(pick(shard1));
    }
    CHECK(first != second);
    // The same seed gives the same sequence: a test can pin it.
    ShardPool again = make_pool("random_two_choices", make_snapshot(16), 0);
    std::vector<BackendId> replay;
    for (int i = 0; i < 20; ++i) replay.push_back(pick(again));
    CHECK(replay == first);
}

TEST_CASE("peak_ewma learns latencies through on_finish", "[pool][eligibility][peak_ewma]") {
    ShardPool pool = make_pool("peak_ewma", make_snapshot(2));
    std::chrono::nanoseconds now = 1s;
    pool.choose({}, now);
    for (int i = 0; i < 60'000; ++i) {
        now += 1ms;
        pool.on_dispatch(0);
        pool.on_finish(0, Result{Outcome::success, 1ms, now});
        pool.on_dispatch(1);
        pool.on_finish(1, Result{Outcome::success, 40ms, now});
    }
    int fast = 0;
    for (int i = 0; i < 100; ++i) fast += pool.choose({}, now).backend == 0;
    CHECK(fast == 100);
    const auto& ewma = dynamic_cast<const PeakEwma&>(pool.balancer());
    CHECK(ewma.latency_estimate(1, now) == Approx(40e6).epsilon(0.05));
}

TEST_CASE("consistent_hash through the pool: only an unhealthy backend's keys move", "[pool][eligibility]") {
    ShardPool pool = make_pool("consistent_hash", make_snapshot(10));
    auto owners = [&] {
        std::vector<BackendId> out;
        for (int key = 0; key < 5000; ++key) out.push_back(pool.choose({}, 0ns, "u" + std::to_string(key)).backend);
        return out;
    };
    auto before = owners();
    pool.set_healthy(7, false);
    auto during = owners();
    pool.set_healthy(7, true);
    auto after = owners();
    int moved = 0;
    for (size_t key = 0; key < before.size(); ++key) {
        if (before[key] == 7) {
            ++moved;
            CHECK(during[key] != 7);
        } else {
            CHECK(during[key] == before[key]);
        }
    }
    CHECK(moved > 350);      // about 500
    CHECK(after == before);  // and they come back
}

TEST_CASE("a pool needs a balancer", "[pool][eligibility]") {
    auto backends = make_snapshot(2);
    CHECK_THROWS_AS(ShardPool(backends, make_balancer(options_for("no_such"), *backends, 0)), std::invalid_argument);
}
