#include "metrics/snapshot.h"

#include <algorithm>

namespace lb::metrics {

namespace {

// One overload per kind of field, so the X-macro expansion below is the same line for every metric.
void accumulate(uint64_t& into, const Counter& from) { into += from.load(); }

template <size_t N>
void accumulate(std::array<uint64_t, N>& into, const std::array<Counter, N>& from) {
    for (size_t i = 0; i < N; ++i) into[i] += from[i].load();
}

void accumulate(HistogramSnapshot& into, const Histogram& from) {
    for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) into.buckets[i] += from.bucket(i);
    into.sum_ns += from.sum_ns();
}

template <size_t N>
void accumulate(std::array<HistogramSnapshot, N>& into, const std::array<Histogram, N>& from) {
    for (size_t i = 0; i < N; ++i) accumulate(into[i], from[i]);
}

void accumulate(int64_t& into, const Gauge& from, GaugeMerge merge) {
    const int64_t value = from.load();
    into = merge == GaugeMerge::sum ? into + value : std::max(into, value);
}

#define LB_METRICS_COUNTER(name, help) accumulate(into.name, from.name);
#define LB_METRICS_GAUGE(name, merge, help) accumulate(into.name, from.name, GaugeMerge::merge);
#define LB_METRICS_COUNTER_BY(name, Label, help) accumulate(into.name, from.name);
#define LB_METRICS_COUNTER_BY2(name, A, B, help) accumulate(into.name, from.name);
#define LB_METRICS_HISTOGRAM(name, help) accumulate(into.name, from.name);
#define LB_METRICS_HISTOGRAM_BY(name, Label, help) accumulate(into.name, from.name);

void accumulate(GlobalSnapshot& into, const GlobalStats& from) {
    LB_METRICS_GLOBAL_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                            LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
}

void accumulate(BackendSnapshot& into, const BackendStats& from) {
    LB_METRICS_BACKEND_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                             LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
}

#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_COUNTER_BY
#undef LB_METRICS_COUNTER_BY2
#undef LB_METRICS_HISTOGRAM
#undef LB_METRICS_HISTOGRAM_BY

}  // namespace

Snapshot merge(std::span<const ShardMetrics* const> blocks) {
    Snapshot snapshot;
    size_t backends = 0;
    for (const ShardMetrics* block : blocks) {
        if (block != nullptr) backends = std::max(backends, block->backend_count());
    }
    snapshot.backends.resize(backends);
    for (const ShardMetrics* block : blocks) {
        if (block == nullptr) continue;
        ++snapshot.blocks;
        accumulate(snapshot.global, block->global());
        for (size_t id = 0; id < block->backend_count(); ++id) {
            accumulate(snapshot.backends[id], block->backend(static_cast<BackendIndex>(id)));
        }
    }
    return snapshot;
}

}  // namespace lb::metrics
