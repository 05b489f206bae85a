#include "metrics/summary.h"

#include <algorithm>

namespace lb::metrics {

std::optional<double> histogram_quantile(const HistogramSnapshot& histogram, double q) {
    const uint64_t count = histogram.count();
    if (count == 0) return std::nullopt;
    q = std::clamp(q, 0.0, 1.0);
    const double rank = q * static_cast<double>(count);
    uint64_t below = 0;  // observations in the buckets before bucket i
    for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) {
        const uint64_t in_bucket = histogram.buckets[i];
        // An empty bucket holds no rank, not even rank 0 (q = 0 is the lower end of the first non-empty bucket).
        if (in_bucket == 0 || static_cast<double>(below + in_bucket) < rank) {
            below += in_bucket;
            continue;
        }
        if (i == HistogramBuckets::kBounds) break;  // +Inf
        const double lower = i == 0 ? 0.0 : static_cast<double>(HistogramBuckets::kUpperNs[i - 1]);
        const double upper = static_cast<double>(HistogramBuckets::kUpperNs[i]);
        const double fraction = (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
        return (lower + (upper - lower) * fraction) / 1e9;
    }
    return static_cast<double>(HistogramBuckets::kUpperNs.back()) / 1e9;
}

uint64_t backend_responses(const BackendSnapshot& backend) {
    uint64_t total = 0;
    for (uint64_t n : backend.requests_total) total += n;
    return total;
}

uint64_t backend_server_errors(const BackendSnapshot& backend) {
    uint64_t total = 0;
    for (size_t method = 0; method < kLabelCount<MethodLabel>; ++method) {
        for (size_t code = 0; code < kLabelCount<CodeLabel>; ++code) {
            // Exact codes and the "5xx" class alike: every label value that starts with '5'.
            if (CodeLabel::values[code].front() != '5') continue;
            total += backend.requests_total[method * kLabelCount<CodeLabel> + code];
        }
    }
    return total;
}

}  // namespace lb::metrics
