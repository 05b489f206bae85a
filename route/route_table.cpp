#include "route/route_table.h"

#include <algorithm>
#include <limits>

namespace lb::route {

RouteTable::RouteTable(std::vector<RouteMatch> routes) : routes_(std::move(routes)) {
    for (size_t i = 0; i < routes_.size(); ++i) {
        const RouteMatch& match = routes_[i];
        const auto index = static_cast<uint32_t>(i);
        if (match.host.empty()) {
            any_host_.push_back(index);
        } else if (match.host_is_wildcard()) {
            std::string suffix(match.wildcard_suffix());
            by_wildcard_suffix_[suffix].push_back(index);
            wildcard_suffix_lengths_.push_back(suffix.size());
        } else {
            by_host_[match.host].push_back(index);
        }
    }
    std::sort(wildcard_suffix_lengths_.begin(), wildcard_suffix_lengths_.end());
    wildcard_suffix_lengths_.erase(std::unique(wildcard_suffix_lengths_.begin(), wildcard_suffix_lengths_.end()),
                                   wildcard_suffix_lengths_.end());
}

std::optional<size_t> RouteTable::find(const RouteRequest& request) const {
    // Each list holds routes whose host condition this request meets, in config order; the first route of each
    // list whose other conditions hold is a candidate, and the earliest candidate wins.
    size_t best = std::numeric_limits<size_t>::max();
    auto consider = [&](const std::vector<uint32_t>& list) {
        for (uint32_t index : list) {
            if (index >= best) return;
            if (rest_matches(routes_[index], request)) {
                best = index;
                return;
            }
        }
    };
    const std::string_view host = request.host;
    if (!host.empty()) {
        if (auto it = by_host_.find(host); it != by_host_.end()) consider(it->second);
        for (size_t length : wildcard_suffix_lengths_) {
            if (length >= host.size()) break;
            std::string_view suffix = host.substr(host.size() - length);
            if (suffix.front() != '.') continue;
            if (auto it = by_wildcard_suffix_.find(suffix); it != by_wildcard_suffix_.end()) consider(it->second);
        }
    }
    consider(any_host_);
    if (best == std::numeric_limits<size_t>::max()) return std::nullopt;
    return best;
}

std::vector<ShadowedRoute> find_shadowed_routes(const std::vector<RouteMatch>& routes) {
    // Quadratic, but run once per config load, and a config with thousands of routes still checks in milliseconds.
    std::vector<ShadowedRoute> shadowed;
    for (size_t later = 1; later < routes.size(); ++later) {
        for (size_t earlier = 0; earlier < later; ++earlier) {
            if (covers(routes[earlier], routes[later])) {
                shadowed.push_back({later, earlier});
                break;
            }
        }
    }
    return shadowed;
}

}  // namespace lb::route
