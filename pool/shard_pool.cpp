#include "pool/shard_pool.h"

namespace lb::pool {

ShardPool::ShardPool(std::shared_ptr<const std::vector<Backend>> backends, std::unique_ptr<Balancer> balancer)
    : backends_(std::move(backends)), states_(backends_->size()), balancer_(std::move(balancer)) {}

std::optional<BackendId> ShardPool::select(const BackendSet& tried) {
    PickContext context{*backends_, states_};
    BackendSet skip = tried;
    // Each proposal the pool refuses is skipped next time, so this ends after at most size() proposals.
    for (size_t attempt = 0; attempt < backends_->size(); ++attempt) {
        auto id = balancer_->pick(context, skip);
        if (!id) return std::nullopt;
        if (eligible(*id)) return id;
        skip.insert(*id);
    }
    return std::nullopt;
}

void ShardPool::on_dispatch(BackendId id) { ++states_[id].in_flight; }

void ShardPool::on_finish(BackendId id, Outcome outcome) {
    --states_[id].in_flight;
    balancer_->on_result(id, outcome);
}

void ShardPool::set_healthy(BackendId id, bool healthy) { states_[id].healthy = healthy; }

}  // namespace lb::pool
