// Why a message parser refused its input. Core maps each to what the client is told (core/proxy/outcome.h).
#pragma once

#include <string_view>

namespace lb::http {

enum class ParseError {
    none,
    malformed,            // not valid HTTP/1.x, or ambiguous framing (smuggling shapes), obs-fold included
    uri_too_long,         // request target over HeadLimits::uri_bytes
    headers_too_large,    // header section or trailers over HeadLimits::header_bytes / header_count
    body_too_large,       // body (chunk extensions included) over HeadLimits::body_bytes
    unsupported_version,  // an HTTP version other than 1.0 and 1.1
};

std::string_view to_string(ParseError error);

}  // namespace lb::http
