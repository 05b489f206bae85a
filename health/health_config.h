// The `health:` section of lb.yaml, and a backend's own `health:` overrides, as typed values. Plain data: config
// loading (core/config.cpp) fills and validates it, HealthMonitor and the pool read it. No core/ includes.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lb::health {

using Millis = std::chrono::milliseconds;

// An inclusive range of HTTP status codes; a single code is a range of one.
struct StatusRange {
    int low = 200;
    int high = 399;
    bool operator==(const StatusRange&) const = default;
};

inline bool status_expected(const std::vector<StatusRange>& expected, int status) {
    return std::any_of(expected.begin(), expected.end(),
                       [&](const StatusRange& r) { return status >= r.low && status <= r.high; });
}

// Random spread added to or removed from each wait between checks, so that checks of many backends (and of many
// lb instances) do not fire in step (Envoy's interval_jitter, HAProxy's spread-checks). Either a percentage of
// the interval or a fixed duration; in both cases at most half the interval is used.
struct Jitter {
    bool is_percent = true;
    uint32_t percent = 10;  // 0..50, when is_percent
    Millis duration{0};     // when !is_percent

    // The largest amount a wait of `interval` may move either way.
    Millis max_for(Millis interval) const {
        Millis spread = is_percent ? Millis(interval.count() * percent / 100) : duration;
        return std::min(spread, interval / 2);
    }
    bool operator==(const Jitter&) const = default;
};

// How a backend is considered before its first check.
//   healthy (default): it takes traffic at once and goes down after `fall` failed checks, as HAProxy's servers
//     start UP and the pool's BackendState starts healthy. Passive ejection and retries cover a dead backend
//     until then.
//   unhealthy: it takes no traffic until checks pass. If its very first check passes it comes up at once
//     (Envoy's rule for a host that has never been checked); once a check has failed, `rise` applies.
enum class InitialState { healthy, unhealthy };

// Passive checks (Envoy's outlier detection): failures the shards see on real requests, reported through
// HealthMonitor::report_passive.
struct PassiveHealthConfig {
    // Consecutive failures (connect failure, timeout, reset; 5xx only with count_5xx) that eject a backend.
    // 0 turns passive ejection off. Any success resets the count.
    uint32_t consecutive_failures = 5;
    // An ejection lasts base_ejection_time × the backend's ejection count (1 for its first), capped at
    // max_ejection_time. The count drops by one for each base_ejection_time the backend then spends un-ejected.
    Millis base_ejection_time{30'000};
    Millis max_ejection_time{300'000};
    // At most this share of the pool is ejected at once (at least one backend when above 0), so that a
    // pool-wide problem does not eject everything. Envoy defaults to 10%; lb to 50%. Whatever the share, the
    // last eligible backend of a pool (healthy, and not drained or disabled) is never ejected (nginx never marks the
    // only server of a group unavailable): ejecting it could only turn every request into a 503, and would keep doing
    // so after the backend came back.
    uint32_t max_ejected_percent = 50;
    // Whether 5xx responses count as failures (Envoy's consecutive_5xx); by default only failures to get a
    // response at all count (Envoy's consecutive_gateway_failure without 502-504).
    bool count_5xx = false;
    // With active checks on, a passed check ends an ejection at once, as Envoy's
    // successful_active_health_check_uneject_host does by default: the backend answers again, so waiting out the
    // ejection only turns clients away.
    bool passed_check_ends_ejection = true;
    bool operator==(const PassiveHealthConfig&) const = default;
};

// A backend's own `health:` keys; an empty field takes the pool-wide value.
struct CheckOverrides {
    std::optional<std::string> path;
    std::optional<Millis> interval;
    std::optional<Millis> timeout;
    std::optional<uint32_t> rise;
    std::optional<uint32_t> fall;
    std::optional<uint16_t> port;
    std::optional<std::string> host;
    bool operator==(const CheckOverrides&) const = default;
};

struct HealthConfig {
    // Active checks on or off; passive ejection follows passive.consecutive_failures either way.
    bool enabled = true;
    // The request target of the check: GET <path> HTTP/1.1. May carry a query.
    std::string path = "/health";
    // Wait between the end of one check and the start of the next (± jitter); checks of one backend never
    // overlap. The first round starts as soon as the monitor starts.
    Millis interval{10'000};
    // The whole check, connect included; past it the check fails with "timeout after N ms".
    Millis timeout{2'000};
    uint32_t rise = 2;  // consecutive passes that bring a down backend up (HAProxy rise 2)
    uint32_t fall = 3;  // consecutive failures that take an up backend down (HAProxy fall 3)
    // (Built with the count constructor: GCC 12 reports a false maybe-uninitialized on an initializer list here.)
    std::vector<StatusRange> expected_statuses = std::vector<StatusRange>(1, StatusRange{200, 399});
    // A response slower than this (from the start of the check) fails it. Empty: the timeout.
    std::optional<Millis> max_response_time;
    // The Host header. Empty: the backend's address as written in lb.yaml ("10.0.0.5:8080").
    std::string host;
    // Check this port instead of the backend's. 0: the backend's own port.
    uint16_t port = 0;
    Jitter jitter;
    InitialState initial_state = InitialState::healthy;
    PassiveHealthConfig passive;
    // A backend that comes back (a transition to healthy) ramps from a small share of its weight to all of it
    // over this long; the pool applies it (pool/slow_start.h). 0 = off. Backends healthy at start are not ramped.
    Millis slow_start{0};
    // When no backend is healthy, the pool may ignore health and use all of them (Envoy's panic threshold at
    // 100%). The pool decides; the health module only carries the setting.
    bool panic = false;

    bool operator==(const HealthConfig&) const = default;
};

// One backend's active-check parameters with its overrides applied.
struct CheckSettings {
    std::string path;
    Millis interval{0};
    Millis timeout{0};
    Millis max_response_time{0};  // never above timeout
    uint32_t rise = 0;
    uint32_t fall = 0;
    uint16_t port = 0;  // 0: the backend's own port
    std::string host;   // empty: the backend's name
};

inline CheckSettings resolve_check(const HealthConfig& pool, const CheckOverrides& own) {
    CheckSettings s;
    s.path = own.path.value_or(pool.path);
    s.interval = own.interval.value_or(pool.interval);
    s.timeout = own.timeout.value_or(pool.timeout);
    s.max_response_time = std::min(pool.max_response_time.value_or(s.timeout), s.timeout);
    s.rise = own.rise.value_or(pool.rise);
    s.fall = own.fall.value_or(pool.fall);
    s.port = own.port.value_or(pool.port);
    s.host = own.host.value_or(pool.host);
    return s;
}

}  // namespace lb::health
