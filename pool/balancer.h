// The selection-algorithm interface. An algorithm proposes; the ShardPool applies eligibility around it.
// No I/O, no clock, no randomness of its own: anything of that kind arrives in PickContext, so a test that
// fixes the context fixes the answer.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "pool/backend.h"
#include "pool/balancer_options.h"
#include "pool/random_source.h"

namespace lb::pool {

// Everything an algorithm may consult for one pick. Built by the ShardPool (or a test) for each request.
struct PickContext {
    std::span<const Backend> backends{};     // the snapshot the balancer was built for
    std::span<const BackendState> states{};  // this shard's state for each backend, same indexes
    std::chrono::nanoseconds now{0};         // the caller's monotonic clock; only its differences matter
    RandomSource* random = nullptr;          // never null when an algorithm that draws is asked to pick
    std::string_view hash_key{};             // the request's consistent-hash key; empty when it has none
    // This shard's effective weight for each backend, never 0; the ShardPool fills it from Backend::weight, and
    // a per-shard adjustment (slow start) would change it there. Empty: Backend::weight is used. A compact
    // array rather than Backend's field because O(backends) scans read it for every backend.
    std::span<const uint32_t> weights{};

    // The weight an algorithm should use. Never 0, so algorithms may compare cross-multiplied loads without
    // special cases.
    uint32_t weight(BackendId id) const {
        return weights.empty() ? std::max<uint32_t>(backends[id].weight, 1) : weights[id];
    }
};

// One selection algorithm, owned by one shard and used only from that shard's loop. Built for one backend
// snapshot (see make_balancer); a new snapshot gets a new balancer.
class Balancer {
  public:
    virtual ~Balancer() = default;
    // Proposes a backend not in `skip`, or nothing when every backend is in `skip`. An algorithm must not
    // return nothing while a backend outside `skip` exists: the pool relies on that to tell "all full" from
    // "none left". It may update its own state (cursors, weights) as if the proposal were taken; the pool
    // refuses a proposal only when it is full, which the algorithm cannot see coming.
    virtual std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) = 0;
    // Learns from what happened to a request sent to `backend`.
    virtual void on_result(BackendId backend, const Result& result) {
        (void)backend;
        (void)result;
    }
};

// Builds the algorithm `options.algorithm` for `backends`, which is read during this call only (algorithms
// copy what they need). `shard_seed` spreads shards apart: rotation start points and tie-breaking differ per
// shard, while consistent_hash ignores it so that every shard sends a key to the same backend. Returns nullptr
// for a name not in balancer_names(); options that fail check_balancer_options() are clamped to usable values
// rather than rejected. Call it on the shard's own loop or before the shard starts; the result is the shard's.
std::unique_ptr<Balancer> make_balancer(const BalancerOptions& options, std::span<const Backend> backends,
                                        uint64_t shard_seed);

}  // namespace lb::pool
