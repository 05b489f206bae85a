#include "pool/algorithms/least_connections.h"

namespace lb::pool {

std::optional<BackendId> LeastConnections::pick(const PickContext& context, const BackendSet& skip) {
    size_t n = context.backends.size();
    if (n == 0) return std::nullopt;
    size_t first = cursor_ % n;
    std::optional<BackendId> best;
    uint64_t best_in_flight = 0;
    uint64_t best_weight = 1;
    PickContext local = context;  // a copy the compiler can keep in registers across the loop
    // O(backends), as nginx's least_conn. Instantiated twice, with and without a skip set, so that the common
    // case (nothing skipped) is a tight loop over two compact arrays.
    auto scan = [&](auto skipped) {
        auto consider = [&](size_t index) {
            auto id = static_cast<BackendId>(index);
            if (skipped(id)) return;
            uint64_t in_flight = local.states[id].in_flight;
            uint64_t weight = local.weight(id);
            // in_flight/weight compared cross-multiplied: exact, and no division. Strictly less, so among equals
            // the first after the cursor wins: that is the round robin between ties.
            if (!best || in_flight * best_weight < best_in_flight * weight) {
                best = id;
                best_in_flight = in_flight;
                best_weight = weight;
            }
        };
        for (size_t index = first; index < n; ++index) consider(index);
        for (size_t index = 0; index < first; ++index) consider(index);
    };
    if (skip.empty()) {
        scan([](BackendId) { return false; });
    } else {
        scan([&](BackendId id) { return skip.contains(id); });
    }
    if (best) cursor_ = *best + 1;
    return best;
}

}  // namespace lb::pool
