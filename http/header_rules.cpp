#include "http/header_rules.h"

#include <array>

namespace lb::http {

bool is_hop_by_hop(std::string_view name) {
    static constexpr std::array<std::string_view, 7> kHopByHop = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"};
    for (auto h : kHopByHop) {
        if (equals_ignore_case(h, name)) return true;
    }
    return false;
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

namespace {

bool list_contains(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view item = trim_ows(list.substr(0, comma));
        if (equals_ignore_case(item, token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

}  // namespace

bool connection_lists(const MessageHead& head, std::string_view name) {
    for (size_t i = 0; i < head.field_count(); ++i) {
        auto f = head.field(i);
        if (equals_ignore_case(f.name, "connection") && list_contains(f.value, name)) return true;
    }
    return false;
}

namespace {

bool connection_may_drop(std::string_view name) {
    return !equals_ignore_case(name, "host") && !equals_ignore_case(name, "x-forwarded-for") &&
           !equals_ignore_case(name, "x-forwarded-proto");
}

}  // namespace

bool is_dropped_when_forwarding(const MessageHead& head, std::string_view name) {
    return ForwardingFilter(head).drops(name);
}

bool ForwardingFilter::drops(std::string_view name) const {
    return is_hop_by_hop(name) || equals_ignore_case(name, "content-length") ||
           (has_connection_ && connection_may_drop(name) && connection_lists(head_, name));
}

std::string_view requested_upgrade(const MessageHead& request) {
    if (request.is_http10() || request.declares_body() || request.count("upgrade") != 1) return {};
    if (!connection_lists(request, "upgrade")) return {};
    std::string_view protocols;
    request.find("upgrade", protocols);
    return trim_ows(protocols);
}

ParseError validate_request_head(const MessageHead& head) {
    if (head.method == HTTP_CONNECT) return ParseError::malformed;
    size_t hosts = head.count("host");
    if (hosts > 1 || (hosts == 0 && !head.is_http10())) return ParseError::malformed;
    return ParseError::none;
}

bool is_idempotent(llhttp_method_t method) {
    switch (method) {
        case HTTP_GET:
        case HTTP_HEAD:
        case HTTP_PUT:
        case HTTP_DELETE:
        case HTTP_OPTIONS:
        case HTTP_TRACE:
            return true;
        default:
            return false;
    }
}

}  // namespace lb::http
