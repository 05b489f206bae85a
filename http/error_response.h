// The shape of the responses lb itself sends when it cannot forward: a status, a short text/plain body that says
// what happened, and Connection: close (the connection ends after it). Which status for what is core's table
// (core/proxy/outcome.h).
#pragma once

#include <string>
#include <string_view>

namespace lb::http {

std::string format_error_response(int status, std::string_view reason, std::string_view message);

}  // namespace lb::http
