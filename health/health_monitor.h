// Active and passive health checks for one pool, decided once on a dedicated thread and reported as transitions.
//
// HealthMonitor owns one thread running its own uv_loop_t. On it, every backend has a checker: a keep-alive
// connection that sends `GET <path> HTTP/1.1` every interval (± jitter, first round at start), parses the
// response with llhttp and judges it (status, max response time, timeout). The connection is TCP, or TLS with the
// backend's own TLS settings (as the workers reach it); a failed handshake is a failed check of its own kind
// (tls_handshake, counted as connect_error), with OpenSSL's reason, logged once. Results feed the rise/fall and
// ejection decisions (health_decision.h). Shards report what real requests saw through report_passive(), which
// queues into the monitor's own inbox (a mutex plus a uv_async_t doorbell, drained completely on each wake).
//
// Only a change of a backend's combined state (active checks up and not ejected) is reported: once, to the
// transition callback, with a log line. The callback runs on the health thread; core forwards each transition
// to every shard through the shard's inbox (core/shard/shard_inbox.h), and each shard updates its own pool copy.
//
// The health thread counts what it does in its own metrics block (checks by result, passive ejections), the one
// place those counts live: a scrape merges it with the shards' blocks, tests read it directly.
//
// Threads: construct, start(), stop() and destroy from one controlling thread (never from the callback).
// report_passive(), snapshot() and metrics() are safe from any thread at any time, before start() and after
// stop() included.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "health/health_config.h"
#include "health/health_decision.h"
#include "metrics/shard_metrics.h"
#include "net/tls_config.h"

namespace lb::health {

namespace detail {
struct MonitorState;  // the health thread's world, in health_monitor.cpp
}

// One backend to check, as core resolved it. Index in the vector = the backend id in Transition and
// report_passive(), the same as the pool's BackendId.
struct HealthTarget {
    std::string name;            // "host:port" as written in lb.yaml: logs, snapshot, default Host header
    sockaddr_storage address{};  // resolved address (AF_INET or AF_INET6) with the backend's port
    CheckOverrides overrides;    // the backend's own `health:` keys
    // The backend's `tls:` (its own, or upstream.tls): checks use the same TLS as requests when it is enabled.
    net::TlsUpstreamConfig tls;
    // The backend's host as configured (lb.yaml's host, before resolution): for TLS, the default SNI and the
    // name its certificate must carry. Required when tls.enabled.
    std::string host;
    // The state to start in instead of config.initial_state: on a reload, what the previous monitor knew of this
    // backend (or false for one the reload adds, until its first check passes).
    std::optional<bool> starts_healthy;
    // The pool it belongs to: passive checks never eject the last eligible backend of a pool.
    size_t pool = 0;
    // False for a backend the admin API drained or disabled (carried over a reload): it does not count as another
    // eligible backend of its pool. set_takes_new_requests() changes it later.
    bool takes_new_requests = true;
};

// A change of one backend's combined health state.
struct Transition {
    size_t backend = 0;
    bool healthy = false;
    // Counts every transition of this monitor, from 1: larger is newer. A shard may drop a transition for a
    // backend older than one it already applied.
    uint64_t generation = 0;
    TransitionCause cause = TransitionCause::checks;
    std::string reason;  // for people: "status 500", "timeout after 2000 ms", "connection refused", "ejected for ..."
};

// One backend's health as the health thread last saw it, for a /status page.
struct BackendHealth {
    std::string name;
    bool healthy = true;         // the combined state, as last reported (or the initial state)
    bool active_healthy = true;  // rise/fall state of the active checks
    bool ejected = false;        // passive ejection in force
    uint32_t ejection_count = 0;
    uint32_t passive_failures = 0;           // consecutive passive failures counted towards the next ejection
    std::optional<CheckResult> last_result;  // empty before the first check completes
    std::string last_reason;                 // of the last check: "status 200", "connection refused", ...
    std::chrono::milliseconds last_duration{0};
    uint32_t streak = 0;      // consecutive check results against the current active state
    uint64_t generation = 0;  // of the last transition of this backend (0: none yet)
    std::string transition_reason;
};

struct HealthMonitorOptions {
    // Seeds the jitter's random source (SplitMix64). Give each lb process something different if several
    // check the same backends; tests pass a fixed value.
    uint64_t seed = 0;
    // Replaces the random source (each call one draw), for tests that want exact waits.
    std::function<uint64_t()> random;
    // Receives each log line (one event per call, no newline), on the health thread. Default: stderr.
    std::function<void(std::string_view)> log;
    // false: the metrics block records nothing (lb.yaml's `metrics: {enabled: false}`).
    bool metrics_enabled = true;
    // Optional: called on the health thread after every active check (already counted in metrics()), before any
    // transition it causes, with the time the check took. For tests that wait for checks.
    std::function<void(size_t backend, const CheckOutcome& outcome, std::chrono::milliseconds duration)> on_check;
};

class HealthMonitor {
  public:
    using TransitionCallback = std::function<void(const Transition&)>;

    // `config` is the pool-wide health section, `targets` the backends in pool order. `on_transition` is called
    // on the health thread, once per transition, in generation order; it must not block for long and must not
    // call stop(). Throws std::invalid_argument when on_transition is empty or a TLS target has no host, and
    // std::runtime_error when a TLS target's files (CA, client certificate) cannot be loaded (with active checks
    // on: only they connect).
    HealthMonitor(HealthConfig config, std::vector<HealthTarget> targets, TransitionCallback on_transition,
                  HealthMonitorOptions options = {});
    ~HealthMonitor();  // stop()
    HealthMonitor(const HealthMonitor&) = delete;
    HealthMonitor& operator=(const HealthMonitor&) = delete;

    // Starts the health thread; the first round of checks begins at once. Call at most once. Throws
    // std::runtime_error when the loop cannot be set up (nothing is left running then).
    void start();
    // Stops the checks, closes every handle and joins the thread. Idempotent; a no-op before start().
    void stop();
    // After stop(): whether the loop closed with no handle left (uv_loop_close() == 0). False while running;
    // true for a monitor that was never started.
    bool closed_cleanly() const;

    // Any thread: what a shard saw on a real request to `backend`. Meant to be called for every proxied request,
    // so the common case is one relaxed atomic load and no lock: a success (or an uncounted 5xx) is queued only
    // when failures are pending for that backend, since otherwise there is nothing to reset, and nothing is
    // queued for a backend that is down (the decision ignores those). Failures and resetting successes are
    // queued for the health thread under the inbox lock. Ignored for an unknown backend, after stop(), and when
    // passive.consecutive_failures is 0.
    void report_passive(size_t backend, PassiveOutcome outcome);
    // Any thread: the admin API changed whether `backend` takes new requests (drain and disable: false). Queued
    // into the same inbox, so a failure reported after this call is judged with it. Ignored for an unknown
    // backend and after stop().
    void set_takes_new_requests(size_t backend, bool takes);

    // Any thread: a copy of every backend's state, in backend order.
    std::vector<BackendHealth> snapshot() const;
    // Any thread: the health thread's metrics block, its only writer: health_checks_total by result
    // (metrics_result() of each CheckResult) and passive_ejections_total, per backend. It lives as long as the
    // monitor.
    const metrics::ShardMetrics& metrics() const;
    // Any thread: reports that passed report_passive()'s lock-free filter and were queued, so a test can see the
    // filter at work.
    uint64_t passive_reports_queued_for_test() const;
    // The state `backend` starts in, before any transition (its starts_healthy, else config.initial_state): core
    // applies it to the shards' pools before they serve.
    bool initially_healthy(size_t backend) const;

  private:
    std::unique_ptr<detail::MonitorState> impl_;
};

}  // namespace lb::health
