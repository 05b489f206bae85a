// At most one log line per interval for a recurring event (a dead backend failing thousands of requests a second, a
// worker out of descriptors), with a count of the lines held back. One per event source, owned by one thread.
#pragma once

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

}  // namespace lb::base
