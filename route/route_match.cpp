#include "route/route_match.h"

#include <llhttp.h>

#include "http/header_rules.h"

namespace lb::route {

namespace {

// "Example.COM:8080" -> "example.com"; "[::1]:80" -> "[::1]"; one trailing dot goes ("example.com." names the same
// host, and nginx drops it too). Written into `host`, whose storage a recycled exchange keeps.
void normalize_host(std::string_view authority, std::string& host) {
    if (authority.starts_with('[')) {
        authority = authority.substr(0, authority.find(']') + 1);
    } else {
        authority = authority.substr(0, authority.find(':'));
    }
    if (authority.ends_with('.')) authority.remove_suffix(1);
    host.assign(authority);
    for (char& c : host) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
}

// For "http://a.example/x?y": the authority "a.example" and the path "/x?y". Origin-form targets have neither.
bool split_absolute_form(std::string_view target, std::string_view& authority, std::string_view& rest) {
    size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || target.starts_with('/')) return false;
    std::string_view after = target.substr(scheme_end + 3);
    size_t path_start = after.find_first_of("/?");
    authority = after.substr(0, path_start);
    if (size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
    rest = path_start == std::string_view::npos ? std::string_view("/") : after.substr(path_start);
    return true;
}

}  // namespace

RouteRequest RouteRequestStorage::take(const http::MessageHead& head) {
    std::string_view target = head.target();
    std::string_view authority;
    std::string_view path_and_query = target;
    if (!split_absolute_form(target, authority, path_and_query)) head.find("host", authority);
    normalize_host(authority, host_);
    return {host_, path_and_query.substr(0, path_and_query.find('?')), llhttp_method_name(head.method), &head};
}

std::string stripped_target(std::string_view target, std::string_view prefix) {
    std::string_view authority;
    std::string_view origin_form = target;
    split_absolute_form(target, authority, origin_form);
    if (!origin_form.starts_with(prefix)) return {};
    std::string_view rest = origin_form.substr(prefix.size());
    // "//evil.example/x" would read as a scheme-relative reference to some backends: one '/' starts the path.
    while (rest.starts_with("//")) rest.remove_prefix(1);
    // An absolute-form target keeps its scheme and authority: they chose the route, and the backend must see the
    // same host (RFC 9112 §3.2.2), not the client's Host field.
    // (A target with neither path nor query, "http://h", has its origin form "/" from outside it.)
    const bool inside = origin_form.data() >= target.data() && origin_form.data() <= target.data() + target.size();
    std::string out(inside ? target.substr(0, static_cast<size_t>(origin_form.data() - target.data())) : target);
    if (!rest.starts_with('/')) out.push_back('/');
    out.append(rest);
    return out;
}

bool host_matches(const RouteMatch& match, std::string_view host) {
    if (match.host.empty()) return true;
    if (!match.host_is_wildcard()) return host == match.host;
    std::string_view suffix = match.wildcard_suffix();
    return host.size() > suffix.size() && host.ends_with(suffix);
}

bool rest_matches(const RouteMatch& match, const RouteRequest& request) {
    if (!match.path.empty() && request.path != match.path) return false;
    if (!match.path_prefix.empty() && !request.path.starts_with(match.path_prefix)) return false;
    if (!match.method.empty() && request.method != match.method) return false;
    for (const HeaderMatch& condition : match.headers) {
        std::string_view value;
        if (request.head == nullptr || !request.head->find(condition.name, value)) return false;
        if (condition.value && value != *condition.value) return false;
    }
    return true;
}

namespace {

bool host_covers(const RouteMatch& earlier, const RouteMatch& later) {
    if (earlier.host.empty()) return true;
    if (later.host.empty()) return false;
    if (!earlier.host_is_wildcard()) return later.host == earlier.host;
    // *.example.com covers a.example.com, *.example.com and *.a.example.com.
    std::string_view suffix = earlier.wildcard_suffix();
    std::string_view named = later.host_is_wildcard() ? later.wildcard_suffix() : std::string_view(later.host);
    return named == suffix ? later.host_is_wildcard() : named.size() > suffix.size() && named.ends_with(suffix);
}

bool path_covers(const RouteMatch& earlier, const RouteMatch& later) {
    if (!earlier.path.empty() && later.path != earlier.path) return false;
    if (!earlier.path_prefix.empty()) {
        const bool exact_inside = !later.path.empty() && later.path.starts_with(earlier.path_prefix);
        const bool prefix_inside = !later.path_prefix.empty() && later.path_prefix.starts_with(earlier.path_prefix);
        if (!exact_inside && !prefix_inside) return false;
    }
    return true;
}

bool headers_cover(const RouteMatch& earlier, const RouteMatch& later) {
    for (const HeaderMatch& condition : earlier.headers) {
        bool implied = false;
        for (const HeaderMatch& other : later.headers) {
            if (!http::equals_ignore_case(condition.name, other.name)) continue;
            if (!condition.value || condition.value == other.value) implied = true;
        }
        if (!implied) return false;
    }
    return true;
}

}  // namespace

bool covers(const RouteMatch& earlier, const RouteMatch& later) {
    if (!earlier.method.empty() && earlier.method != later.method) return false;
    return host_covers(earlier, later) && path_covers(earlier, later) && headers_cover(earlier, later);
}

}  // namespace lb::route
