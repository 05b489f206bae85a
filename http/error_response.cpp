#include "http/error_response.h"

#include <fmt/format.h>

#include <array>
#include <string>

namespace lb::http {

namespace {

struct ErrorText {
    int status;
    std::string_view reason;
    std::string_view message;
};

constexpr ErrorText text_for(ProxyError error) {
    switch (error) {
        case ProxyError::bad_request:
            return {400, "Bad Request", "lb: the request is malformed\n"};
        case ProxyError::client_timeout:
            return {408, "Request Timeout", "lb: the request header section was not received in time\n"};
        case ProxyError::body_too_large:
            return {413, "Content Too Large", "lb: the request body is larger than this server accepts\n"};
        case ProxyError::uri_too_long:
            return {414, "URI Too Long", "lb: the request target is too long\n"};
        case ProxyError::headers_too_large:
            return {431, "Request Header Fields Too Large", "lb: the request header section is too large\n"};
        case ProxyError::upstream_unreachable:
            return {502, "Bad Gateway", "lb: no backend could be reached\n"};
        case ProxyError::bad_response:
            return {502, "Bad Gateway", "lb: the backend sent an invalid response\n"};
        case ProxyError::no_backend:
            return {503, "Service Unavailable", "lb: no backend is available to serve this request\n"};
        case ProxyError::upstream_timeout:
            return {504, "Gateway Timeout", "lb: the backend did not respond in time\n"};
        case ProxyError::none:
            break;
    }
    return {500, "Internal Server Error", "lb: internal error\n"};
}

constexpr size_t kErrorCount = static_cast<size_t>(ProxyError::upstream_timeout) + 1;

std::array<std::string, kErrorCount> build_responses() {
    std::array<std::string, kErrorCount> out;
    for (size_t i = 0; i < kErrorCount; ++i) {
        ErrorText t = text_for(static_cast<ProxyError>(i));
        out[i] = fmt::format(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", t.status,
            t.reason, t.message.size(), t.message);
    }
    return out;
}

}  // namespace

std::string_view to_string(ProxyError error) {
    switch (error) {
        case ProxyError::none:
            return "none";
        case ProxyError::bad_request:
            return "bad_request";
        case ProxyError::client_timeout:
            return "client_timeout";
        case ProxyError::body_too_large:
            return "body_too_large";
        case ProxyError::uri_too_long:
            return "uri_too_long";
        case ProxyError::headers_too_large:
            return "headers_too_large";
        case ProxyError::upstream_unreachable:
            return "upstream_unreachable";
        case ProxyError::bad_response:
            return "bad_response";
        case ProxyError::no_backend:
            return "no_backend";
        case ProxyError::upstream_timeout:
            return "upstream_timeout";
    }
    return "unknown";
}

int status_for(ProxyError error) { return text_for(error).status; }

std::string_view error_response(ProxyError error) {
    static const std::array<std::string, kErrorCount> responses = build_responses();
    return responses[static_cast<size_t>(error)];
}

}  // namespace lb::http
