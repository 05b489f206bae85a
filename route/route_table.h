// The routes of a config, indexed so that finding the first one a request matches looks at the routes its host
// could select, not at every route: routes with an exact host sit in a hash table by host, wildcard hosts in one
// by suffix, and only routes without a host condition are tried for every request. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "route/route_match.h"

namespace lb::route {

class RouteTable {
  public:
    RouteTable() = default;
    explicit RouteTable(std::vector<RouteMatch> routes);

    // The index of the first route (in config order) whose match holds; none when no route does.
    std::optional<size_t> find(const RouteRequest& request) const;
    size_t size() const { return routes_.size(); }
    const RouteMatch& route(size_t index) const { return routes_[index]; }

  private:
    struct StringHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using IndexLists = std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>>;

    std::vector<RouteMatch> routes_;
    IndexLists by_host_;              // "api.example.com" -> routes naming that host, ascending
    IndexLists by_wildcard_suffix_;   // ".example.com" -> routes naming *.example.com, ascending
    std::vector<uint32_t> any_host_;  // routes without a host condition, ascending
    // The lengths of the wildcard suffixes present: a request's host is looked up once per length, not once per
    // label.
    std::vector<size_t> wildcard_suffix_lengths_;
};

// A route that can never be chosen, and the earlier route that takes all of its requests.
struct ShadowedRoute {
    size_t route = 0;
    size_t by = 0;
};
std::vector<ShadowedRoute> find_shadowed_routes(const std::vector<RouteMatch>& routes);

}  // namespace lb::route
