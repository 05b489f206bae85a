#include "pool/slow_start.h"

#include <algorithm>

namespace lb::pool {

uint32_t slow_start_weight(uint32_t weight, std::chrono::milliseconds elapsed, std::chrono::milliseconds window) {
    if (weight == 0) weight = 1;
    if (window.count() <= 0 || elapsed >= window) return weight;
    // In integers, so that 30% of 10 is 3, not 2.9999.
    auto w = static_cast<uint64_t>(weight);
    auto e = static_cast<uint64_t>(std::max<std::chrono::milliseconds::rep>(elapsed.count(), 0));
    auto win = static_cast<uint64_t>(window.count());
    uint64_t scaled = std::max(w * e / win, w / 10);
    return static_cast<uint32_t>(std::max<uint64_t>(scaled, 1));
}

}  // namespace lb::pool
