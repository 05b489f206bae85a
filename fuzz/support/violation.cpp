#include "fuzz/support/violation.h"

#include <cstdio>
#include <cstdlib>

namespace lb::fuzz {

void report_violation(std::string_view what) {
    std::fprintf(stderr, "\n==lb-fuzz== ORACLE VIOLATION: %.*s\n", static_cast<int>(what.size()), what.data());
    std::fflush(stderr);
    std::abort();
}

std::string escaped(std::string_view bytes, size_t limit) {
    std::string out;
    for (size_t i = 0; i < bytes.size() && i < limit; ++i) {
        auto c = static_cast<unsigned char>(bytes[i]);
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c < 0x20 || c >= 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    if (bytes.size() > limit) out += fmt::format("...({} bytes)", bytes.size());
    return out;
}

}  // namespace lb::fuzz
