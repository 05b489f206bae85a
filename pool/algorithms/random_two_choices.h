// Power of two random choices (Mitzenmacher; Envoy's least_request, nginx's `random two least_conn`): draw two
// backends at random and send to the one with fewer requests in flight per unit of weight. Nearly as even as
// least connections, with O(1) work and no herding onto one "least loaded" backend when counts are stale.
#pragma once

#include "pool/algorithms/two_choices.h"
#include "pool/balancer.h"

namespace lb::pool {

class RandomTwoChoices final : public Balancer {
  public:
    explicit RandomTwoChoices(std::span<const Backend> backends) : sampler_(backends) {}
    std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) override;

  private:
    CandidateSampler sampler_;
};

}  // namespace lb::pool
