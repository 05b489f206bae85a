// The health decisions without I/O: check verdicts, rise/fall, passive ejection (durations, decay, share),
// the combined state and why it flipped, jitter, a reload's carry-over, and how each check result is counted.
// Time is passed in, so every expectation is exact.
#include <catch2/catch.hpp>

#include "health/carry_over.h"
#include "health/health_decision.h"

using namespace lb::health;
using namespace std::chrono_literals;

namespace {

const std::vector<StatusRange> kDefaultExpected{StatusRange{200, 399}};

PassiveHealthConfig passive(uint32_t failures, Millis base, Millis max, uint32_t percent = 50) {
    PassiveHealthConfig p;
    p.consecutive_failures = failures;
    p.base_ejection_time = base;
    p.max_ejection_time = max;
    p.max_ejected_percent = percent;
    return p;
}

}  // namespace

TEST_CASE("a response passes on an expected status within max_response_time", "[health]") {
    CheckOutcome ok = judge_response(200, 5ms, kDefaultExpected, 2000ms);
    CHECK(ok.result == CheckResult::ok);
    CHECK(ok.reason == "status 200");
    CHECK(judge_response(399, 5ms, kDefaultExpected, 2000ms).passed());
    CHECK(judge_response(204, 2000ms, kDefaultExpected, 2000ms).passed());  // at the limit still passes

    CheckOutcome bad = judge_response(500, 5ms, kDefaultExpected, 2000ms);
    CHECK(bad.result == CheckResult::bad_status);
    CHECK(bad.reason == "status 500");
    CHECK(judge_response(199, 5ms, kDefaultExpected, 2000ms).reason == "status 199");
    CHECK(judge_response(400, 5ms, kDefaultExpected, 2000ms).reason == "status 400");

    CheckOutcome slow = judge_response(200, 312ms, kDefaultExpected, 200ms);
    CHECK(slow.result == CheckResult::too_slow);
    CHECK(slow.reason == "response took 312 ms, over max_response_time 200 ms");
    // A bad status is the more useful reason when both apply.
    CHECK(judge_response(503, 312ms, kDefaultExpected, 200ms).reason == "status 503");

    std::vector<StatusRange> custom{{200, 200}, {204, 204}, {300, 302}};
    CHECK(judge_response(200, 1ms, custom, 1s).passed());
    CHECK(judge_response(204, 1ms, custom, 1s).passed());
    CHECK(judge_response(301, 1ms, custom, 1s).passed());
    CHECK_FALSE(judge_response(201, 1ms, custom, 1s).passed());
    CHECK_FALSE(judge_response(303, 1ms, custom, 1s).passed());

    CHECK(timed_out(2000ms).result == CheckResult::timeout);
    CHECK(timed_out(2000ms).reason == "timeout after 2000 ms");
    CHECK(failed(CheckResult::connect_error, "connection refused").result == CheckResult::connect_error);
    CHECK(failed(CheckResult::connect_error, "connection refused").reason == "connection refused");
    CHECK_FALSE(failed(CheckResult::bad_response, "invalid response: HPE_INVALID_CONSTANT").passed());
}

TEST_CASE("rise and fall flip the state only on their thresholds", "[health]") {
    RiseFall rf(2, 3, InitialState::healthy);
    CHECK(rf.healthy());
    CHECK_FALSE(rf.record(false));
    CHECK_FALSE(rf.record(false));
    CHECK(rf.streak() == 2);
    CHECK_FALSE(rf.record(true));  // a pass resets the run of failures
    CHECK(rf.streak() == 0);
    CHECK_FALSE(rf.record(false));
    CHECK_FALSE(rf.record(false));
    CHECK(rf.record(false));  // third in a row: down
    CHECK_FALSE(rf.healthy());
    CHECK(rf.last_flip_after() == 3);
    CHECK_FALSE(rf.record(false));  // agreeing results report nothing
    CHECK_FALSE(rf.record(true));
    CHECK_FALSE(rf.record(false));  // resets the run of passes
    CHECK_FALSE(rf.record(true));
    CHECK(rf.record(true));  // rise 2: up
    CHECK(rf.healthy());
    CHECK(rf.last_flip_after() == 2);
    CHECK_FALSE(rf.record(true));
}

TEST_CASE("a backend that starts unhealthy comes up on a first passing check, else after rise", "[health]") {
    RiseFall first_pass(3, 3, InitialState::unhealthy);
    CHECK_FALSE(first_pass.healthy());
    CHECK(first_pass.record(true));
    CHECK(first_pass.healthy());
    CHECK(first_pass.last_flip_after() == 1);

    RiseFall failed_first(3, 3, InitialState::unhealthy);
    CHECK_FALSE(failed_first.record(false));
    CHECK_FALSE(failed_first.record(true));
    CHECK_FALSE(failed_first.record(true));
    CHECK(failed_first.record(true));

    // The first-check rule is about leaving the unhealthy start only: a healthy start needs `fall` failures.
    RiseFall healthy_start(3, 2, InitialState::healthy);
    CHECK_FALSE(healthy_start.record(false));
    CHECK(healthy_start.record(false));

    // rise/fall of 1: every disagreeing result flips.
    RiseFall twitchy(1, 1, InitialState::healthy);
    CHECK(twitchy.record(false));
    CHECK(twitchy.record(true));
}

TEST_CASE("consecutive passive failures eject, a success resets the run", "[health]") {
    Ejector e(passive(3, 30s, 300s), 2);
    CHECK_FALSE(e.record(0, PassiveOutcome::connect_failure, 0ms));
    CHECK_FALSE(e.record(0, PassiveOutcome::timeout, 0ms));
    CHECK_FALSE(e.record(0, PassiveOutcome::success, 0ms));
    CHECK(e.failures(0) == 0);
    CHECK_FALSE(e.record(0, PassiveOutcome::reset, 0ms));
    CHECK_FALSE(e.record(0, PassiveOutcome::connect_failure, 0ms));
    auto ejection = e.record(0, PassiveOutcome::connect_failure, 1000ms);
    REQUIRE(ejection);
    CHECK(ejection->duration == 30s);
    CHECK(ejection->failures == 3);
    CHECK(ejection->count == 1);
    CHECK(e.ejected(0));
    CHECK(e.ejected_count() == 1);
    // While ejected nothing is counted.
    CHECK_FALSE(e.record(0, PassiveOutcome::connect_failure, 2000ms));
    CHECK(e.failures(0) == 0);
    e.end(0, 31'000ms);
    CHECK_FALSE(e.ejected(0));
    CHECK(e.ejected_count() == 0);
    e.end(0, 31'000ms);  // idempotent
    CHECK(e.ejected_count() == 0);
}

TEST_CASE("5xx responses count only with count_5xx", "[health]") {
    Ejector lenient(passive(2, 1s, 10s), 1);
    CHECK_FALSE(lenient.record(0, PassiveOutcome::connect_failure, 0ms));
    CHECK_FALSE(lenient.record(0, PassiveOutcome::status_5xx, 0ms));  // answers: resets
    CHECK(lenient.failures(0) == 0);
    CHECK_FALSE(lenient.record(0, PassiveOutcome::status_5xx, 0ms));
    CHECK_FALSE(lenient.ejected(0));

    PassiveHealthConfig strict_config = passive(2, 1s, 10s);
    strict_config.count_5xx = true;
    Ejector strict(strict_config, 1);
    CHECK_FALSE(strict.record(0, PassiveOutcome::status_5xx, 0ms));
    CHECK(strict.record(0, PassiveOutcome::status_5xx, 0ms));

    Ejector off(passive(0, 1s, 10s), 1);
    for (int i = 0; i < 100; ++i) CHECK_FALSE(off.record(0, PassiveOutcome::connect_failure, 0ms));
}

TEST_CASE("ejection time grows with repeated ejections, capped, and the count decays", "[health]") {
    PassiveHealthConfig config = passive(1, 30s, 100s, 100);
    CHECK(Ejector::ejection_time(config, 1) == 30s);
    CHECK(Ejector::ejection_time(config, 3) == 90s);
    CHECK(Ejector::ejection_time(config, 4) == 100s);
    CHECK(Ejector::ejection_time(config, 4'000'000'000u) == 100s);  // no overflow

    Ejector e(config, 1);
    Millis now = 0ms;
    auto eject_and_return = [&](Millis clean_time) {
        auto ejection = e.record(0, PassiveOutcome::connect_failure, now);
        REQUIRE(ejection);
        now += ejection->duration;
        e.end(0, now);
        Millis lasted = ejection->duration;
        now += clean_time;
        return lasted;
    };
    // Failing again right after each return: 30, 60, 90, then capped at 100.
    CHECK(eject_and_return(0ms) == 30s);
    CHECK(eject_and_return(0ms) == 60s);
    CHECK(eject_and_return(0ms) == 90s);
    CHECK(eject_and_return(0ms) == 100s);
    CHECK(e.ejection_count(0) == 4);
    // 65 s clean: the count drops by two (one per 30 s), from 4 to 2, and this ejection is the third.
    now += 65s;
    CHECK(eject_and_return(0ms) == 90s);
    CHECK(e.ejection_count(0) == 3);
    // A long clean stretch forgets everything.
    now += 1h;
    CHECK(eject_and_return(0ms) == 30s);
}

TEST_CASE("at most max_ejected_percent of the pool is ejected at once", "[health]") {
    CHECK(Ejector(passive(1, 1s, 1s, 50), 4).max_ejected() == 2);
    CHECK(Ejector(passive(1, 1s, 1s, 50), 5).max_ejected() == 2);
    CHECK(Ejector(passive(1, 1s, 1s, 10), 3).max_ejected() == 1);  // at least one
    CHECK(Ejector(passive(1, 1s, 1s, 50), 1).max_ejected() == 1);
    CHECK(Ejector(passive(1, 1s, 1s, 100), 3).max_ejected() == 3);
    CHECK(Ejector(passive(1, 1s, 1s, 0), 3).max_ejected() == 0);
    // The share is each pool's own: two pools of two, at 50%, eject one backend each.
    {
        Ejector pools(passive(1, 1s, 1s, 50), 4, {0, 0, 1, 1});
        CHECK(pools.max_ejected(0) == 1);
        CHECK(pools.max_ejected(1) == 1);
        CHECK(pools.record(0, PassiveOutcome::reset, 0ms));
        CHECK_FALSE(pools.record(1, PassiveOutcome::reset, 0ms));  // pool 0's share is used up
        CHECK(pools.record(2, PassiveOutcome::reset, 0ms));        // pool 1's is its own
        CHECK(pools.ejected_count(0) == 1);
        CHECK(pools.ejected_count(1) == 1);
        pools.end(0, 1ms);
        CHECK(pools.ejected_count(0) == 0);
        CHECK(pools.record(1, PassiveOutcome::reset, 2ms));
    }

    Ejector e(passive(2, 1s, 1s, 50), 4);
    for (size_t b = 0; b < 4; ++b) {
        CHECK_FALSE(e.record(b, PassiveOutcome::connect_failure, 0ms));
    }
    CHECK(e.record(0, PassiveOutcome::connect_failure, 0ms));
    CHECK(e.record(1, PassiveOutcome::connect_failure, 0ms));
    CHECK_FALSE(e.record(2, PassiveOutcome::connect_failure, 0ms));  // share used up
    CHECK_FALSE(e.record(2, PassiveOutcome::connect_failure, 0ms));
    CHECK(e.failures(2) == 2);  // held at the threshold
    CHECK(e.ejected_count() == 2);
    e.end(0, 1000ms);
    // A slot is free: backend 2's next failure ejects it at once.
    CHECK(e.record(2, PassiveOutcome::connect_failure, 1000ms));
    CHECK_FALSE(e.record(3, PassiveOutcome::connect_failure, 1000ms));
    CHECK(e.ejected_count() == 2);

    Ejector none(passive(1, 1s, 1s, 0), 2);
    CHECK_FALSE(none.record(0, PassiveOutcome::connect_failure, 0ms));
}

TEST_CASE("the combined state changes once per flip, whichever side causes it", "[health]") {
    HealthConfig config;
    config.rise = 2;
    config.fall = 2;
    config.passive = passive(2, 10s, 100s, 100);
    // Ejections here run their time; a passed check ending one has its own case below.
    config.passive.passed_check_ends_ejection = false;
    HealthDecider d(config, std::vector<CheckOverrides>(2));
    CHECK(d.size() == 2);
    CHECK(d.healthy(0));

    // Passive: ejected after 2 failures.
    CHECK_FALSE(d.on_passive(0, PassiveOutcome::reset, 0ms).change);
    auto ejected = d.on_passive(0, PassiveOutcome::connect_failure, 0ms);
    REQUIRE(ejected.change);
    CHECK_FALSE(ejected.change->healthy);
    CHECK(ejected.change->cause == TransitionCause::ejection);
    CHECK(ejected.change->reason == "ejected for 10000 ms after 2 consecutive failures (last: connect failure)");
    REQUIRE(ejected.ejected_for);
    CHECK(*ejected.ejected_for == 10s);
    CHECK_FALSE(d.healthy(0));
    CHECK(d.active_healthy(0));

    // Active checks failing while ejected: no change, it is already down.
    CHECK_FALSE(d.on_check(0, failed(CheckResult::connect_error, "connection refused"), 0ms));
    CHECK_FALSE(d.on_check(0, failed(CheckResult::connect_error, "connection refused"), 0ms));
    CHECK_FALSE(d.active_healthy(0));
    // The ejection ends while the checks hold it down: still no change.
    CHECK_FALSE(d.on_ejection_end(0, 10s));
    CHECK_FALSE(d.healthy(0));
    // Passive reports for a backend that is down are ignored.
    CHECK_FALSE(d.on_passive(0, PassiveOutcome::connect_failure, 10s).change);
    CHECK_FALSE(d.on_passive(0, PassiveOutcome::connect_failure, 10s).ejected_for);
    // The checks bring it back after rise.
    CHECK_FALSE(d.on_check(0, judge_response(200, 1ms, kDefaultExpected, 1s), 0ms));
    auto up = d.on_check(0, judge_response(200, 1ms, kDefaultExpected, 1s), 0ms);
    REQUIRE(up);
    CHECK(up->healthy);
    CHECK(up->cause == TransitionCause::checks);
    CHECK(up->reason == "status 200");
    CHECK(up->detail == "2 consecutive passed checks");

    // Ejected while the checks pass: the ejection's end is the transition.
    d.on_passive(1, PassiveOutcome::timeout, 20s);
    REQUIRE(d.on_passive(1, PassiveOutcome::timeout, 20s).change);
    CHECK_FALSE(d.on_check(1, judge_response(200, 1ms, kDefaultExpected, 1s), 0ms));
    auto back = d.on_ejection_end(1, 30s);
    REQUIRE(back);
    CHECK(back->healthy);
    CHECK(back->cause == TransitionCause::ejection_ended);
    CHECK(back->reason == "ejection ended after 10000 ms");
    CHECK_FALSE(d.on_ejection_end(1, 30s));  // only once
}

TEST_CASE("the last eligible backend is never ejected, and is ejected once another is eligible", "[health]") {
    HealthConfig config;
    config.rise = 1;
    config.fall = 1;
    config.passive = passive(2, 10s, 100s, 100);

    SECTION("a lone backend") {
        HealthDecider d(config, std::vector<CheckOverrides>(1));
        for (int i = 0; i < 10; ++i) {
            auto decision = d.on_passive(0, PassiveOutcome::connect_failure, Millis(i));
            CHECK_FALSE(decision.change);
            CHECK_FALSE(decision.ejected_for);
        }
        CHECK(d.healthy(0));
        CHECK(d.ejector().ejected_count() == 0);
        // Its failures are counted, up to the threshold.
        CHECK(d.ejector().failures(0) == 2);
        // Back: a success resets the count.
        d.on_passive(0, PassiveOutcome::success, 20ms);
        CHECK(d.ejector().failures(0) == 0);
    }
    SECTION("the survivor of a pool") {
        HealthDecider d(config, std::vector<CheckOverrides>(3));
        // Backend 0 is ejected, backend 1 is down by its checks: backend 2 is the last one healthy.
        d.on_passive(0, PassiveOutcome::reset, 0ms);
        REQUIRE(d.on_passive(0, PassiveOutcome::reset, 0ms).ejected_for);
        REQUIRE(d.on_check(1, failed(CheckResult::connect_error, "connection refused"), 0ms));
        d.on_passive(2, PassiveOutcome::timeout, 1ms);
        CHECK_FALSE(d.on_passive(2, PassiveOutcome::timeout, 1ms).ejected_for);
        CHECK_FALSE(d.on_passive(2, PassiveOutcome::timeout, 2ms).ejected_for);
        CHECK(d.healthy(2));
        // Backend 1 passes again: backend 2 is no longer the last, and its next failure ejects it.
        REQUIRE(d.on_check(1, judge_response(200, 1ms, kDefaultExpected, 1s), 3ms));
        auto ejected = d.on_passive(2, PassiveOutcome::timeout, 4ms);
        REQUIRE(ejected.ejected_for);
        REQUIRE(ejected.change);
        CHECK_FALSE(ejected.change->healthy);
        // And now backend 1 is the last one: never ejected.
        d.on_passive(1, PassiveOutcome::reset, 5ms);
        CHECK_FALSE(d.on_passive(1, PassiveOutcome::reset, 5ms).ejected_for);
        CHECK(d.healthy(1));
    }
    SECTION("each pool keeps its last one, whatever the other pools have") {
        // Backends 0 and 1 form one pool, 2 another: healthy backends elsewhere do not make 2 ejectable.
        HealthDecider d(config, std::vector<CheckOverrides>(3), {}, {0, 0, 1});
        d.on_passive(2, PassiveOutcome::reset, 0ms);
        CHECK_FALSE(d.on_passive(2, PassiveOutcome::reset, 0ms).ejected_for);
        CHECK(d.healthy(2));
        d.on_passive(0, PassiveOutcome::reset, 1ms);
        CHECK(d.on_passive(0, PassiveOutcome::reset, 1ms).ejected_for);  // 1 is still there
        d.on_passive(1, PassiveOutcome::reset, 2ms);
        CHECK_FALSE(d.on_passive(1, PassiveOutcome::reset, 2ms).ejected_for);
    }
    SECTION("a backend the admin API drained or disabled is healthy but not another one to fall back on") {
        HealthDecider d(config, std::vector<CheckOverrides>(2));
        d.set_takes_new_requests(0, false);
        d.on_passive(1, PassiveOutcome::reset, 0ms);
        CHECK_FALSE(d.on_passive(1, PassiveOutcome::reset, 0ms).ejected_for);
        CHECK(d.healthy(0));
        CHECK(d.healthy(1));
        CHECK(d.ejector().failures(1) == 2);
        // Enabled again: backend 1's next failure ejects it.
        d.set_takes_new_requests(0, true);
        CHECK(d.on_passive(1, PassiveOutcome::reset, 1ms).ejected_for);
        // The drained one is still judged on its own failures like any other.
        HealthDecider e(config, std::vector<CheckOverrides>(2));
        e.set_takes_new_requests(0, false);
        e.on_passive(0, PassiveOutcome::reset, 0ms);
        CHECK(e.on_passive(0, PassiveOutcome::reset, 0ms).ejected_for);
    }
}

TEST_CASE("the ejected share is counted per pool", "[health]") {
    HealthConfig config;
    config.passive = passive(1, 10s, 100s, 50);
    // Two pools of three: at most one each (50% of 3, rounded down), where one share of six would allow three.
    HealthDecider d(config, std::vector<CheckOverrides>(6), {}, {0, 0, 0, 1, 1, 1});
    REQUIRE(d.on_passive(0, PassiveOutcome::reset, 0ms).ejected_for);
    CHECK_FALSE(d.on_passive(1, PassiveOutcome::reset, 0ms).ejected_for);
    CHECK(d.healthy(1));
    REQUIRE(d.on_passive(3, PassiveOutcome::reset, 0ms).ejected_for);
    auto second = d.on_passive(4, PassiveOutcome::reset, 0ms);
    CHECK_FALSE(second.ejected_for);
    d.on_ejection_end(0, 10s);
    auto next = d.on_passive(1, PassiveOutcome::reset, 10s);
    REQUIRE(next.change);
    CHECK(next.change->detail == "ejection 1, 1 of at most 1 ejected");
}

TEST_CASE("a passed check ends an ejection at once, unless turned off", "[health]") {
    HealthConfig config;
    config.rise = 2;
    config.fall = 2;
    config.passive = passive(1, 30s, 300s, 100);
    const CheckOutcome pass = judge_response(200, 1ms, kDefaultExpected, 1s);
    const CheckOutcome fail = failed(CheckResult::connect_error, "connection refused");

    SECTION("on by default") {
        REQUIRE(config.passive.passed_check_ends_ejection);
        HealthDecider d(config, std::vector<CheckOverrides>(2));
        REQUIRE(d.on_passive(0, PassiveOutcome::connect_failure, 1000ms).ejected_for);
        // A failed check ends nothing.
        CHECK_FALSE(d.on_check(0, fail, 1500ms));
        CHECK(d.ejector().ejected(0));
        // The first pass does, although rise is 2: the checks never took the backend down.
        auto back = d.on_check(0, pass, 2000ms);
        REQUIRE(back);
        CHECK(back->healthy);
        CHECK(back->cause == TransitionCause::ejection_ended);
        CHECK(back->reason == "ejection of 30000 ms ended by a passed check (status 200)");
        CHECK(d.healthy(0));
        CHECK_FALSE(d.ejector().ejected(0));
        CHECK(d.ejector().ejected_count() == 0);
        // The ejection timer that was left running finds nothing to end.
        CHECK_FALSE(d.on_ejection_end(0, 31000ms));
        // Ejected again: the count grew (30 s clean time had not passed), so the ejection is longer.
        auto again = d.on_passive(0, PassiveOutcome::connect_failure, 3000ms);
        REQUIRE(again.ejected_for);
        CHECK(*again.ejected_for == 60s);
    }
    SECTION("while the checks hold the backend down, a pass counts towards rise only") {
        HealthDecider d(config, std::vector<CheckOverrides>(2));
        REQUIRE(d.on_passive(0, PassiveOutcome::connect_failure, 0ms).ejected_for);
        CHECK_FALSE(d.on_check(0, fail, 1ms));
        CHECK_FALSE(d.on_check(0, fail, 2ms));
        CHECK_FALSE(d.active_healthy(0));
        CHECK_FALSE(d.on_check(0, pass, 3ms));  // 1 of rise 2
        CHECK(d.ejector().ejected(0));
        auto back = d.on_check(0, pass, 4ms);  // rise reached: the ejection ends with it
        REQUIRE(back);
        CHECK(back->healthy);
        CHECK_FALSE(d.ejector().ejected(0));
    }
    SECTION("off: the ejection runs its time") {
        config.passive.passed_check_ends_ejection = false;
        HealthDecider d(config, std::vector<CheckOverrides>(2));
        REQUIRE(d.on_passive(0, PassiveOutcome::connect_failure, 0ms).ejected_for);
        CHECK_FALSE(d.on_check(0, pass, 1ms));
        CHECK(d.ejector().ejected(0));
        REQUIRE(d.on_ejection_end(0, 30s));
        CHECK(d.healthy(0));
    }
}

TEST_CASE("per-backend overrides set rise and fall", "[health]") {
    HealthConfig config;
    config.fall = 3;
    CheckOverrides quick;
    quick.fall = 1;
    HealthDecider d(config, {CheckOverrides{}, quick});
    CHECK_FALSE(d.on_check(0, failed(CheckResult::connect_error, "x"), 0ms));
    auto down = d.on_check(1, failed(CheckResult::connect_error, "connection refused"), 0ms);
    REQUIRE(down);
    CHECK(down->reason == "connection refused");
    CHECK(down->detail == "1 consecutive failed check");
}

TEST_CASE("resolve_check applies a backend's overrides", "[health]") {
    HealthConfig config;
    config.max_response_time = 500ms;
    CheckSettings plain = resolve_check(config, {});
    CHECK(plain.path == "/health");
    CHECK(plain.interval == 10s);
    CHECK(plain.timeout == 2s);
    CHECK(plain.max_response_time == 500ms);
    CHECK(plain.rise == 2);
    CHECK(plain.fall == 3);
    CHECK(plain.port == 0);
    CHECK(plain.host.empty());

    CheckOverrides own;
    own.path = "/ready";
    own.timeout = 100ms;
    own.port = 8081;
    own.host = "svc.internal";
    CheckSettings s = resolve_check(config, own);
    CHECK(s.path == "/ready");
    CHECK(s.timeout == 100ms);
    CHECK(s.max_response_time == 100ms);  // never above the timeout
    CHECK(s.port == 8081);
    CHECK(s.host == "svc.internal");

    HealthConfig unset;  // max_response_time follows each backend's timeout
    CHECK(resolve_check(unset, own).max_response_time == 100ms);
}

TEST_CASE("jitter spreads each wait within its bounds", "[health]") {
    Jitter ten_percent;  // the default: 10%
    CHECK(ten_percent.max_for(1000ms) == 100ms);
    CHECK(jittered_interval(1000ms, ten_percent, 0) == 900ms);
    CHECK(jittered_interval(1000ms, ten_percent, 100) == 1000ms);
    CHECK(jittered_interval(1000ms, ten_percent, 200) == 1100ms);
    CHECK(jittered_interval(1000ms, ten_percent, 201) == 900ms);  // wraps: random % 201
    for (uint64_t r = 0; r < 1000; r += 7) {
        Millis wait = jittered_interval(1000ms, ten_percent, r * 0x9e3779b97f4a7c15ull);
        CHECK(wait >= 900ms);
        CHECK(wait <= 1100ms);
    }

    Jitter none;
    none.percent = 0;
    CHECK(jittered_interval(1000ms, none, 12345) == 1000ms);

    Jitter fixed;
    fixed.is_percent = false;
    fixed.duration = 300ms;
    CHECK(fixed.max_for(10s) == 300ms);
    CHECK(fixed.max_for(400ms) == 200ms);  // at most half the interval
    CHECK(jittered_interval(400ms, fixed, 0) == 200ms);
    CHECK(jittered_interval(1ms, fixed, 99) == 1ms);
}

TEST_CASE("a backend's own initial state overrides the pool's (a reload carrying what was known)", "[health]") {
    HealthConfig config;
    config.rise = 2;
    config.fall = 2;
    HealthDecider d(config, std::vector<CheckOverrides>(2), {InitialState::unhealthy, InitialState::healthy});
    CHECK_FALSE(d.healthy(0));
    CHECK(d.healthy(1));
    // One that starts down, like initial_state: unhealthy, comes up on its first passed check.
    auto up = d.on_check(0, judge_response(200, 1ms, kDefaultExpected, 1s), 0ms);
    REQUIRE(up);
    CHECK(up->healthy);
}

TEST_CASE("each check result is counted under one metrics label, from one table", "[health][metrics]") {
    using lb::metrics::HealthResult;
    CHECK(metrics_result(CheckResult::ok) == HealthResult::success);
    CHECK(metrics_result(CheckResult::bad_status) == HealthResult::bad_status);
    CHECK(metrics_result(CheckResult::too_slow) == HealthResult::bad_status);
    CHECK(metrics_result(CheckResult::bad_response) == HealthResult::bad_status);
    CHECK(metrics_result(CheckResult::connect_error) == HealthResult::connect_error);
    CHECK(metrics_result(CheckResult::timeout) == HealthResult::timeout);
    CHECK(to_string(CheckResult::connect_error) == "connect_error");
    CHECK(to_string(CheckResult::too_slow) == "too_slow");
    // What the checker builds for a refused connect, and where it is counted.
    CHECK(metrics_result(failed(CheckResult::connect_error, "connection refused").result) ==
          HealthResult::connect_error);
    CHECK(metrics_result(judge_response(503, 1ms, kDefaultExpected, 1s).result) == HealthResult::bad_status);
    CHECK(metrics_result(timed_out(1s).result) == HealthResult::timeout);
}

namespace {

HealthTarget named(const std::string& name) {
    HealthTarget t;
    t.name = name;
    return t;
}

BackendHealth known(const std::string& name, bool healthy) {
    BackendHealth b;
    b.name = name;
    b.healthy = healthy;
    return b;
}

std::vector<std::optional<bool>> starts(const std::vector<HealthTarget>& targets) {
    std::vector<std::optional<bool>> out;
    for (const HealthTarget& t : targets) out.push_back(t.starts_healthy);
    return out;
}

}  // namespace

TEST_CASE("a reload carries each known backend's state, added ones wait for a check while a known one is up",
          "[health][reload]") {
    HealthConfig config;
    std::vector<BackendHealth> previous{known("a:80", true), known("b:80", false), known("gone:80", true)};
    std::vector<HealthTarget> targets{named("b:80"), named("new:80"), named("a:80")};
    carry_over_health(config, previous, targets);
    CHECK(starts(targets) == std::vector<std::optional<bool>>{false, false, true});
}

TEST_CASE("a reload with no known backend up leaves added backends in initial_state", "[health][reload]") {
    HealthConfig config;
    std::vector<HealthTarget> targets{named("b:80"), named("new:80")};
    carry_over_health(config, {known("b:80", false), known("c:80", false)}, targets);
    CHECK(starts(targets) == std::vector<std::optional<bool>>{false, std::nullopt});

    std::vector<HealthTarget> fresh{named("x:80")};
    carry_over_health(config, {}, fresh);  // nothing known at all (the first generation)
    CHECK(starts(fresh) == std::vector<std::optional<bool>>{std::nullopt});
}

TEST_CASE("without active checks a reload carries nothing: nothing would bring a backend back", "[health][reload]") {
    HealthConfig config;
    config.enabled = false;
    std::vector<HealthTarget> targets{named("a:80"), named("b:80"), named("new:80")};
    carry_over_health(config, {known("a:80", true), known("b:80", false)}, targets);
    CHECK(starts(targets) == std::vector<std::optional<bool>>(3, std::nullopt));
}
