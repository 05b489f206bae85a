// HealthMonitor against real sockets: in-process demo backends on port 0, dead backends on ports held by a socket
// that refuses connections (RefusingPort), short intervals. Tests wait on what the monitor reports (transitions and
// checks, through condition variables), never on sleeps, and every monitor ends with its health loop closed cleanly
// (MonitorUnderTest).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "demo/demo_backend.h"
#include "health/health_monitor.h"
#include "test/support/test_support.h"

using namespace lb::health;
using namespace std::chrono_literals;
using lb::demo::DemoBackend;
using lb::demo::DemoBackendOptions;
using lb::test::RefusingPort;
using Clock = std::chrono::steady_clock;

namespace {

HealthTarget target(const std::string& name, uint16_t port) {
    HealthTarget t;
    t.name = name;
    auto* in = reinterpret_cast<sockaddr_in*>(&t.address);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return t;
}

// Checks every 50 ms (± 10%), with thresholds small enough for tests and wide enough to see them at work.
HealthConfig fast_config() {
    HealthConfig c;
    c.interval = 50ms;
    c.timeout = 2s;
    c.rise = 2;
    c.fall = 3;
    return c;
}

std::unique_ptr<DemoBackend> start_backend(const std::string& id, uint16_t port = 0) {
    DemoBackendOptions options;
    options.id = id;
    options.port = port;
    auto backend = std::make_unique<DemoBackend>(options);
    backend->start();
    return backend;
}

// Everything the health thread reports, in the order it reported it: checks and transitions interleaved.
class Recorder {
  public:
    struct Event {
        bool is_transition = false;
        size_t backend = 0;
        CheckOutcome check;     // for checks
        Transition transition;  // for transitions
        Clock::time_point at;
    };

    HealthMonitor::TransitionCallback on_transition() {
        return [this](const Transition& t) {
            std::lock_guard lock(mutex_);
            // Built member by member: GCC 12 at -O3 reports the default-constructed `check` of an aggregate
            // initialiser as maybe-uninitialized (a false positive).
            Event event;
            event.is_transition = true;
            event.backend = t.backend;
            event.transition = t;
            event.at = Clock::now();
            events_.push_back(std::move(event));
            changed_.notify_all();
        };
    }

    HealthMonitorOptions options() {
        HealthMonitorOptions o;
        o.seed = 42;
        o.log = [this](std::string_view line) {
            std::lock_guard lock(mutex_);
            log_.emplace_back(line);
        };
        o.on_check = [this](size_t backend, const CheckOutcome& outcome, Millis) {
            std::lock_guard lock(mutex_);
            events_.push_back(Event{false, backend, outcome, {}, Clock::now()});
            changed_.notify_all();
        };
        return o;
    }

    // Waits until `n` transitions have arrived and returns all of them. Fails the test after `limit`.
    std::vector<Transition> wait_transitions(size_t n, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lock(mutex_);
        bool ok = changed_.wait_for(lock, limit, [&] { return count(true) >= n; });
        if (!ok) FAIL_CHECK("waited " << limit.count() << " ms for " << n << " transitions, got " << count(true));
        REQUIRE(ok);
        return transitions_locked();
    }

    // Waits until `n` checks of `backend` have completed.
    void wait_checks(size_t n, size_t backend = 0, std::chrono::milliseconds limit = 10s) {
        std::unique_lock lock(mutex_);
        auto done = [&] {
            return static_cast<size_t>(std::count_if(events_.begin(), events_.end(), [&](const Event& e) {
                       return !e.is_transition && e.backend == backend;
                   })) >= n;
        };
        bool ok = changed_.wait_for(lock, limit, done);
        if (!ok) FAIL_CHECK("waited " << limit.count() << " ms for " << n << " checks of backend " << backend);
        REQUIRE(ok);
    }

    std::vector<Event> events() {
        std::lock_guard lock(mutex_);
        return events_;
    }
    std::vector<Transition> transitions() {
        std::lock_guard lock(mutex_);
        return transitions_locked();
    }
    std::vector<std::string> log() {
        std::lock_guard lock(mutex_);
        return log_;
    }
    Clock::time_point transition_time(size_t i) {
        std::lock_guard lock(mutex_);
        for (const Event& e : events_) {
            if (e.is_transition && i-- == 0) return e.at;
        }
        FAIL("no transition " << i);
        return {};
    }

    // The checks of `backend` right before transition `i` that agree with it (passes before an up, failures
    // before a down): how many it took.
    size_t checks_leading_to(size_t i) {
        std::lock_guard lock(mutex_);
        size_t seen = 0;
        for (size_t at = 0; at < events_.size(); ++at) {
            if (!events_[at].is_transition || seen++ != i) continue;
            const Transition& t = events_[at].transition;
            size_t n = 0;
            for (size_t k = at; k-- > 0;) {
                const Event& e = events_[k];
                if (e.is_transition || e.backend != t.backend) continue;
                if (e.check.passed() != t.healthy) break;
                ++n;
            }
            return n;
        }
        return 0;
    }

  private:
    size_t count(bool transitions) const {
        return static_cast<size_t>(std::count_if(events_.begin(), events_.end(),
                                                 [&](const Event& e) { return e.is_transition == transitions; }));
    }
    std::vector<Transition> transitions_locked() const {
        std::vector<Transition> out;
        for (const Event& e : events_) {
            if (e.is_transition) out.push_back(e.transition);
        }
        return out;
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Event> events_;
    std::vector<std::string> log_;
};

// A monitor with its Recorder, started at once (unless asked not to). stop() stops it and checks that its loop
// closed with no handle left; the destructor does the same for a test that did not.
class MonitorUnderTest {
  public:
    enum class Start { now, later };

    MonitorUnderTest(HealthConfig config, std::vector<HealthTarget> targets, Start start = Start::now)
        : monitor_(std::move(config), std::move(targets), recorder.on_transition(), recorder.options()) {
        if (start == Start::now) monitor_.start();
    }
    ~MonitorUnderTest() { stop(); }
    MonitorUnderTest(const MonitorUnderTest&) = delete;
    MonitorUnderTest& operator=(const MonitorUnderTest&) = delete;

    void stop() {
        monitor_.stop();
        CHECK(monitor_.closed_cleanly());
    }
    HealthMonitor* operator->() { return &monitor_; }
    HealthMonitor& monitor() { return monitor_; }

    // What the monitor counted in its metrics block: checks of `backend` by metrics label, and ejections.
    uint64_t checks(size_t backend, lb::metrics::HealthResult result) const {
        return monitor_.metrics()
            .backend(static_cast<uint32_t>(backend))
            .health_checks_total[static_cast<size_t>(result)]
            .load();
    }
    uint64_t all_checks(size_t backend) const {
        uint64_t total = 0;
        for (size_t r = 0; r < lb::metrics::kLabelCount<lb::metrics::HealthResultLabel>; ++r) {
            total += checks(backend, static_cast<lb::metrics::HealthResult>(r));
        }
        return total;
    }
    uint64_t ejections(size_t backend) const {
        return monitor_.metrics().backend(static_cast<uint32_t>(backend)).passive_ejections_total.load();
    }

    Recorder recorder;  // before the monitor: it outlives the health thread's calls into it

  private:
    HealthMonitor monitor_;
};

using lb::metrics::HealthResult;

}  // namespace

TEST_CASE("a stopped backend goes down after `fall` failed checks and comes back after `rise` passes", "[health]") {
    auto backend = start_backend("b1");
    uint16_t port = backend->port();
    MonitorUnderTest m(fast_config(), {target("b1", port)}, MonitorUnderTest::Start::later);
    Recorder& recorder = m.recorder;
    CHECK(m->initially_healthy(0));
    m->start();

    recorder.wait_checks(3);
    CHECK(recorder.transitions().empty());  // healthy from the start: passes change nothing
    // Keep-alive: every check so far went over one connection.
    CHECK(backend->connections_accepted() == 1);

    backend->stop();
    std::vector<Transition> t = recorder.wait_transitions(1);
    CHECK(t[0].backend == 0);
    CHECK_FALSE(t[0].healthy);
    CHECK(t[0].generation == 1);
    CHECK(t[0].cause == TransitionCause::checks);
    CHECK(t[0].reason == "connection refused");
    CHECK(recorder.checks_leading_to(0) == 3);

    backend = start_backend("b1", port);  // the same port: the checks find it again
    t = recorder.wait_transitions(2);
    CHECK(t[1].backend == 0);
    CHECK(t[1].healthy);
    CHECK(t[1].generation == 2);
    CHECK(t[1].cause == TransitionCause::checks);
    CHECK(t[1].reason == "status 200");
    CHECK(recorder.checks_leading_to(1) == 2);

    m.stop();
    CHECK(recorder.transitions().size() == 2);  // only transitions are reported
    std::vector<std::string> log = recorder.log();
    REQUIRE(log.size() == 2);  // each transition logged once
    CHECK(log[0] == "health: backend b1 is down: connection refused (3 consecutive failed checks)");
    CHECK(log[1] == "health: backend b1 is up: status 200 (2 consecutive passed checks)");

    std::vector<BackendHealth> status = m->snapshot();
    REQUIRE(status.size() == 1);
    CHECK(status[0].name == "b1");
    CHECK(status[0].healthy);
    CHECK(status[0].active_healthy);
    CHECK(status[0].generation == 2);
    CHECK(status[0].transition_reason == "status 200");
    REQUIRE(status[0].last_result);
    CHECK(*status[0].last_result == CheckResult::ok);
    CHECK(status[0].last_reason == "status 200");
    // The refused connects are counted as connect errors, not as bad statuses; every check is counted once.
    CHECK(m.checks(0, HealthResult::connect_error) >= 3);
    CHECK(m.checks(0, HealthResult::bad_status) == 0);
    CHECK(m.checks(0, HealthResult::timeout) == 0);
    CHECK(m.checks(0, HealthResult::success) >= 5);
    size_t reported = 0;
    for (const auto& e : recorder.events()) reported += e.is_transition ? 0 : 1;
    CHECK(m.all_checks(0) == reported);
}

TEST_CASE("a check fails on a status outside expected_statuses", "[health]") {
    auto backend = start_backend("b1");
    HealthConfig config = fast_config();
    config.path = "/health?status=500";
    config.fall = 2;
    {
        MonitorUnderTest m(config, {target("b1", backend->port())});
        std::vector<Transition> t = m.recorder.wait_transitions(1);
        CHECK_FALSE(t[0].healthy);
        CHECK(t[0].reason == "status 500");
        CHECK(m.recorder.checks_leading_to(0) == 2);
        m.stop();
        CHECK(m.checks(0, HealthResult::bad_status) >= 2);
        CHECK(m.checks(0, HealthResult::success) == 0);
        CHECK(*m->snapshot()[0].last_result == CheckResult::bad_status);
        CHECK(backend->connections_accepted() == 1);  // an error status does not cost the connection
    }

    // With 500 expected, the same answer passes.
    config.expected_statuses = {StatusRange{500, 500}};
    config.initial_state = InitialState::unhealthy;
    MonitorUnderTest m(config, {target("b1", backend->port())}, MonitorUnderTest::Start::later);
    CHECK_FALSE(m->initially_healthy(0));
    CHECK_FALSE(m->snapshot()[0].healthy);
    m->start();
    std::vector<Transition> t = m.recorder.wait_transitions(1);
    CHECK(t[0].healthy);
    CHECK(t[0].reason == "status 500");
    CHECK(m.recorder.checks_leading_to(0) == 1);  // from the unhealthy start, one first pass is enough
}

TEST_CASE("a response slower than max_response_time fails the check", "[health]") {
    auto backend = start_backend("b1");
    HealthConfig config = fast_config();
    config.path = "/health?delay_ms=250";
    config.max_response_time = 100ms;
    config.fall = 2;
    MonitorUnderTest m(config, {target("b1", backend->port())});

    std::vector<Transition> t = m.recorder.wait_transitions(1);
    CHECK_FALSE(t[0].healthy);
    CHECK_THAT(t[0].reason, Catch::Matchers::StartsWith("response took ") &&
                                Catch::Matchers::EndsWith(" ms, over max_response_time 100 ms"));
    m.stop();
    CHECK(*m->snapshot()[0].last_result == CheckResult::too_slow);
    CHECK(m.checks(0, HealthResult::timeout) == 0);
    CHECK(m.checks(0, HealthResult::bad_status) >= 2);
}

TEST_CASE("a check without a response within the timeout fails as a timeout", "[health]") {
    auto backend = start_backend("b1");
    HealthConfig config = fast_config();
    config.path = "/health?delay_ms=5000";
    config.timeout = 100ms;
    config.fall = 2;
    MonitorUnderTest m(config, {target("b1", backend->port())});

    std::vector<Transition> t = m.recorder.wait_transitions(1);
    CHECK_FALSE(t[0].healthy);
    CHECK(t[0].reason == "timeout after 100 ms");
    m.stop();
    CHECK(m.checks(0, HealthResult::timeout) >= 2);
    CHECK(m.checks(0, HealthResult::bad_status) + m.checks(0, HealthResult::connect_error) == 0);
    std::vector<BackendHealth> status = m->snapshot();
    REQUIRE(status[0].last_result);
    CHECK(*status[0].last_result == CheckResult::timeout);
    // A late response must not be taken for the next check's: each timed-out check closed its connection.
    CHECK(backend->connections_accepted() >= 2);
}

TEST_CASE("passive failures eject a backend at once and its ejection timer brings it back", "[health]") {
    auto b0 = start_backend("b0");
    auto b1 = start_backend("b1");
    HealthConfig config = fast_config();
    config.interval = 1h;  // one round of active checks only: ejection must not wait for them
    config.passive.consecutive_failures = 3;
    // Long enough that the test reports the second round of failures well within one base time of the first
    // ejection's end (the count it doubles by decays after that), on a loaded machine too.
    config.passive.base_ejection_time = 1000ms;
    config.passive.max_ejection_time = 4s;
    MonitorUnderTest m(config, {target("b0", b0->port()), target("b1", b1->port())});
    Recorder& recorder = m.recorder;
    recorder.wait_checks(1, 0);
    recorder.wait_checks(1, 1);

    for (int i = 0; i < 3; ++i) m->report_passive(0, PassiveOutcome::connect_failure);
    std::vector<Transition> t = recorder.wait_transitions(1);
    CHECK(t[0].backend == 0);
    CHECK_FALSE(t[0].healthy);
    CHECK(t[0].cause == TransitionCause::ejection);
    CHECK(t[0].reason == "ejected for 1000 ms after 3 consecutive failures (last: connect failure)");
    CHECK(m->snapshot()[0].ejected);
    CHECK(m->snapshot()[0].active_healthy);

    t = recorder.wait_transitions(2);
    CHECK(t[1].backend == 0);
    CHECK(t[1].healthy);
    CHECK(t[1].cause == TransitionCause::ejection_ended);
    CHECK(t[1].reason == "ejection ended after 1000 ms");
    // libuv timers count whole milliseconds from the loop's cached time: allow a little slack.
    CHECK(recorder.transition_time(1) - recorder.transition_time(0) >= 990ms);

    // Ejected again soon after: twice as long.
    for (int i = 0; i < 3; ++i) m->report_passive(0, PassiveOutcome::reset);
    t = recorder.wait_transitions(3);
    CHECK(t[2].reason == "ejected for 2000 ms after 3 consecutive failures (last: reset)");
    CHECK(m->snapshot()[0].ejection_count == 2);
    CHECK(m.ejections(0) == 2);
    CHECK(m.ejections(1) == 0);

    // Stopping with an ejection timer running leaves nothing behind.
    m.stop();
    CHECK(recorder.transitions().size() == 3);
    for (const auto& tr : recorder.transitions()) CHECK(tr.backend == 0);
}

TEST_CASE("no more than max_ejected_percent of the backends are ejected at once", "[health]") {
    HealthConfig config = fast_config();
    config.enabled = false;  // passive only: the targets are never connected to
    config.passive.consecutive_failures = 2;
    // Longer than the test: the two ejections are still in force whenever the monitor takes the later reports,
    // however slowly this thread gets to send them. How a slot that comes free is used again is decided by the
    // Ejector, tested with its own clock in test_health_decision.cpp.
    config.passive.base_ejection_time = 600s;
    config.passive.max_ejection_time = 600s;
    config.passive.max_ejected_percent = 50;
    std::vector<HealthTarget> targets;
    RefusingPort refusing;
    for (int i = 0; i < 4; ++i) targets.push_back(target("b" + std::to_string(i), refusing.port()));
    MonitorUnderTest m(config, targets);
    Recorder& recorder = m.recorder;

    for (size_t b = 0; b < 4; ++b) {
        m->report_passive(b, PassiveOutcome::connect_failure);
        m->report_passive(b, PassiveOutcome::connect_failure);
    }
    std::vector<Transition> t = recorder.wait_transitions(2);
    CHECK(t[0].backend == 0);
    CHECK(t[1].backend == 1);
    CHECK_FALSE(t[0].healthy);
    CHECK_FALSE(t[1].healthy);
    CHECK(t[1].reason == "ejected for 600000 ms after 2 consecutive failures (last: connect failure)");

    // Backends 2 and 3 reached the threshold too, and are held there: half the pool is out already.
    lb::test::wait_until(
        [&] {
            std::vector<BackendHealth> status = m->snapshot();
            return status[2].passive_failures == 2 && status[3].passive_failures == 2;
        },
        "the monitor took every report");
    std::vector<BackendHealth> status = m->snapshot();
    CHECK(status[0].ejected);
    CHECK(status[1].ejected);
    for (size_t b : {2, 3}) {
        INFO("backend " << b);
        CHECK(status[b].healthy);
        CHECK_FALSE(status[b].ejected);
    }
    m.stop();
    CHECK(recorder.transitions().size() == 2);
    CHECK(m.ejections(0) + m.ejections(1) == 2);
    CHECK(m.ejections(2) + m.ejections(3) == 0);
    for (size_t b = 0; b < 4; ++b) CHECK(m.all_checks(b) == 0);
}

TEST_CASE("passive reports from many threads are all counted: the doorbell coalesces, the inbox does not", "[health]") {
    HealthConfig config = fast_config();
    config.enabled = false;
    config.passive.consecutive_failures = 4000;
    config.passive.base_ejection_time = 1h;
    config.passive.max_ejection_time = 1h;
    RefusingPort refusing;
    // b1 gets no report: it stays healthy, so b0 is not the last healthy backend and may be ejected.
    MonitorUnderTest m(config, {target("b0", refusing.port()), target("b1", refusing.port())},
                       MonitorUnderTest::Start::later);
    // Reports before start() are kept and handled once it runs.
    for (int i = 0; i < 1000; ++i) m->report_passive(0, PassiveOutcome::connect_failure);
    m->report_passive(7, PassiveOutcome::connect_failure);  // no such backend: ignored
    m->start();
    std::vector<std::thread> threads;
    for (int n = 0; n < 3; ++n) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) m->report_passive(0, PassiveOutcome::connect_failure);
        });
    }
    for (auto& thread : threads) thread.join();
    std::vector<Transition> t = m.recorder.wait_transitions(1);
    CHECK(t[0].reason == "ejected for 3600000 ms after 4000 consecutive failures (last: connect failure)");
    m.stop();
    m->report_passive(0, PassiveOutcome::connect_failure);  // after stop: ignored, no crash
    m.stop();                                               // idempotent
    CHECK(m.recorder.transitions().size() == 1);
}

TEST_CASE("report_passive queues only what can change a decision", "[health]") {
    HealthConfig config = fast_config();
    config.enabled = false;
    config.passive.consecutive_failures = 3;
    config.passive.base_ejection_time = 1h;
    config.passive.max_ejection_time = 1h;
    RefusingPort refusing0, refusing1;
    {
        MonitorUnderTest m(config, {target("b0", refusing0.port()), target("b1", refusing1.port())});
        auto queued = [&] { return m->passive_reports_queued_for_test(); };

        // Successes with no failure pending: nothing to reset, nothing queued (the data path's common case).
        for (int i = 0; i < 100; ++i) m->report_passive(0, PassiveOutcome::success);
        CHECK(queued() == 0);
        m->report_passive(0, PassiveOutcome::connect_failure);
        CHECK(queued() == 1);
        m->report_passive(0, PassiveOutcome::success);  // resets the pending failure: queued
        CHECK(queued() == 2);
        for (int i = 0; i < 100; ++i) m->report_passive(0, PassiveOutcome::success);
        m->report_passive(0, PassiveOutcome::status_5xx);  // not a failure without count_5xx
        CHECK(queued() == 2);

        // Successes in between reset the run: five failures but never three in a row.
        for (PassiveOutcome o : {PassiveOutcome::reset, PassiveOutcome::reset, PassiveOutcome::success,
                                 PassiveOutcome::timeout, PassiveOutcome::timeout, PassiveOutcome::status_5xx}) {
            m->report_passive(1, o);
        }
        CHECK(queued() == 8);
        for (int i = 0; i < 3; ++i) m->report_passive(0, PassiveOutcome::connect_failure);
        std::vector<Transition> t = m.recorder.wait_transitions(1);
        CHECK(t[0].backend == 0);  // backend 1's reports were queued first and ejected nothing
        CHECK(m->snapshot()[1].passive_failures == 0);
        // While it is down, reports for it are dropped without the lock.
        for (int i = 0; i < 100; ++i) m->report_passive(0, PassiveOutcome::connect_failure);
        CHECK(queued() == 11);
        m.stop();
        CHECK(m.recorder.transitions().size() == 1);
    }

    // Passive ejection off: nothing is ever queued.
    config.passive.consecutive_failures = 0;
    MonitorUnderTest off(config, {target("b0", refusing0.port())});
    for (int i = 0; i < 100; ++i) off->report_passive(0, PassiveOutcome::connect_failure);
    CHECK(off->passive_reports_queued_for_test() == 0);
}

TEST_CASE("the check request carries the path and Host header, to the override port", "[health]") {
    // A plain blocking server that records what it receives and answers each request with an empty 204.
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    uint16_t port = ntohs(addr.sin_port);
    std::mutex mutex;
    std::string received;
    std::thread server([&] {
        int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) return;
        char buffer[4096];
        std::string pending;
        for (;;) {
            ssize_t n = ::read(fd, buffer, sizeof buffer);
            if (n <= 0) break;
            pending.append(buffer, static_cast<size_t>(n));
            size_t end;
            while ((end = pending.find("\r\n\r\n")) != std::string::npos) {
                {
                    std::lock_guard lock(mutex);
                    received += pending.substr(0, end + 4);
                }
                pending.erase(0, end + 4);
                const char response[] = "HTTP/1.1 204 No Content\r\n\r\n";
                if (::write(fd, response, sizeof response - 1) < 0) break;
            }
        }
        ::close(fd);
    });

    HealthConfig config = fast_config();
    config.interval = 1h;
    config.initial_state = InitialState::unhealthy;
    RefusingPort refusing;
    HealthTarget t = target("10.9.9.9:1234", refusing.port());  // the checks must not go to this port
    t.overrides.port = port;
    t.overrides.path = "/ready?probe=1";
    t.overrides.host = "svc.example";
    MonitorUnderTest m(config, {t});
    std::vector<Transition> transitions = m.recorder.wait_transitions(1);
    CHECK(transitions[0].healthy);
    CHECK(transitions[0].reason == "status 204");
    m.stop();  // closes the connection: the server's read ends
    server.join();
    ::close(listener);
    std::lock_guard lock(mutex);
    CHECK(received ==
          "GET /ready?probe=1 HTTP/1.1\r\nHost: svc.example\r\nUser-Agent: lb-health-check\r\n"
          "Accept: */*\r\n\r\n");
    CHECK(m.recorder.log() ==
          std::vector<std::string>{"health: backend 10.9.9.9:1234 is up: status 204 (1 consecutive passed check)"});
}

TEST_CASE("a response that is not HTTP fails the check as a bad response", "[health]") {
    // A server that answers every connection with bytes that are no status line, then closes.
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    std::thread server([&] {
        int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) return;
        char buffer[4096];
        if (::read(fd, buffer, sizeof buffer) > 0) {
            const char garbage[] = "SSH-2.0-OpenSSH_9.2\r\n";
            (void)!::write(fd, garbage, sizeof garbage - 1);
        }
        ::close(fd);
    });

    HealthConfig config = fast_config();
    config.interval = 1h;
    config.fall = 1;
    MonitorUnderTest m(config, {target("b1", ntohs(addr.sin_port))});
    std::vector<Transition> t = m.recorder.wait_transitions(1);
    CHECK_FALSE(t[0].healthy);
    CHECK_THAT(t[0].reason, Catch::Matchers::StartsWith("invalid response: "));
    m.stop();
    server.join();
    ::close(listener);
    CHECK(*m->snapshot()[0].last_result == CheckResult::bad_response);
    CHECK(m.checks(0, HealthResult::bad_status) == 1);
}

TEST_CASE("stop() with checks, connects and timers in flight leaves no handle open", "[health]") {
    auto slow = start_backend("slow");
    HealthConfig config = fast_config();
    config.path = "/health?delay_ms=30000";
    config.timeout = 60s;
    config.max_response_time = 60s;
    config.passive.consecutive_failures = 1;
    config.passive.base_ejection_time = 1h;
    config.passive.max_ejection_time = 1h;
    RefusingPort refusing;
    MonitorUnderTest m(config, {target("slow", slow->port()), target("dead", refusing.port())});
    m->report_passive(0, PassiveOutcome::timeout);  // an ejection timer running
    m.recorder.wait_transitions(1);
    m.recorder.wait_checks(1, 1);  // the dead one is being checked round after round
    auto before = Clock::now();
    m.stop();
    CHECK(Clock::now() - before < 20s);  // nothing waits for the slow response, 30 s away
    m.stop();

    // Never started: stop() and the destructor have nothing to do.
    MonitorUnderTest idle(config, {target("slow", slow->port())}, MonitorUnderTest::Start::later);
    idle.stop();
    Recorder recorder;
    HealthMonitor never_stopped(config, {target("slow", slow->port())}, recorder.on_transition(), recorder.options());
    never_stopped.start();  // the destructor stops it
}

TEST_CASE("a transition callback is required", "[health]") {
    CHECK_THROWS_AS(HealthMonitor(HealthConfig{}, {}, nullptr), std::invalid_argument);
}
