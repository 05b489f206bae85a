#include "pool/algorithms/random_two_choices.h"

namespace lb::pool {

std::optional<BackendId> RandomTwoChoices::pick(const PickContext& context, const BackendSet& skip) {
    TwoCandidates candidates = sampler_.draw_two(context, skip);
    if (!candidates.second) return candidates.first;
    BackendId a = *candidates.first;
    BackendId b = *candidates.second;
    // in_flight / weight, cross-multiplied. A tie (both idle, typically) goes to the first draw, which was
    // weighted: that keeps shares proportional to weight at low load.
    uint64_t load_a = uint64_t{context.states[a].in_flight} * context.weight(b);
    uint64_t load_b = uint64_t{context.states[b].in_flight} * context.weight(a);
    return load_b < load_a ? b : a;
}

}  // namespace lb::pool
