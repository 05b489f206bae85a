#include "pool/algorithms/peak_ewma.h"

#include <cmath>

namespace lb::pool {

PeakEwma::PeakEwma(std::span<const Backend> backends, const PeakEwmaOptions& options)
    : estimates_(backends.size(), Estimate{static_cast<double>(std::max<int64_t>(options.default_latency.count(), 0))}),
      decay_ns_(static_cast<double>(std::max<int64_t>(options.decay.count(), 1))),
      failure_penalty_ns_(static_cast<double>(std::max<int64_t>(options.failure_penalty.count(), 0))),
      sampler_(backends) {}

double PeakEwma::latency_estimate(BackendId backend, std::chrono::nanoseconds now) const {
    const Estimate& estimate = estimates_[backend];
    if (!estimate.started) return estimate.latency_ns;
    // Reading the estimate is observing a latency of zero (Finagle's `get`): it decays with time since the last
    // update. Computed, not stored, so that looking does not change what the next real observation weighs.
    double elapsed = static_cast<double>(std::max<int64_t>((now - estimate.updated_at).count(), 0));
    return estimate.latency_ns * std::exp(-elapsed / decay_ns_);
}

double PeakEwma::cost(const PickContext& context, BackendId backend) const {
    return latency_estimate(backend, context.now) * (context.states[backend].in_flight + 1) / context.weight(backend);
}

std::optional<BackendId> PeakEwma::pick(const PickContext& context, const BackendSet& skip) {
    if (!started_) {
        // The first `now` seen is where the default latency starts decaying from, as if measured then
        // (Linkerd stamps its default at construction; this class may not read a clock).
        for (Estimate& estimate : estimates_) {
            estimate.updated_at = context.now;
            estimate.started = true;
        }
        started_ = true;
    }
    TwoCandidates candidates = sampler_.draw_two(context, skip);
    if (!candidates.second) return candidates.first;
    BackendId a = *candidates.first;
    BackendId b = *candidates.second;
    return cost(context, b) < cost(context, a) ? b : a;
}

void PeakEwma::on_result(BackendId backend, const Result& result) {
    if (backend >= estimates_.size() || !result.latency || result.outcome == Outcome::cancelled) return;
    double latency_ns = static_cast<double>(std::max<int64_t>(result.latency->count(), 0));
    if (result.outcome != Outcome::success) latency_ns = std::max(latency_ns, failure_penalty_ns_);
    observe(backend, latency_ns, result.now);
}

void PeakEwma::observe(BackendId backend, double latency_ns, std::chrono::nanoseconds now) {
    Estimate& estimate = estimates_[backend];
    if (!estimate.started) {
        estimate.latency_ns = latency_ns;
    } else if (latency_ns > estimate.latency_ns) {
        estimate.latency_ns = latency_ns;  // the peak: taken at once
    } else {
        // The weight of the old estimate falls with the time since it was last refreshed: an old estimate
        // counts for little, one refreshed a moment ago for nearly everything.
        double elapsed = static_cast<double>(std::max<int64_t>((now - estimate.updated_at).count(), 0));
        double keep = std::exp(-elapsed / decay_ns_);
        estimate.latency_ns = estimate.latency_ns * keep + latency_ns * (1 - keep);
    }
    estimate.updated_at = std::max(estimate.updated_at, now);
    estimate.started = true;
}

}  // namespace lb::pool
