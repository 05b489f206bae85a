// State shared by every thread and connection of one DemoBackend. Owned by the DemoBackend, which outlives its
// worker threads (stop() joins them), so connections may hold a reference to it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace lb::demo {

class TlsServerContext;

struct BackendState {
    BackendState(std::string backend_id, bool silent_backend)
        : id(std::move(backend_id)),
          default_body(id + "\n"),
          id_header("X-Backend-Id: " + id + "\r\n"),
          silent(silent_backend) {}

    const std::string id;
    const std::string default_body;  // "<id>\n": the body of a plain request
    const std::string id_header;     // "X-Backend-Id: <id>\r\n", pre-built for every response head
    const bool silent;               // accept connections, never read from them nor answer (DemoBackendOptions)
    // HTTPS when set: the DemoBackend's context, set before its threads start and unchanged while they run.
    const TlsServerContext* tls = nullptr;

    // Written by the loop threads, read from anywhere. Also the source of connection serials (X-Conn-Id).
    std::atomic<uint64_t> connections_accepted{0};
    std::atomic<int64_t> connections_open{0};
    std::atomic<uint64_t> requests_served{0};
    // Added to every response's delay: makes this backend slow as a whole (tests of latency-aware balancing).
    std::atomic<uint64_t> extra_delay_ms{0};
    // Backpressure, as seen from inside: a connection stops reading while the peer does not read what it is sent
    // (echo=body with a long write queue, or pipelined input piling up behind a response in progress).
    std::atomic<uint64_t> backpressure_stops{0};      // times a connection stopped reading for that reason
    std::atomic<int64_t> connections_held_back{0};    // connections not reading for that reason right now
    std::atomic<uint64_t> write_queue_peak_bytes{0};  // the longest libuv write queue any connection had
    // TLS: handshakes completed (of which resumed sessions) and connections whose handshake or TLS stream failed.
    std::atomic<uint64_t> tls_handshakes{0};
    std::atomic<uint64_t> tls_resumed{0};
    std::atomic<uint64_t> tls_failures{0};
};

}  // namespace lb::demo
