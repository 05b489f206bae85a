// What a fuzz target does when an oracle does not hold: print what was wrong and abort, so libFuzzer saves the
// input as a crash.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace lb::fuzz {

[[noreturn]] void report_violation(std::string_view what);

template <typename... Args>
[[noreturn]] void violation(fmt::format_string<Args...> format, Args&&... args) {
    report_violation(fmt::format(format, std::forward<Args>(args)...));
}

// `bytes` printable on one line: control characters and non-ASCII as \r, \n, \xNN; cut after `limit` bytes.
std::string escaped(std::string_view bytes, size_t limit = 400);

}  // namespace lb::fuzz
