// One shard's view of the server pool: the shared backend list, this shard's state for each backend and its own
// balancer. Used only from the owning shard's loop, so nothing here takes a lock.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "pool/balancer.h"

namespace lb::pool {

class ShardPool {
public:
    ShardPool(std::shared_ptr<const std::vector<Backend>> backends, std::unique_ptr<Balancer> balancer);

    // Picks an eligible backend (healthy, not in `tried`), or nothing when none is left.
    std::optional<BackendId> select(const BackendSet& tried);

    // Bookkeeping around a request: dispatch when it is sent to `id`, finish with what happened.
    void on_dispatch(BackendId id);
    void on_finish(BackendId id, Outcome outcome);

    void set_healthy(BackendId id, bool healthy);

    size_t size() const { return backends_->size(); }
    const Backend& backend(BackendId id) const { return (*backends_)[id]; }
    const BackendState& state(BackendId id) const { return states_[id]; }

private:
    bool eligible(BackendId id) const { return states_[id].healthy; }

    std::shared_ptr<const std::vector<Backend>> backends_;
    std::vector<BackendState> states_;
    std::unique_ptr<Balancer> balancer_;
};

}  // namespace lb::pool
