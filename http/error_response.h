// The responses lb itself sends when it cannot forward: one status per ProxyError, a short body that says
// what happened, and Connection: close (the connection ends after it).
#pragma once

#include <string_view>

#include "http/proxy_error.h"

namespace lb::http {

int status_for(ProxyError error);

// The complete response bytes (status line, headers, body). Static storage: valid forever.
std::string_view error_response(ProxyError error);

}  // namespace lb::http
