// The routing families of /metrics: responses per route by status class, summed over the shards at scrape time,
// and which pool each backend is in (an info metric to join on, so that per-backend series keep their labels).
// Label values come from the config alone: routes and pools bound the series.
#pragma once

#include <memory>
#include <vector>

#include "core/config/config.h"
#include "metrics/exposition.h"

namespace lb::core {

class Shard;

std::vector<metrics::ExtraFamily> routing_metric_families(const Config& config,
                                                          const std::vector<std::unique_ptr<Shard>>& shards);

}  // namespace lb::core
