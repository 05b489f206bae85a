// One shard's metrics block: the live counters of LB_METRICS_GLOBAL_STATS plus one LB_METRICS_BACKEND_STATS block
// per backend, all written by the owning thread only and read by the scraper with relaxed loads (see stats.h).
//
// Who owns one: every core::Shard holds one and records into it from its loop thread. The health loop holds one
// more (it is a single writer too) for health_checks_total, up and weight when it is the one deciding them; a
// scrape merges all of them (snapshot.h). The block must outlive every scrape that reads it.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "metrics/stats.h"

namespace lb::metrics {

// The live structs, expanded from the one list.
struct alignas(kCacheLine) GlobalStats {
#define LB_METRICS_COUNTER(name, help) Counter name;
#define LB_METRICS_GAUGE(name, merge, help) Gauge name;
#define LB_METRICS_COUNTER_BY(name, Label, help) CounterArray<Label> name;
#define LB_METRICS_COUNTER_BY2(name, A, B, help) CounterArray2<A, B> name;
#define LB_METRICS_HISTOGRAM(name, help) Histogram name;
#define LB_METRICS_HISTOGRAM_BY(name, Label, help) HistogramArray<Label> name;
    LB_METRICS_GLOBAL_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                            LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
};

// Aligned too, so that a shard's backend array never shares a line with another allocation (another shard's).
struct alignas(kCacheLine) BackendStats {
    LB_METRICS_BACKEND_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                             LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_COUNTER_BY
#undef LB_METRICS_COUNTER_BY2
#undef LB_METRICS_HISTOGRAM
#undef LB_METRICS_HISTOGRAM_BY
};

// The recording API is a set of events named after what happened, so the proxy code says "a client connection
// closed" and the block decides which counters and gauges that moves. Every event method:
//   - may be called only from the owning thread;
//   - is a no-op when the block was built with `enabled = false` (see below);
//   - takes durations as integer nanoseconds (uv_hrtime() differences), never reads a clock itself.
//
// The on/off switch is a construction-time bool, not a compile-time macro: the benchmark compares metrics on and off
// with the same binary (one config flag), and the cost when off is one well-predicted branch on a read-only field in
// a line the shard already has. `enabled()` lets the caller also skip its uv_hrtime() calls, which cost more than
// the counters. It cannot change after construction, so gauges never end up unbalanced (an increment recorded
// before a switch, its decrement dropped after it).
class alignas(kCacheLine) ShardMetrics {
  public:
    // `backend_count`: size of the configured backend list; backend indexes passed below must be smaller.
    explicit ShardMetrics(size_t backend_count, bool enabled = true);
    ShardMetrics(const ShardMetrics&) = delete;
    ShardMetrics& operator=(const ShardMetrics&) = delete;

    bool enabled() const { return enabled_; }
    size_t backend_count() const { return backends_.size(); }

    // ---- Client side --------------------------------------------------------------------------------------------
    // A client connection was accepted / its handle closed. Pair them: the active gauge is accepted minus closed.
    void on_client_accepted() {
        if (!enabled_) return;
        global_.client_connections_accepted_total.inc();
        global_.client_connections_active.add(1);
    }
    void on_client_closed() {
        if (!enabled_) return;
        global_.client_connections_active.add(-1);
    }
    // Bytes read from / written to client sockets (as counted by the read callback / write completion).
    void on_client_bytes_received(uint64_t n) {
        if (!enabled_) return;
        global_.client_received_bytes_total.add(n);
    }
    void on_client_bytes_sent(uint64_t n) {
        if (!enabled_) return;
        global_.client_sent_bytes_total.add(n);
    }
    // lb sent a client the final response to a request (1xx interim responses are not counted), a backend's or
    // lb's own error response. `method` is RequestMethodLabel::slot() of the request's method, `status` the code
    // sent.
    void on_response_sent(size_t method, unsigned status) {
        if (!enabled_) return;
        global_.requests_total[method * kLabelCount<StatusLabel> + StatusLabel::slot(status)].inc();
    }
    // A request finished from the client's point of view (its final response complete, error responses included),
    // `duration_ns` after its first byte; `status` is the code sent.
    void on_request_done(unsigned status, uint64_t duration_ns) {
        if (!enabled_) return;
        global_.request_duration_seconds.record(duration_ns);
        global_.request_duration_by_code_seconds[StatusClassLabel::slot(status)].record(duration_ns);
    }
    // A backend answered 101 and the connection became a tunnel / the tunnel ended. Pair them.
    void on_tunnel_opened() {
        if (!enabled_) return;
        global_.tunnels_total.inc();
        global_.tunnels_open.add(1);
    }
    void on_tunnel_closed() {
        if (!enabled_) return;
        global_.tunnels_open.add(-1);
    }
    void on_tunnel_bytes(TunnelDirection direction, uint64_t n) {
        if (!enabled_) return;
        global_.tunnel_bytes_total[static_cast<size_t>(direction)].add(n);
    }
    void on_error(ErrorKind kind) {
        if (!enabled_) return;
        global_.errors_total[static_cast<size_t>(kind)].inc();
    }
    void on_retry() {
        if (!enabled_) return;
        global_.retries_total.inc();
    }
    void on_queue_wait() {
        if (!enabled_) return;
        global_.queue_waits_total.inc();
    }
    void on_resource_exhaustion(ResourceOp op) {
        if (!enabled_) return;
        global_.resource_exhaustion_total[static_cast<size_t>(op)].inc();
    }
    void on_access_log_dropped() {
        if (!enabled_) return;
        global_.access_log_dropped_total.inc();
    }
    void on_accept_paused() {
        if (!enabled_) return;
        global_.accept_pauses_total.inc();
    }

    // ---- Backend side -------------------------------------------------------------------------------------------
    // The backend's final response is complete (1xx interim responses are not recorded). `status` is the code as
    // parsed; `duration_ns` runs from dispatch to this backend (connect included) to the response's last byte.
    void on_backend_response(BackendIndex backend, MethodClass method, unsigned status, uint64_t duration_ns) {
        if (!enabled_) return;
        BackendStats& b = at(backend);
        b.requests_total[static_cast<size_t>(method) * kLabelCount<CodeLabel> + CodeLabel::slot(status)].inc();
        b.response_duration_seconds.record(duration_ns);
    }
    // Upstream connection lifecycle. A connection is active from connect start while a request uses it, idle while
    // parked in the keep-alive pool. Call exactly one of these per transition:
    //   opened: (new) -> active       parked: active -> idle       reused: idle -> active
    //   closed(was_idle): active or idle -> (gone)
    void on_upstream_opened(BackendIndex backend) {
        if (!enabled_) return;
        at(backend).upstream_connections_active.add(1);
    }
    void on_upstream_parked(BackendIndex backend) {
        if (!enabled_) return;
        BackendStats& b = at(backend);
        b.upstream_connections_active.add(-1);
        b.upstream_connections_idle.add(1);
    }
    void on_upstream_reused(BackendIndex backend) {
        if (!enabled_) return;
        BackendStats& b = at(backend);
        b.upstream_connections_idle.add(-1);
        b.upstream_connections_active.add(1);
    }
    void on_upstream_closed(BackendIndex backend, bool was_idle) {
        if (!enabled_) return;
        BackendStats& b = at(backend);
        (was_idle ? b.upstream_connections_idle : b.upstream_connections_active).add(-1);
    }
    void on_passive_ejection(BackendIndex backend) {
        if (!enabled_) return;
        at(backend).passive_ejections_total.inc();
    }
    void on_health_check(BackendIndex backend, HealthResult result) {
        if (!enabled_) return;
        at(backend).health_checks_total[static_cast<size_t>(result)].inc();
    }
    // State gauges, merged with max across blocks (GaugeMerge): set them from whichever single thread decides them.
    void set_backend_up(BackendIndex backend, bool up) {
        if (!enabled_) return;
        at(backend).up.set(up ? 1 : 0);
    }
    void set_backend_weight(BackendIndex backend, uint32_t weight) {
        if (!enabled_) return;
        at(backend).weight.set(weight);
    }

    // ---- Any thread (the scraper) -------------------------------------------------------------------------------
    // Read-only views for merge(); only relaxed loads may be done through them.
    const GlobalStats& global() const { return global_; }
    const BackendStats& backend(BackendIndex backend) const { return backends_[backend]; }

  private:
    BackendStats& at(BackendIndex backend) {
        assert(backend < backends_.size());
        return backends_[backend];
    }

    // Read-only after construction; they share the first line with nothing the shard writes.
    const bool enabled_;
    std::vector<BackendStats> backends_;  // sized once in the constructor, never resized (the scraper reads it)
    GlobalStats global_;                  // alignas(kCacheLine): starts on its own line
};

}  // namespace lb::metrics
