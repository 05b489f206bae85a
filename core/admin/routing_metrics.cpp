#include "core/admin/routing_metrics.h"

#include <fmt/format.h>

#include "core/shard/shard.h"

namespace lb::core {

std::vector<metrics::ExtraFamily> routing_metric_families(const Config& config,
                                                          const std::vector<std::unique_ptr<Shard>>& shards) {
    using metrics::ExtraFamily;
    ExtraFamily pools{"lb_backend_pool_info",
                      ExtraFamily::Type::gauge,
                      "Always 1: the pool a backend belongs to, to join per-backend series with, e.g. "
                      "sum by (pool) (rate(lb_backend_requests_total[5m]) * on (backend) group_left (pool) "
                      "lb_backend_pool_info).",
                      {}};
    for (const BackendConfig& backend : config.backends) {
        pools.samples.emplace_back(
            fmt::format("backend=\"{}\",pool=\"{}\"", metrics::escape_label_value(backend.address),
                        metrics::escape_label_value(config.pools[backend.pool].name)),
            1);
    }
    std::vector<ExtraFamily> families{pools};
    if (config.routes.empty()) return families;
    ExtraFamily responses{"lb_route_responses_total",
                          ExtraFamily::Type::counter,
                          "Responses lb sent to clients for requests a route chose (a backend's and lb's own), by the "
                          "route's name (or routes[N]), its pool and the status class.",
                          {}};
    static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t r = 0; r < config.routes.size(); ++r) {
        const RouteConfig& route = config.routes[r];
        for (size_t c = 0; c < std::size(kClasses); ++c) {
            uint64_t n = 0;
            for (const auto& shard : shards) n += shard->route_responses(r, c);
            responses.samples.emplace_back(
                fmt::format("route=\"{}\",pool=\"{}\",code=\"{}\"", metrics::escape_label_value(route.name),
                            metrics::escape_label_value(config.pools[route.pool].name), kClasses[c]),
                static_cast<int64_t>(n));
        }
    }
    families.push_back(std::move(responses));
    return families;
}

}  // namespace lb::core
