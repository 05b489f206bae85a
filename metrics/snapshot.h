// A scrape's view of the metrics: every block's live values summed into plain numbers. The snapshot structs are
// expanded from the same list as the live ones, so merge() and the exposition cannot miss a field.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "metrics/shard_metrics.h"
#include "metrics/stats.h"

namespace lb::metrics {

struct HistogramSnapshot {
    std::array<uint64_t, HistogramBuckets::kBuckets> buckets{};  // non-cumulative, as stored
    uint64_t sum_ns = 0;

    // Derived, so it always equals the +Inf cumulative bucket.
    uint64_t count() const {
        uint64_t n = 0;
        for (uint64_t b : buckets) n += b;
        return n;
    }
};

template <class Label>
using ValueArray = std::array<uint64_t, kLabelCount<Label>>;
template <class A, class B>
using ValueArray2 = std::array<uint64_t, kLabelCount<A> * kLabelCount<B>>;
template <class Label>
using HistogramSnapshotArray = std::array<HistogramSnapshot, kLabelCount<Label>>;

#define LB_METRICS_COUNTER(name, help) uint64_t name = 0;
#define LB_METRICS_GAUGE(name, merge, help) int64_t name = 0;
#define LB_METRICS_COUNTER_BY(name, Label, help) ValueArray<Label> name{};
#define LB_METRICS_COUNTER_BY2(name, A, B, help) ValueArray2<A, B> name{};
#define LB_METRICS_HISTOGRAM(name, help) HistogramSnapshot name;
#define LB_METRICS_HISTOGRAM_BY(name, Label, help) HistogramSnapshotArray<Label> name{};
struct GlobalSnapshot {
    LB_METRICS_GLOBAL_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                            LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
};
struct BackendSnapshot {
    LB_METRICS_BACKEND_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                             LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
};
#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_COUNTER_BY
#undef LB_METRICS_COUNTER_BY2
#undef LB_METRICS_HISTOGRAM
#undef LB_METRICS_HISTOGRAM_BY

struct Snapshot {
    size_t blocks = 0;  // how many blocks were merged (shards, plus the health loop's if it has one)
    GlobalSnapshot global;
    std::vector<BackendSnapshot> backends;  // index = backend id
};

// Any thread. Sums every block: counters and histograms exactly (each value is read once, with a relaxed load, so a
// scrape concurrent with recording sees each counter at some value it really had, never a torn one, and never less
// than an earlier scrape saw); gauges by their GaugeMerge. Null entries are skipped. Blocks may differ in backend
// count (a reload in progress): the snapshot has the largest, and a block contributes to the backends it has.
// The caller guarantees every block outlives the call.
Snapshot merge(std::span<const ShardMetrics* const> blocks);

}  // namespace lb::metrics
