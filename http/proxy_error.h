// The closed set of data-path errors and the side that caused them. Mapped to a status in one place
// (error_response.h); never thrown.
#pragma once

#include <string_view>

namespace lb::http {

enum class ProxyError {
    none,
    bad_request,           // malformed or ambiguous request (smuggling attempts included)      400, client
    client_timeout,        // header section not received in time                               408, client
    body_too_large,        // request body over the limit                                       413, client
    uri_too_long,          // request target over the limit                                     414, client
    headers_too_large,     // header section over the byte or count limit                        431, client
    upstream_unreachable,  // every attempt to connect or send failed                            502, upstream
    bad_response,          // backend sent something that is not HTTP                             502, upstream
    no_backend,            // no backend eligible                                                 503, proxy
    upstream_timeout,      // backend did not answer in time                                      504, upstream
};

std::string_view to_string(ProxyError error);

}  // namespace lb::http
