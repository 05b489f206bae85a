// Slow start (Envoy's slow_start_config, linear, min_weight_percent 10): a backend that has just come back gets a
// share of its weight that grows from a tenth right after the transition to all of it at the end of the window,
// so that a cold backend is not handed its full share of traffic at once. Pure arithmetic; ShardPool applies it.
#pragma once

#include <chrono>
#include <cstdint>

namespace lb::pool {

// `weight` after `elapsed` of a ramp lasting `window`: weight × elapsed / window, but never below a tenth of the
// weight nor below 1 (weight 0 counts as 1). A window of 0, or an elapsed time past it, gives the whole weight.
uint32_t slow_start_weight(uint32_t weight, std::chrono::milliseconds elapsed, std::chrono::milliseconds window);

}  // namespace lb::pool
