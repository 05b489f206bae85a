// At most one log line per interval for a recurring event (a dead backend failing thousands of requests a second, a
// worker out of descriptors), with a count of the lines held back. One per event source, owned by one thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace lb::base {

class LogThrottle {
  public:
    explicit LogThrottle(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}

    // True when a line may be written now; `suppressed` is then the number of events held back since the last
    // line. False (and the event is counted) otherwise.
    bool allow(uint64_t now_ms, uint64_t& suppressed) {
        if (logged_once_ && now_ms - last_ms_ < interval_ms_) {
            ++held_back_;
            return false;
        }
        logged_once_ = true;
        last_ms_ = now_ms;
        suppressed = held_back_;
        held_back_ = 0;
        return true;
    }

  private:
    uint64_t interval_ms_;
    uint64_t last_ms_ = 0;
    uint64_t held_back_ = 0;
    bool logged_once_ = false;
};

// The same for an event source shared by threads (one backend seen failing by every worker): at most one line per
// interval for the whole process, not one per thread. Lock-free; an event that is not logged costs one atomic add.
// Threads may pass times from different loops' clocks (uv_now() of each shard: one monotonic source, cached at
// slightly different moments): a time a little behind the last line's counts as within the interval.
class SharedLogThrottle {
  public:
    explicit SharedLogThrottle(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
    SharedLogThrottle(const SharedLogThrottle&) = delete;
    SharedLogThrottle& operator=(const SharedLogThrottle&) = delete;

    // As LogThrottle::allow; any thread.
    bool allow(uint64_t now_ms, uint64_t& suppressed) {
        uint64_t last = last_ms_.load(std::memory_order_relaxed);
        // Of the threads that find the interval over, the one that moves last_ms_ writes the line.
        if ((last != kNever && now_ms < last + interval_ms_) ||
            !last_ms_.compare_exchange_strong(last, now_ms, std::memory_order_relaxed)) {
            held_back_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        suppressed = held_back_.exchange(0, std::memory_order_relaxed);
        return true;
    }

  private:
    static constexpr uint64_t kNever = UINT64_MAX;
    const uint64_t interval_ms_;
    std::atomic<uint64_t> last_ms_{kNever};
    std::atomic<uint64_t> held_back_{0};
};

}  // namespace lb::base
