#include "pool/algorithms/round_robin.h"

namespace lb::pool {

std::optional<BackendId> RoundRobin::pick(const PickContext& context, const BackendSet& skip) {
    size_t n = context.backends.size();
    for (size_t i = 0; i < n; ++i) {
        auto id = static_cast<BackendId>(cursor_++ % n);
        if (!skip.contains(id)) return id;
    }
    return std::nullopt;
}

}  // namespace lb::pool
