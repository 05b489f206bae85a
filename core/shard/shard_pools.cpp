#include "core/shard/shard_pools.h"

namespace lb::core {

ShardPools::ShardPools(const Config& config, const std::vector<pool::Backend>& backends, unsigned shard_index) {
    pool_of_.resize(backends.size());
    for (size_t p = 0; p < config.pools.size(); ++p) {
        const PoolConfig& pool = config.pools[p];
        auto slice = std::make_shared<const std::vector<pool::Backend>>(
            backends.begin() + static_cast<std::ptrdiff_t>(pool.first_backend),
            backends.begin() + static_cast<std::ptrdiff_t>(pool.first_backend + pool.backend_count));
        for (size_t b = pool.first_backend; b < pool.first_backend + pool.backend_count; ++b) pool_of_[b] = p;
        // Each shard seeds its balancer differently (rotation start, random choices), so shards do not all hit
        // the same backend together after a start or a change.
        const pool::BalancerOptions& options = config.balancer_of(p);
        auto balancer = pool::make_balancer(options, *slice, shard_index);
        pools_.push_back(
            {pool.name, static_cast<pool::BackendId>(pool.first_backend),
             std::make_unique<pool::ShardPool>(slice, std::move(balancer),
                                               pool::ShardPoolOptions{.seed = shard_index,
                                                                      .shard_index = shard_index,
                                                                      .shard_count = config.workers,
                                                                      .panic = config.health.panic,
                                                                      .slow_start = config.health.slow_start}),
             options.algorithm == "consistent_hash"});
    }
}

pool::Selection ShardPools::choose(size_t index, const pool::BackendSet& tried, std::chrono::nanoseconds now,
                                   std::string_view hash_key) {
    Entry& entry = pools_[index];
    pool::Selection selection = entry.pool->choose(tried, now, hash_key);
    if (selection.picked()) selection.backend += entry.first;
    return selection;
}

bool ShardPools::ramping() const {
    for (const Entry& entry : pools_) {
        if (entry.pool->ramping()) return true;
    }
    return false;
}

bool ShardPools::advance_slow_start(std::chrono::nanoseconds now) {
    bool ramping = false;
    for (Entry& entry : pools_) ramping = entry.pool->advance_slow_start(now) || ramping;
    return ramping;
}

}  // namespace lb::core
