// The admin API's rules: what drain, disable and a weight override do to eligibility and to the weights the
// algorithms see, and the state an operator is shown for each combination of admin state and health.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "pool/admin_state.h"
#include "pool/balancer.h"
#include "pool/shard_pool.h"

using namespace lb::pool;
using namespace std::chrono_literals;

namespace {

ShardPool make_pool(std::string_view algorithm, size_t count, ShardPoolOptions options = {}) {
    auto backends = std::make_shared<std::vector<Backend>>();
    for (size_t i = 0; i < count; ++i) backends->push_back({"10.0.2." + std::to_string(i + 1) + ":80", 1});
    BalancerOptions balancer;
    balancer.algorithm = algorithm;
    auto made = make_balancer(balancer, *backends, options.seed);
    return ShardPool(std::move(backends), std::move(made), options);
}

std::map<BackendId, int> picks(ShardPool& pool, int n) {
    std::map<BackendId, int> counts;
    for (int i = 0; i < n; ++i) {
        Selection s = pool.choose({}, 0ns);
        REQUIRE(s.picked());
        ++counts[s.backend];
    }
    return counts;
}

}  // namespace

TEST_CASE("the admin API's verbs and weights are parsed strictly", "[pool][admin]") {
    CHECK(admin_action("drain") == AdminState::draining);
    CHECK(admin_action("disable") == AdminState::disabled);
    CHECK(admin_action("enable") == AdminState::enabled);
    CHECK_FALSE(admin_action("Drain"));
    CHECK_FALSE(admin_action(""));
    CHECK(parse_weight("1") == 1u);
    CHECK(parse_weight("1000") == 1000u);
    for (std::string_view bad : {"0", "1001", "-1", "+5", "5x", "", " 5", "99999999999", "0x10"}) {
        INFO(bad);
        CHECK_FALSE(parse_weight(bad));
    }
    CHECK(admin_state_name(AdminState::draining) == "draining");
}

TEST_CASE("drained and disabled backends take no new requests, even in panic mode", "[pool][admin]") {
    for (AdminState out : {AdminState::draining, AdminState::disabled}) {
        INFO(admin_state_name(out));
        ShardPool pool = make_pool("round_robin", 3, {.seed = 1, .panic = true});
        pool.on_dispatch(1);
        pool.set_admin(1, {out, std::nullopt});
        auto counts = picks(pool, 30);
        CHECK(counts.count(1) == 0);
        CHECK(counts[0] == 15);
        // Its request in flight finishes as usual.
        CHECK(pool.state(1).in_flight == 1);
        pool.on_finish(1, Outcome::success);
        CHECK(pool.state(1).in_flight == 0);
        // Panic mode (nothing healthy) still leaves it out.
        for (BackendId id = 0; id < 3; ++id) pool.set_healthy(id, false);
        REQUIRE(pool.panicking());
        CHECK(picks(pool, 30).count(1) == 0);
        // Enabled again: back, subject to health (panic mode here lets it in).
        pool.set_admin(1, {});
        CHECK(picks(pool, 30)[1] == 10);
    }
}

TEST_CASE("enable brings a backend back only if health allows", "[pool][admin]") {
    ShardPool pool = make_pool("round_robin", 2);
    pool.set_admin(1, {AdminState::disabled, std::nullopt});
    pool.set_healthy(1, false);
    pool.set_admin(1, {});
    CHECK(picks(pool, 10).count(1) == 0);
    pool.set_healthy(1, true);
    CHECK(picks(pool, 10)[1] == 5);
}

TEST_CASE("a weight override changes the split and clears back to the configured weight", "[pool][admin]") {
    ShardPool pool = make_pool("weighted_round_robin", 2);
    pool.set_admin(0, {AdminState::enabled, 3u});
    CHECK(pool.weight(0) == 3);
    auto counts = picks(pool, 40);
    CHECK(counts[0] == 30);
    CHECK(counts[1] == 10);
    pool.set_admin(0, {});
    CHECK(pool.weight(0) == 1);
    CHECK(picks(pool, 40)[0] == 20);
}

TEST_CASE("slow start ramps up to the overridden weight", "[pool][admin]") {
    ShardPool pool = make_pool("weighted_round_robin", 2, {.seed = 1, .slow_start = 1000ms});
    pool.set_admin(0, {AdminState::enabled, 100u});
    pool.set_healthy(0, false);
    pool.set_healthy(0, true, 0ns);
    CHECK(pool.weight(0) < 100);
    pool.advance_slow_start(2s);
    CHECK(pool.weight(0) == 100);
}

TEST_CASE("an operator is shown the admin state first, then ejection, then health", "[pool][admin]") {
    HealthView up{true, false, "status 200"};
    HealthView down{false, false, "connection refused"};
    HealthView ejected{false, true, "5 consecutive failures"};
    CHECK(reported_state({AdminState::disabled, std::nullopt}, up).state == "disabled");
    CHECK(reported_state({AdminState::draining, std::nullopt}, down).state == "draining");
    CHECK(reported_state({}, ejected).state == "ejected");
    CHECK(reported_state({}, ejected).why == "5 consecutive failures");
    CHECK(reported_state({}, down).state == "down");
    CHECK(reported_state({}, down).why == "connection refused");
    CHECK(reported_state({}, up).state == "up");
    CHECK_FALSE(reported_state({}, HealthView{}).why.empty());
    CHECK(base_weight(5, {}) == 5);
    CHECK(base_weight(5, {AdminState::enabled, 7u}) == 7);
    CHECK(base_weight(0, {}) == 1);
}
