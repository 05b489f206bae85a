// The standard Prometheus process metrics, read from /proc/self. This is the only I/O in metrics/, kept here so the
// rest of the module stays pure and its tests exact.
#pragma once

#include <cstdint>
#include <optional>

namespace lb::metrics {

// Each field is absent when its source could not be read or parsed (no /proc, e.g. in some sandboxes); the
// exposition then leaves that metric out rather than report a made-up zero.
struct ProcessStats {
    std::optional<double> cpu_seconds;              // process_cpu_seconds_total: user + system time
    std::optional<uint64_t> resident_memory_bytes;  // process_resident_memory_bytes
    std::optional<uint64_t> virtual_memory_bytes;   // process_virtual_memory_bytes
    std::optional<uint64_t> open_fds;               // process_open_fds
    std::optional<uint64_t> max_fds;                // process_max_fds: the soft RLIMIT_NOFILE
    std::optional<double> start_time_seconds;       // process_start_time_seconds: since the Unix epoch
};

// Any thread. Blocking, but procfs reads never wait on a disk: a few microseconds plus one readdir of
// /proc/self/fd, whose cost grows with the number of open descriptors (≈ the open connections). Call it once per
// scrape, on the thread that serves /metrics.
ProcessStats read_process_stats();

}  // namespace lb::metrics
