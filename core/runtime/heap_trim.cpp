#include "core/runtime/heap_trim.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lb::core {

HeapTrimmer::HeapTrimmer(uv_loop_t& loop) : timer_(new uv_timer_t) {
    uv_timer_init(&loop, timer_);
    uv_timer_start(timer_, &HeapTrimmer::on_tick, kIntervalMs, kIntervalMs);
    // The control loop must not stay alive for the trimmer alone.
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

HeapTrimmer::~HeapTrimmer() {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
}

void HeapTrimmer::on_tick(uv_timer_t*) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    if (worth_trimming(mallinfo2().fordblks)) malloc_trim(0);
#endif
}

}  // namespace lb::core
