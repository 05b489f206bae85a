// A hang fails loudly instead of stalling CI. Every test case gets a watchdog from the test listener
// (test_case_listener.cpp) with kDefaultWatchdogLimit; a test that needs longer says so with set_watchdog_limit().
#pragma once

#include <chrono>

namespace lb::test {

inline constexpr std::chrono::seconds kDefaultWatchdogLimit{60};

// Aborts the whole test process with a message if still alive after `limit`.
class Watchdog {
  public:
    explicit Watchdog(std::chrono::seconds limit = kDefaultWatchdogLimit);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    // Gives `limit` from now instead (the same thread, so a leak check sees no new one).
    void restart(std::chrono::seconds limit);

  private:
    struct State;
    State* state_;
};

// Gives the running test case `limit` from now, instead of what is left of the default. For the few tests that
// legitimately run long (gigabytes streamed, many threads under a sanitizer); keep it under ctest's timeout
// (test/CMakeLists.txt) so that the watchdog's message is what a hang reports.
void set_watchdog_limit(std::chrono::seconds limit);

}  // namespace lb::test
