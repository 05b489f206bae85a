// What a route asks of a request (`match:` in lb.yaml), and what a request offers to be matched: its host, path,
// method and header fields. Pure: no I/O, no config parsing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message_parser.h"

namespace lb::route {

struct HeaderMatch {
    std::string name;                  // compared case-insensitively
    std::optional<std::string> value;  // exact; none: the field only has to be present
    bool operator==(const HeaderMatch&) const = default;
};

// Every condition set must hold; a RouteMatch with none set matches every request.
struct RouteMatch {
    // Lower-case, no port. "*.example.com" matches any name that ends in ".example.com" (a.example.com,
    // a.b.example.com), not example.com itself, as nginx and Envoy wildcards do.
    std::string host{};
    std::string path_prefix{};  // compared with the raw path, before any '?' (as HAProxy path_beg, Envoy prefix)
    std::string path{};         // the raw path exactly
    std::string method{};       // upper-case, exactly as the request line has it
    std::vector<HeaderMatch> headers{};
    bool operator==(const RouteMatch&) const = default;

    bool host_is_wildcard() const { return host.starts_with("*."); }
    // ".example.com" for "*.example.com".
    std::string_view wildcard_suffix() const { return std::string_view(host).substr(1); }
};

// The parts of a request that routes look at, taken once per request.
struct RouteRequest {
    std::string_view host;  // lower-case, port and one trailing dot removed; empty when the request names none
    std::string_view path;  // the target's path, up to '?'; "*" for OPTIONS *
    std::string_view method;
    const http::MessageHead* head = nullptr;  // for header conditions
};

// Holds the lower-cased host a RouteRequest points into.
class RouteRequestStorage {
  public:
    // The host is the absolute-form target's authority when there is one (RFC 9112 §3.2.2), else Host.
    RouteRequest take(const http::MessageHead& head);

  private:
    std::string host_;
};

// Whether `host` (already lower-case, no port) satisfies the route's host condition.
bool host_matches(const RouteMatch& match, std::string_view host);
// Whether the conditions other than host hold.
bool rest_matches(const RouteMatch& match, const RouteRequest& request);
inline bool matches(const RouteMatch& match, const RouteRequest& request) {
    return host_matches(match, request.host) && rest_matches(match, request);
}

// The request target with `prefix` taken off the front of its path (`strip_prefix:`), as the backend should see
// it: "/static/app.js?v=1" less "/static" is "/app.js?v=1"; a path left empty or without its leading '/' gets one,
// and one left with several leading '/' keeps one. An absolute-form target keeps its scheme and authority. Empty
// when the path does not start with `prefix`.
std::string stripped_target(std::string_view target, std::string_view prefix);

// Whether every request `later` matches is also matched by `earlier`, so a route with `later` after one with
// `earlier` can never be chosen. Conservative: true only when it is certain.
bool covers(const RouteMatch& earlier, const RouteMatch& later);

}  // namespace lb::route
