#include "http/error_response.h"

#include <fmt/format.h>

#include "http/parse_error.h"

namespace lb::http {

std::string format_error_response(int status, std::string_view reason, std::string_view message) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status,
        reason, message.size(), message);
}

std::string_view to_string(ParseError error) {
    switch (error) {
        case ParseError::none:
            return "none";
        case ParseError::malformed:
            return "malformed";
        case ParseError::uri_too_long:
            return "uri_too_long";
        case ParseError::headers_too_large:
            return "headers_too_large";
        case ParseError::body_too_large:
            return "body_too_large";
        case ParseError::unsupported_version:
            return "unsupported_version";
    }
    return "unknown";
}

}  // namespace lb::http
