#include "pool/algorithms/weighted_round_robin.h"

namespace lb::pool {

WeightedRoundRobin::WeightedRoundRobin(size_t backend_count, size_t start)
    : current_(backend_count, 0), start_(backend_count == 0 ? 0 : start % backend_count) {}

std::optional<BackendId> WeightedRoundRobin::pick(const PickContext& context, const BackendSet& skip) {
    size_t n = std::min(context.backends.size(), current_.size());
    std::optional<BackendId> best;
    int64_t best_current = 0;
    int64_t total = 0;
    // Locals, not reads through `context` and `this`: the loop stores int64_t, which may alias a size_t, so the
    // compiler would otherwise reload the spans on every iteration (measured: twice as slow at 1024 backends).
    int64_t* current = current_.data();
    PickContext local = context;
    // O(backends) per pick, as in nginx. Instantiated twice, with and without a skip set, so that the common case
    // (nothing skipped) is a tight loop.
    auto scan = [&](auto skipped) {
        auto consider = [&](size_t index) {
            auto id = static_cast<BackendId>(index);
            if (skipped(id)) return;
            int64_t weight = local.weight(id);
            int64_t raised = current[id] += weight;
            total += weight;
            // Strictly greater: the first in rotation order wins a tie, as in nginx.
            if (!best || raised > best_current) {
                best = id;
                best_current = raised;
            }
        };
        size_t first = std::min(start_, n);
        for (size_t index = first; index < n; ++index) consider(index);
        for (size_t index = 0; index < first; ++index) consider(index);
    };
    if (skip.empty()) {
        scan([](BackendId) { return false; });
    } else {
        scan([&](BackendId id) { return skip.contains(id); });
    }
    if (best) current_[*best] -= total;
    return best;
}

}  // namespace lb::pool
