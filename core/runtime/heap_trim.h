// Returns freed heap memory to the system once a second, from the control thread's loop.
//
// A TLS handshake allocates and frees some 40 KiB of record and handshake buffers. glibc keeps freed chunks that
// lie between live ones resident, so after a burst of handshakes every idle TLS connection appeared to cost about
// 1.2 KiB more than its live state (bench/run --tls, idle connections). jemalloc and tcmalloc give such memory
// back on their own after a while; glibc does only on malloc_trim, which this calls when the arenas hold more
// than kTrimAboveBytes free. Each call locks one arena at a time for a few hundred microseconds at most, once a
// second at most, so a worker's allocation may wait that long that rarely: no lock is added on the request path
// otherwise.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>

namespace lb::core {

class HeapTrimmer {
  public:
    static constexpr uint64_t kIntervalMs = 1000;
    static constexpr size_t kTrimAboveBytes = 1024 * 1024;

    explicit HeapTrimmer(uv_loop_t& loop);
    ~HeapTrimmer();  // the loop must run once more afterwards for the close callback
    HeapTrimmer(const HeapTrimmer&) = delete;
    HeapTrimmer& operator=(const HeapTrimmer&) = delete;

    // Whether `free_bytes` held by the allocator are worth a trim. Pure.
    static bool worth_trimming(size_t free_bytes) { return free_bytes > kTrimAboveBytes; }

  private:
    static void on_tick(uv_timer_t* timer);

    uv_timer_t* timer_;  // freed in its close callback
};

}  // namespace lb::core
