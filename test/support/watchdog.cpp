#include "test/support/watchdog.h"

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace lb::test {

struct Watchdog::State {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::chrono::seconds limit{0};
    std::chrono::steady_clock::time_point deadline;
    std::thread thread;
};

Watchdog::Watchdog(std::chrono::seconds limit) : state_(new State) {
    state_->limit = limit;
    state_->deadline = std::chrono::steady_clock::now() + limit;
    state_->thread = std::thread([state = state_] {
        std::unique_lock lock(state->mutex);
        while (!state->done) {
            // Woken early by restart() or the destructor: look again at the (possibly new) deadline.
            if (state->cv.wait_until(lock, state->deadline) == std::cv_status::timeout && !state->done &&
                std::chrono::steady_clock::now() >= state->deadline) {
                std::fprintf(stderr, "watchdog: test still running after %llds, aborting\n",
                             static_cast<long long>(state->limit.count()));
                std::abort();
            }
        }
    });
}

void Watchdog::restart(std::chrono::seconds limit) {
    {
        std::lock_guard lock(state_->mutex);
        state_->limit = limit;
        state_->deadline = std::chrono::steady_clock::now() + limit;
    }
    state_->cv.notify_one();
}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(state_->mutex);
        state_->done = true;
    }
    state_->cv.notify_one();
    state_->thread.join();
    delete state_;
}

}  // namespace lb::test
