// Smooth weighted round robin, exactly as nginx does it (ngx_http_upstream_get_peer): weights 5, 1, 1 give
// a a b a c a a, spreading a heavy backend's turns instead of sending it five requests in a row.
#pragma once

#include <vector>

#include "pool/balancer.h"

namespace lb::pool {

class WeightedRoundRobin final : public Balancer {
  public:
    // `start` rotates which backend wins ties (all weights equal, or the first pick), so shards built with
    // different starts do not send their first requests to the same backend.
    WeightedRoundRobin(size_t backend_count, size_t start = 0);
    std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) override;

  private:
    // nginx's current_weight: grows by the backend's weight on every pick it takes part in and drops by the
    // total of those weights when it wins. Backends in `skip` take no part, so neither gain nor lose.
    std::vector<int64_t> current_;
    size_t start_;
};

}  // namespace lb::pool
