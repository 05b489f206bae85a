#include "core/runtime/process_limits.h"

#include <sys/resource.h>

#include <algorithm>

namespace lb::core {

namespace {

constexpr uint64_t kReservedDescriptors = 128;

}  // namespace

OpenFileLimit open_file_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return {1024, 1024};
    return {limit.rlim_cur, limit.rlim_max};
}

OpenFileLimit raise_open_file_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    return open_file_limit();
}

uint32_t auto_client_connections(uint64_t open_files) {
    uint64_t usable = open_files > 2 * kReservedDescriptors ? open_files - kReservedDescriptors : open_files / 2;
    return static_cast<uint32_t>(std::clamp<uint64_t>(usable / 2, 1, 10'000'000));
}

}  // namespace lb::core
