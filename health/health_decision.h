// The health decisions, with no I/O, no clock and no random source of their own: whether a check passed, when
// rise/fall thresholds flip a backend, when passive failures eject it and for how long, and how jitter spreads
// the waits. HealthMonitor feeds them what its sockets and timers saw; the unit tests feed them directly
// (test/unit/test_health_decision.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "health/health_config.h"
#include "metrics/stats.h"

namespace lb::health {

// What one active check found, by kind, and the `result` label lb_backend_health_checks_total counts it under
// (metrics/stats.h). One table, so that a new kind cannot be left out of the metrics or counted by hand elsewhere.
// clang-format off
#define LB_HEALTH_CHECK_RESULTS(X)                                                                              \
    X(ok,            success)       /* an expected status, within max_response_time */                         \
    X(bad_status,    bad_status)    /* a response with a status outside expected_statuses */                   \
    X(too_slow,      bad_status)    /* an expected status, slower than max_response_time */                    \
    X(bad_response,  bad_status)    /* bytes that are not a valid HTTP response */                             \
    X(connect_error, connect_error) /* refused, unreachable, or the connection lost before a whole response */ \
    X(tls_handshake, connect_error) /* the TLS handshake failed: a certificate that does not verify...      */ \
    X(timeout,       timeout)       /* no whole response within the check's timeout */
// clang-format on

enum class CheckResult : uint8_t {
#define LB_HEALTH_X(name, label) name,
    LB_HEALTH_CHECK_RESULTS(LB_HEALTH_X)
#undef LB_HEALTH_X
};

// The result's name as written in the table ("connect_error").
constexpr std::string_view to_string(CheckResult result) {
    constexpr std::string_view kNames[] = {
#define LB_HEALTH_X(name, label) #name,
        LB_HEALTH_CHECK_RESULTS(LB_HEALTH_X)
#undef LB_HEALTH_X
    };
    return kNames[static_cast<size_t>(result)];
}

// The label the result is counted under in lb_backend_health_checks_total.
constexpr metrics::HealthResult metrics_result(CheckResult result) {
    constexpr metrics::HealthResult kLabels[] = {
#define LB_HEALTH_X(name, label) metrics::HealthResult::label,
        LB_HEALTH_CHECK_RESULTS(LB_HEALTH_X)
#undef LB_HEALTH_X
    };
    return kLabels[static_cast<size_t>(result)];
}

struct CheckOutcome {
    CheckResult result = CheckResult::ok;
    // Why, in words meant for a log line or a status page: "status 200", "status 500", "timeout after 2000 ms",
    // "connection refused", "response took 312 ms, over max_response_time 200 ms".
    std::string reason;
    bool passed() const { return result == CheckResult::ok; }
};

// The verdict on a complete response that arrived `elapsed` after the check started. It fails on a status
// outside `expected` (bad_status, "status 500") or when slower than `max_response_time` (too_slow).
CheckOutcome judge_response(int status, Millis elapsed, const std::vector<StatusRange>& expected,
                            Millis max_response_time);
// A check that got no complete response within `timeout`: "timeout after 2000 ms".
CheckOutcome timed_out(Millis timeout);
// A check that failed without a usable response: `result` says how (connect_error, bad_response), `reason` in
// words ("connection refused").
CheckOutcome failed(CheckResult result, std::string reason);

// What a shard saw on one proxied request to a backend, reported through HealthMonitor::report_passive.
enum class PassiveOutcome : uint8_t {
    success,          // a response came back (any status below 500, or 5xx when count_5xx is off)
    connect_failure,  // refused, unreachable or connect timeout
    timeout,          // no response within timeouts.upstream_response
    reset,            // connection lost before the response completed
    status_5xx,       // a 5xx response: a failure only with passive.count_5xx
};
std::string_view to_string(PassiveOutcome outcome);
// Whether `outcome` counts towards an ejection under `config` (a 5xx only with count_5xx). Any other outcome
// resets the count.
bool is_passive_failure(const PassiveHealthConfig& config, PassiveOutcome outcome);

// Rise/fall hysteresis for one backend (HAProxy's check.c): the state flips only after `fall` consecutive
// failures while up, or `rise` consecutive passes while down. A result that agrees with the state resets the
// count. A backend that starts unhealthy comes up on its first pass (see InitialState).
class RiseFall {
  public:
    RiseFall(uint32_t rise, uint32_t fall, InitialState initial);

    // Records one check. Returns true when it flipped healthy().
    bool record(bool passed);
    bool healthy() const { return healthy_; }
    // Consecutive results against the current state so far (passes while down, failures while up).
    uint32_t streak() const { return streak_; }
    // How many consecutive results made the last flip (rise, fall, or 1 for a first pass from unhealthy).
    uint32_t last_flip_after() const { return last_flip_after_; }

  private:
    uint32_t rise_;
    uint32_t fall_;
    bool healthy_;
    bool checked_ = false;  // a result has been recorded
    uint32_t streak_ = 0;
    uint32_t last_flip_after_ = 0;
};

// Passive ejection (Envoy's outlier detection, per cluster): consecutive failures eject a backend for a time that
// grows with its ejection count, and only while fewer than max_ejected() of its pool are ejected.
class Ejector {
  public:
    struct Ejection {
        Millis duration{0};     // how long this ejection lasts
        uint32_t failures = 0;  // the consecutive failures that caused it
        uint32_t count = 0;     // the backend's ejection count, this one included (after decay)
    };

    // `pools` gives each backend's pool (empty: all in one).
    Ejector(const PassiveHealthConfig& config, size_t backend_count, const std::vector<size_t>& pools = {});

    // Records one outcome for `backend` at `now` (any monotonic millisecond clock). Returns the ejection when
    // this outcome ejects it. Outcomes for an ejected backend are ignored. At the threshold with the share
    // used up, or with `may_eject` false (the caller's veto: it is the last eligible backend), the backend stays
    // at the threshold: the next failure once ejection is allowed ejects it.
    std::optional<Ejection> record(size_t backend, PassiveOutcome outcome, Millis now, bool may_eject = true);
    // The ejection of `backend` has run its time (the caller's timer fired at `now`).
    void end(size_t backend, Millis now);

    bool ejected(size_t backend) const { return backends_[backend].ejected; }
    Millis ejection_duration(size_t backend) const { return backends_[backend].duration; }
    uint32_t ejection_count(size_t backend) const { return backends_[backend].count; }
    uint32_t failures(size_t backend) const { return backends_[backend].failures; }
    size_t pool_of(size_t backend) const { return pool_of_[backend]; }
    // Backends ejected now, in `pool`.
    size_t ejected_count(size_t pool = 0) const { return pool_shares_[pool].ejected; }
    // The most backends of `pool` ejected at once: max_ejected_percent of the pool, rounded down, but at least
    // one (Envoy's rule) unless the percentage is 0.
    size_t max_ejected(size_t pool = 0) const { return pool_shares_[pool].max_ejected; }

    // base × count, capped at max. count >= 1.
    static Millis ejection_time(const PassiveHealthConfig& config, uint32_t count);

  private:
    struct State {
        uint32_t failures = 0;
        uint32_t count = 0;
        bool ejected = false;
        Millis duration{0};
        Millis returned_at{0};  // when the last ejection ended
    };
    struct PoolShare {
        size_t ejected = 0;
        size_t max_ejected = 0;
    };
    PassiveHealthConfig config_;
    std::vector<State> backends_;
    std::vector<size_t> pool_of_;  // per backend
    std::vector<PoolShare> pool_shares_;
};

// Why a backend's combined state flipped.
enum class TransitionCause : uint8_t {
    checks,          // the active checks crossed rise (up) or fall (down)
    ejection,        // passive failures ejected it (down)
    ejection_ended,  // its ejection ran its time, or a passed check ended it, while the active checks pass (up)
};
std::string_view to_string(TransitionCause cause);

// Active and passive state combined for a pool: a backend is healthy when its rise/fall state is up and it is
// not ejected. Every call returns a Change only when that combined state flips; HealthMonitor turns each into
// one Transition, one log line and one broadcast.
class HealthDecider {
  public:
    struct Change {
        bool healthy = true;
        TransitionCause cause = TransitionCause::checks;
        std::string reason;  // the event that flipped it: "status 500", "ejection ended after 30000 ms", ...
        std::string detail;  // context for the log line: "3 consecutive failed checks"
    };
    struct PassiveDecision {
        std::optional<Change> change;
        std::optional<Millis> ejected_for;  // set when this outcome ejected the backend: start its timer
    };

    // `backends` holds each backend's overrides (for rise and fall), in backend order. `initial` gives each
    // backend's starting state where it differs from config.initial_state (a reload carrying a known state);
    // empty means config.initial_state for all.
    // `pools` gives each backend's pool (empty: all in one): ejection shares and the last-eligible rule are per pool.
    HealthDecider(const HealthConfig& config, const std::vector<CheckOverrides>& backends,
                  const std::vector<InitialState>& initial = {}, const std::vector<size_t>& pools = {});

    // One active check's outcome at `now`. A passed check while the backend is ejected ends the ejection when
    // passive.passed_check_ends_ejection is on (the caller may leave the ejection timer running: its end then
    // finds nothing to end).
    std::optional<Change> on_check(size_t backend, const CheckOutcome& outcome, Millis now);
    // Outcomes for a backend that is already down (active checks failing, or ejected) are ignored. The last
    // eligible backend of a pool (healthy, and taking new requests by its admin state) is never ejected: its
    // failures are counted, and eject it once another backend of its pool is eligible.
    PassiveDecision on_passive(size_t backend, PassiveOutcome outcome, Millis now);
    // The admin API drained or disabled `backend` (false), or enabled it (true; the default for every backend).
    // Only the rule above reads it: health is decided the same whatever the admin state.
    void set_takes_new_requests(size_t backend, bool takes);
    std::optional<Change> on_ejection_end(size_t backend, Millis now);

    size_t size() const { return active_.size(); }
    bool healthy(size_t backend) const { return active_[backend].healthy() && !ejector_.ejected(backend); }
    bool active_healthy(size_t backend) const { return active_[backend].healthy(); }
    const RiseFall& active(size_t backend) const { return active_[backend]; }
    const Ejector& ejector() const { return ejector_; }

  private:
    bool another_eligible(size_t backend) const;

    std::vector<RiseFall> active_;
    std::vector<uint8_t> takes_new_requests_;  // per backend: its admin state lets it take new requests
    Ejector ejector_;
    bool passed_check_ends_ejection_;
};

// The wait before a backend's next check: `interval` moved by a uniform amount in [-spread, +spread], with
// spread = jitter.max_for(interval). `random` is one draw of the caller's random source.
Millis jittered_interval(Millis interval, const Jitter& jitter, uint64_t random);

}  // namespace lb::health
