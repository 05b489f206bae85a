// The process's own limits: its open-file limit, raised at start as nginx and HAProxy do, and what the automatic
// connection limit derives from it.
#pragma once

#include <cstdint>

namespace lb::core {

struct OpenFileLimit {
    uint64_t soft;
    uint64_t hard;
};

// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the limits in force afterwards.
OpenFileLimit raise_open_file_limit();
OpenFileLimit open_file_limit();

// limits.client_connections: auto, for the whole process. Every client connection may hold an upstream one too,
// and some descriptors go to listeners, health checks, the admin listener and logs: half of what remains after a
// reserve, so a full lb never runs out of descriptors on its own connects.
uint32_t auto_client_connections(uint64_t open_files);

}  // namespace lb::core
