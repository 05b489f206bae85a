// One shard's pools (`pools:` in lb.yaml, or the one `default`), each a pool::ShardPool over its own slice of the
// backends with its own algorithm. Outside this class a backend is known by its index in Config::backends (health,
// metrics, idle connections, the admin API); inside each ShardPool by its index in its pool: this class
// translates. Owner loop only.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>
#include <vector>

#include "core/config/config.h"
#include "pool/shard_pool.h"

namespace lb::core {

class ShardPools {
  public:
    // `backends`: every backend in Config::backends order, as the pools share them.
    ShardPools(const Config& config, const std::vector<pool::Backend>& backends, unsigned shard_index);

    size_t count() const { return pools_.size(); }
    size_t backend_count() const { return pool_of_.size(); }
    size_t pool_of(pool::BackendId backend) const { return pool_of_[backend]; }
    const pool::ShardPool& pool(size_t index) const { return *pools_[index].pool; }
    const std::string& name(size_t index) const { return pools_[index].name; }
    // Whether requests to the pool need a consistent-hash key computed (decided once, not per request).
    bool picks_by_hash_key(size_t index) const { return pools_[index].picks_by_hash_key; }

    // ShardPool::choose in pool `index`; `tried` holds what mark_tried() put there. A picked backend is returned
    // by its index in Config::backends.
    pool::Selection choose(size_t index, const pool::BackendSet& tried, std::chrono::nanoseconds now,
                           std::string_view hash_key);
    void mark_tried(pool::BackendSet& tried, pool::BackendId backend) const { tried.insert(local(backend)); }

    // ShardPool's per-backend operations, by index in Config::backends.
    void on_dispatch(pool::BackendId backend) { owner(backend).on_dispatch(local(backend)); }
    void on_finish(pool::BackendId backend, const pool::Result& result) {
        owner(backend).on_finish(local(backend), result);
    }
    void set_healthy(pool::BackendId backend, bool healthy, std::chrono::nanoseconds now = {}) {
        owner(backend).set_healthy(local(backend), healthy, now);
    }
    void set_admin(pool::BackendId backend, const pool::AdminOverride& admin) {
        owner(backend).set_admin(local(backend), admin);
    }
    uint32_t weight(pool::BackendId backend) const { return pools_[pool_of(backend)].pool->weight(local(backend)); }
    const pool::BackendState& state(pool::BackendId backend) const {
        return pools_[pool_of(backend)].pool->state(local(backend));
    }
    const pool::Backend& backend(pool::BackendId backend) const {
        return pools_[pool_of(backend)].pool->backend(local(backend));
    }
    bool panicking(size_t index) const { return pools_[index].pool->panicking(); }
    bool ramping() const;
    // Slow start's tick for every pool; whether any backend still ramps.
    bool advance_slow_start(std::chrono::nanoseconds now);

  private:
    struct Entry {
        std::string name;
        pool::BackendId first = 0;
        std::unique_ptr<pool::ShardPool> pool;
        bool picks_by_hash_key = false;
    };
    pool::ShardPool& owner(pool::BackendId backend) { return *pools_[pool_of(backend)].pool; }
    pool::BackendId local(pool::BackendId backend) const { return backend - pools_[pool_of(backend)].first; }

    std::vector<Entry> pools_;
    std::vector<size_t> pool_of_;  // per backend
};

}  // namespace lb::core
