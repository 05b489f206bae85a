// The TLS families of /metrics: handshakes per listener by result, resumed ones, versions and ciphers in use, and
// each certificate's expiry (a gauge to alert on before it comes); per TLS backend, handshakes by result and resumed
// ones. Summed over the shards at scrape time.
#pragma once

#include <memory>
#include <vector>

#include "core/config/config.h"
#include "metrics/exposition.h"

namespace lb::core {

class Shard;

std::vector<metrics::ExtraFamily> tls_metric_families(const Config& config,
                                                      const std::vector<std::unique_ptr<Shard>>& shards);

}  // namespace lb::core
