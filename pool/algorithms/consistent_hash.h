// Consistent hashing with a Maglev lookup table (Eisenbud et al., NSDI 2016; Envoy's `maglev`): a request's
// hash key picks a table slot and the slot names its backend, O(1) per pick. Every backend fills slots in the
// order of its own permutation, derived from its name only, so every shard, and every snapshot that keeps the
// backend, builds the same table: the same key reaches the same backend from any shard.
//
// When a backend leaves:
// - ineligible (unhealthy, draining, full, tried) while still in the snapshot: the table is unchanged and a key
//   whose slot names a skipped backend probes further slots, in an order fixed by the key. Only that backend's
//   keys move, spread evenly over the others, and they come back when it does.
// - removed from the snapshot: the new table gives its slots to the others. Its keys move (about 1/N of all
//   keys), plus a small Maglev disruption among the rest; test_pool_algorithms.cpp measures both.
#pragma once

#include <string_view>
#include <vector>

#include "pool/balancer.h"

namespace lb::pool {

class ConsistentHash final : public Balancer {
  public:
    // `table_size` is raised to the next prime at least as large as it and as the backend count, so a table
    // always exists (check_balancer_options() rejects a non-prime before this). Weights set each backend's
    // share of slots, Envoy-style: a backend of half the largest weight takes a turn every second round.
    ConsistentHash(std::span<const Backend> backends, uint32_t table_size);

    // The backend for context.hash_key; a random one (context.random) when the key is empty, since a request
    // without a key has nothing to be consistent about.
    std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) override;

    size_t table_size() const { return table_.size(); }
    // How many table slots `backend` owns: its share is slots / table_size().
    size_t slots_of(BackendId backend) const { return slot_counts_[backend]; }

    static bool is_prime(uint64_t n);
    static uint64_t next_prime(uint64_t n);  // the smallest prime >= n
    // The key hash used by pick(); stable across processes and builds (no std::hash).
    static uint64_t hash_key(std::string_view key);

  private:
    // A key whose slot names a skipped backend, or backends without any slot, when the probes run out.
    std::optional<BackendId> fall_back(const PickContext& context, const BackendSet& skip, uint64_t key_hash) const;

    std::vector<BackendId> table_;
    std::vector<uint32_t> slot_counts_;
    std::vector<uint64_t> name_hashes_;  // for fall_back's rendezvous choice
};

}  // namespace lb::pool
