// Drawing two distinct random backends outside a skip set: the sampling step shared by random_two_choices
// and peak_ewma (Mitzenmacher's "power of two choices").
#pragma once

#include <optional>
#include <vector>

#include "pool/balancer.h"

namespace lb::pool {

struct TwoCandidates {
    std::optional<BackendId> first;   // empty only when every backend is in `skip`
    std::optional<BackendId> second;  // empty when `first` is the only backend outside `skip`
};

// Draws in proportion to Backend::weight (as configured, fixed for the snapshot), so that when load does not
// separate the two candidates (both idle, say) the first draw wins and shares follow the weights, as they would
// with weighted round robin.
class CandidateSampler {
  public:
    explicit CandidateSampler(std::span<const Backend> backends);

    // A few rejection draws, then a scan from a random offset, so the cost stays bounded however large `skip`
    // grows. context.random must be set; context.backends must be the snapshot given to the constructor.
    TwoCandidates draw_two(const PickContext& context, const BackendSet& skip) const;

  private:
    std::optional<BackendId> draw_one(const PickContext& context, const BackendSet& skip,
                                      std::optional<BackendId> other) const;
    BackendId draw_any(const PickContext& context) const;

    size_t backend_count_;
    // Walker's alias method (Vose's construction): draw a backend uniformly, keep it if the draw's low 32 bits
    // are under its threshold, else take its alias. O(1) with one random number and no data-dependent search,
    // which matters because every branch of a binary search on a random point is a coin toss for the CPU.
    // Both empty when all weights are equal: a plain uniform draw is the same thing.
    std::vector<uint64_t> keep_below_;  // out of 2^32; 2^32 means always keep
    std::vector<BackendId> alias_;
};

}  // namespace lb::pool
