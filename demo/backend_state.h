// State shared by every thread and connection of one DemoBackend. Owned by the DemoBackend, which outlives its
// worker threads (stop() joins them), so connections may hold a reference to it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace lb::demo {

struct BackendState {
    explicit BackendState(std::string backend_id)
        : id(std::move(backend_id)), default_body(id + "\n"), id_header("X-Backend-Id: " + id + "\r\n") {}

    const std::string id;
    const std::string default_body;  // "<id>\n": the body of a plain request
    const std::string id_header;     // "X-Backend-Id: <id>\r\n", pre-built for every response head

    // Written by the loop threads, read from anywhere. Also the source of connection serials (X-Conn-Id).
    std::atomic<uint64_t> connections_accepted{0};
    std::atomic<uint64_t> requests_served{0};
    // Added to every response's delay: makes this backend slow as a whole (tests of latency-aware balancing).
    std::atomic<uint64_t> extra_delay_ms{0};
};

}  // namespace lb::demo
