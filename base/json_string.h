// JSON strings from bytes that may come from a hostile peer (a request target, a header, a backend's error): the
// access log's JSON lines and the admin listener's JSON share this one escaper.
#pragma once

#include <string>
#include <string_view>

namespace lb::base {

// A JSON string, quotes included. Quotes, backslashes and control characters (DEL too) are escaped as JSON says;
// valid UTF-8 is kept as it is; each byte that is not part of valid UTF-8 becomes the four characters \xHH
// (written "\\xHH"), as the access log's text format shows it, so the output is always valid JSON.
void append_json_string(std::string_view value, std::string& out);
std::string json_string(std::string_view value);

}  // namespace lb::base
