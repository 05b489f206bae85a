#include "pool/algorithms/two_choices.h"

#include <algorithm>

namespace lb::pool {
namespace {

// Rejection draws before falling back to a scan. With a quarter of the backends skipped, four draws all miss
// 0.4% of the time; the scan is O(backends) but only reached then, or when most backends are skipped.
constexpr int kDraws = 4;

constexpr uint64_t kAlways = uint64_t{1} << 32;

}  // namespace

CandidateSampler::CandidateSampler(std::span<const Backend> backends) : backend_count_(backends.size()) {
    auto weight = [](const Backend& backend) { return uint64_t{std::max<uint32_t>(backend.weight, 1)}; };
    bool all_equal = std::all_of(backends.begin(), backends.end(),
                                 [&](const Backend& b) { return weight(b) == weight(backends.front()); });
    if (all_equal) return;

    // Vose: scale each weight so that the average is 1, then pair every under-full column with an over-full one
    // that tops it up. Exact shares up to the 2^-32 rounding of the thresholds.
    size_t n = backends.size();
    double total = 0;
    for (const Backend& backend : backends) total += static_cast<double>(weight(backend));
    std::vector<double> scaled(n);
    std::vector<BackendId> small, large;
    for (size_t i = 0; i < n; ++i) {
        scaled[i] = static_cast<double>(weight(backends[i])) * static_cast<double>(n) / total;
        (scaled[i] < 1.0 ? small : large).push_back(static_cast<BackendId>(i));
    }
    keep_below_.assign(n, kAlways);
    alias_.resize(n);
    for (size_t i = 0; i < n; ++i) alias_[i] = static_cast<BackendId>(i);
    while (!small.empty() && !large.empty()) {
        BackendId under = small.back();
        small.pop_back();
        BackendId over = large.back();
        keep_below_[under] = static_cast<uint64_t>(scaled[under] * static_cast<double>(kAlways));
        alias_[under] = over;
        scaled[over] -= 1.0 - scaled[under];
        if (scaled[over] < 1.0) {
            large.pop_back();
            small.push_back(over);
        }
    }
    // What is left is full up to rounding: always kept (keep_below_ is already kAlways for those).
}

BackendId CandidateSampler::draw_any(const PickContext& context) const {
    if (keep_below_.empty()) return static_cast<BackendId>(context.random->below(backend_count_));
    uint64_t bits = context.random->next();
    // High half picks the column, low half decides between it and its alias: one draw serves both.
    auto column = static_cast<BackendId>(((bits >> 32) * backend_count_) >> 32);
    return (bits & (kAlways - 1)) < keep_below_[column] ? column : alias_[column];
}

std::optional<BackendId> CandidateSampler::draw_one(const PickContext& context, const BackendSet& skip,
                                                    std::optional<BackendId> other) const {
    size_t n = backend_count_;
    auto excluded = [&](BackendId id) { return id == other || skip.contains(id); };
    for (int draw = 0; draw < kDraws; ++draw) {
        BackendId id = draw_any(context);
        if (!excluded(id)) return id;
    }
    // Unweighted, and favouring a backend just after a run of excluded ones: a small skew accepted for a
    // bounded cost in a case that is already unusual.
    size_t start = context.random->below(n);
    for (size_t step = 0; step < n; ++step) {
        size_t index = start + step < n ? start + step : start + step - n;
        auto id = static_cast<BackendId>(index);
        if (!excluded(id)) return id;
    }
    return std::nullopt;
}

TwoCandidates CandidateSampler::draw_two(const PickContext& context, const BackendSet& skip) const {
    TwoCandidates candidates;
    if (backend_count_ == 0) return candidates;
    candidates.first = draw_one(context, skip, std::nullopt);
    if (candidates.first) candidates.second = draw_one(context, skip, candidates.first);
    return candidates;
}

}  // namespace lb::pool
