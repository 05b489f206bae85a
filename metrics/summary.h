// A few numbers read off a snapshot for people rather than for Prometheus: a latency quantile estimated from a
// histogram's buckets, and a backend's responses and server errors summed over methods and codes. The status page
// (/status) shows them; /metrics exports the raw series instead and leaves the arithmetic to PromQL.
#pragma once

#include <cstdint>
#include <optional>

#include "metrics/snapshot.h"

namespace lb::metrics {

// The q-quantile (0 <= q <= 1, clamped) of the observations in `histogram`, in seconds, estimated as PromQL's
// histogram_quantile() does: linear interpolation inside the bucket the rank falls in, the first bucket starting at
// 0. A rank in the +Inf bucket answers the highest finite bound (10 s): the histogram knows nothing above it.
// Nothing when the histogram is empty.
std::optional<double> histogram_quantile(const HistogramSnapshot& histogram, double q);

// Responses received from the backend, every method and code.
uint64_t backend_responses(const BackendSnapshot& backend);
// Those with a 5xx status: what the status page calls the backend's errors. Failed connects and timeouts are not
// responses; they show in lb_errors_total by kind, not per backend.
uint64_t backend_server_errors(const BackendSnapshot& backend);

}  // namespace lb::metrics
