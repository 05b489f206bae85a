// Peak-EWMA, as Finagle and Linkerd do it: each backend's cost is a peak-sensitive, exponentially weighted
// moving average of its latency, times (requests in flight + 1); two random choices, the cheaper wins.
// "Peak-sensitive": a latency above the estimate replaces it at once, one below it is blended in, so a backend
// that slows down loses traffic immediately and wins it back gradually. An estimate that is not refreshed
// decays towards zero, so a backend that stopped being picked is eventually tried again.
#pragma once

#include <vector>

#include "pool/algorithms/two_choices.h"
#include "pool/balancer.h"

namespace lb::pool {

class PeakEwma final : public Balancer {
  public:
    PeakEwma(std::span<const Backend> backends, const PeakEwmaOptions& options);
    std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) override;
    // Success with a latency: that latency is observed. Connect failure, timeout, reset: the failure penalty
    // (or the latency, if longer) is observed. Cancelled, or no latency measured: nothing is learnt.
    void on_result(BackendId backend, const Result& result) override;

    // The estimate for `backend` as seen at `now`, in nanoseconds; exposed for tests and metrics.
    double latency_estimate(BackendId backend, std::chrono::nanoseconds now) const;
    // What pick() compares: the estimate times (in_flight + 1), divided by the weight.
    double cost(const PickContext& context, BackendId backend) const;

  private:
    struct Estimate {
        double latency_ns;
        std::chrono::nanoseconds updated_at{0};
        // Until the first pick there is no `now` to count decay from; the default latency holds until then.
        bool started = false;
    };

    void observe(BackendId backend, double latency_ns, std::chrono::nanoseconds now);

    std::vector<Estimate> estimates_;
    double decay_ns_;
    double failure_penalty_ns_;
    bool started_ = false;
    CandidateSampler sampler_;
};

}  // namespace lb::pool
