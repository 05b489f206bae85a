// Least connections: the backend with the fewest requests in flight per unit of weight (nginx least_conn,
// HAProxy leastconn). Ties go round robin, so idle backends take turns rather than backend 0 taking them all.
// The counts are this shard's own (BackendState::in_flight): see test_pool_algorithms.cpp for how close that
// comes to a global count.
#pragma once

#include "pool/balancer.h"

namespace lb::pool {

class LeastConnections final : public Balancer {
  public:
    // `start` is where tie-breaking begins, different per shard.
    explicit LeastConnections(size_t start = 0) : cursor_(start) {}
    std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) override;

  private:
    size_t cursor_;  // the scan starts here; moves past each winner
};

}  // namespace lb::pool
