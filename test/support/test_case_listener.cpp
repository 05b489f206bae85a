// What every test case gets without asking (STYLE 15: "every test has a watchdog", "every loop test ends with a
// leak check"): a watchdog for the whole case, and a check that each run of its body gave back what it took.
//
// The leak check compares, before and after each run of the body (a case with SECTIONs or GENERATE runs once per
// path): the open file descriptors (a libuv loop that was not closed keeps its epoll and eventfd descriptors, a
// forgotten socket or pipe its own), the threads of the process, and child processes not yet reaped. What
// differs fails the case, with what leaked. Every object a test creates is destroyed by then, so an
// asynchronously closing thing must have been waited for (a server shut down, a monitor stopped, a thread
// joined), as it must be in production.
//
// Linked into every test executable as an object library (test/CMakeLists.txt), so that the registration below
// is not dropped by the linker as an unreferenced archive member.
// The reporter interfaces (TestEventListenerBase) are compiled in only on request.
#define CATCH_CONFIG_EXTERNAL_INTERFACES

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "test/support/watchdog.h"

// libuv, where the test links it. Declared weak and by hand (uv.h is not included) so that a test without libuv
// still links: there they are null.
extern "C" {
size_t uv_loop_size(void) __attribute__((weak));
int uv_loop_init(void* loop) __attribute__((weak));
int uv_loop_close(void* loop) __attribute__((weak));
}

namespace lb::test {

namespace {

std::unique_ptr<Watchdog> current_watchdog;

// What a library opens once per process and keeps: not a test's leak. libuv opens a pipe the first time any
// loop is created (its signal lock, uv__signal_global_once_init) and keeps it open; a loop made and closed
// before the first test takes that cost where the leak check does not look.
void open_process_lifetime_resources() {
    if (uv_loop_size && uv_loop_init && uv_loop_close) {
        void* loop = std::malloc(uv_loop_size());
        if (loop && uv_loop_init(loop) == 0) uv_loop_close(loop);
        std::free(loop);
    }
}

// Entry names of a /proc directory, except . and ..
std::set<std::string> entries(const char* path) {
    std::set<std::string> names;
    if (DIR* dir = ::opendir(path)) {
        int own = ::dirfd(dir);
        while (dirent* entry = ::readdir(dir)) {
            std::string name = entry->d_name;
            if (name == "." || name == ".." || name == std::to_string(own)) continue;
            names.insert(name);
        }
        ::closedir(dir);
    }
    return names;
}

std::string fd_target(const std::string& fd) {
    char buffer[512];
    ssize_t n = ::readlink(("/proc/self/fd/" + fd).c_str(), buffer, sizeof buffer - 1);
    return n < 0 ? std::string("?") : std::string(buffer, static_cast<size_t>(n));
}

std::string thread_name(const std::string& tid) {
    std::string name = "?";
    if (FILE* f = std::fopen(("/proc/self/task/" + tid + "/comm").c_str(), "r")) {
        char buffer[64];
        if (std::fgets(buffer, sizeof buffer, f)) {
            name = buffer;
            if (!name.empty() && name.back() == '\n') name.pop_back();
        }
        std::fclose(f);
    }
    return name;
}

struct Resources {
    std::map<std::string, std::string> fds;  // fd -> what it refers to
    std::set<std::string> threads;           // thread ids

    static Resources now() {
        Resources r;
        for (const std::string& fd : entries("/proc/self/fd")) r.fds[fd] = fd_target(fd);
        r.threads = entries("/proc/self/task");
        return r;
    }
};

// Children of this process that have not been reaped: running ones, and zombies (which this reaps, so that
// one leak is reported once).
std::string unreaped_children() {
    std::ostringstream out;
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            out << "child " << pid << " exited but was never waited for; ";
            continue;
        }
        if (pid == 0) out << "child processes still running; ";
        break;
    }
    return out.str();
}

// Threads may take a moment to disappear from /proc after join() returns on some kernels; the descriptors of a
// loop closed on another thread are gone once that thread was joined. So compare again, briefly, before failing.
std::string leaks_since(const Resources& before) {
    std::ostringstream out;
    for (int attempt = 0;; ++attempt) {
        out.str("");
        Resources after = Resources::now();
        for (const auto& [fd, target] : after.fds) {
            auto it = before.fds.find(fd);
            if (it == before.fds.end() || it->second != target) out << "fd " << fd << " -> " << target << "; ";
        }
        for (const std::string& tid : after.threads) {
            if (!before.threads.count(tid)) out << "thread " << tid << " (" << thread_name(tid) << "); ";
        }
        if (out.str().empty() || attempt == 100) break;
        ::usleep(10'000);
    }
    out << unreaped_children();
    return out.str();
}

class TestCaseListener : public Catch::TestEventListenerBase {
  public:
    using TestEventListenerBase::TestEventListenerBase;

    void testRunStarting(const Catch::TestRunInfo& info) override {
        TestEventListenerBase::testRunStarting(info);
        open_process_lifetime_resources();
    }

    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        TestEventListenerBase::testCaseStarting(info);
        current_watchdog = std::make_unique<Watchdog>(kDefaultWatchdogLimit);
    }

    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        current_watchdog.reset();
        TestEventListenerBase::testCaseEnded(stats);
    }

    // The outermost section is one run of the test case's body.
    void sectionStarting(const Catch::SectionInfo& info) override {
        TestEventListenerBase::sectionStarting(info);
        if (depth_++ == 0) before_ = Resources::now();
    }

    void sectionEnded(const Catch::SectionStats& stats) override {
        if (--depth_ == 0) {
            std::string leaks = leaks_since(before_);
            // Still inside the run (its totals are added up after this), so the failure counts against the case.
            if (!leaks.empty()) FAIL_CHECK("the test case leaked: " << leaks);
        }
        TestEventListenerBase::sectionEnded(stats);
    }

  private:
    int depth_ = 0;
    Resources before_;
};

CATCH_REGISTER_LISTENER(TestCaseListener)

}  // namespace

void set_watchdog_limit(std::chrono::seconds limit) {
    if (current_watchdog) current_watchdog->restart(limit);
}

}  // namespace lb::test
