// `access_log:` in lb.yaml, as plain data: config/ reads it, core/ and the writer use it.
#pragma once

#include <string>
#include <string_view>

namespace lb::access_log {

enum class Format { json, text };

// The word `path:` takes for lb's standard output (a service manager's journal, a container's log).
inline constexpr std::string_view kStdout = "stdout";

struct AccessLogConfig {
    bool enabled = false;  // on when lb.yaml has an `access_log:` section
    std::string path;      // a file, opened for appending, or kStdout
    Format format = Format::json;
    bool operator==(const AccessLogConfig&) const = default;
};

}  // namespace lb::access_log
