// Passive health as an operator meets it on the real binary: a lone backend that dies and comes back is served
// again at once (never ejected), a passed active check ends an ejection, and a dead backend under load costs a log
// line a second, not one per failed attempt.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <memory>

#include "test/support/lb_process.h"
#include "test/support/metrics_text.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::string address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// The backend's `passive_failures` in /status: the field after its name, in its object.
int passive_failures(const RunningLb& lb, uint16_t port) {
    const std::string status = http_get(lb.admin_port(), "/status").body;
    const size_t name = status.find("\"name\":\"" + address(port) + "\"");
    REQUIRE(name != std::string::npos);
    const std::string field = "\"passive_failures\":";
    const size_t at = status.find(field, name);
    REQUIRE(at != std::string::npos);
    return std::atoi(status.c_str() + at + field.size());
}

// The demo backend as a process of its own, so that it can be killed like a crashed server and started again on
// the same port.
class BackendProcess {
  public:
    BackendProcess(const std::string& name, uint16_t port)
        : log_(write_temp_file(name + ".log", "")),
          process_(std::make_unique<Process>(
              std::vector<std::string>{LB_DEMO_BACKEND_BINARY, "--port", std::to_string(port), "--id", name}, log_)) {
        port_ = wait_for_logged_port(log_, "lb-demo-backend " + name + " listening on ");
    }
    uint16_t port() const { return port_; }
    void kill() {
        process_->signal(SIGKILL);
        process_->wait();
    }

  private:
    std::string log_;
    std::unique_ptr<Process> process_;
    uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("a lone backend killed and restarted is served again as soon as it is back: never ejected",
          "[health][passive]") {
    auto backend = std::make_unique<BackendProcess>("lone", 0);
    const uint16_t port = backend->port();
    // Passive ejection as shipped (5 failures eject for 30 s); no active checks to bring it back.
    RunningLb lb("lone-backend", "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - " +
                                     address(port) + "\nhealth:\n  enabled: false\n");
    REQUIRE(http_get(lb.port(), "/").status == 200);

    backend->kill();
    // Many more failures than the threshold, across both workers: every one is a 502 (nowhere else to go).
    for (int i = 0; i < 20; ++i) CHECK(http_get(lb.port(), "/").status == 502);
    CHECK(lb.metric("lb_requests_total{method=\"GET\",code=\"502\"}") == 20);

    // Back on the same port. (The port was free for a moment; another process taking it would fail the start.)
    backend = std::make_unique<BackendProcess>("lone-again", port);
    // The first request after it is back is served: no ejection is waiting to run out.
    for (int i = 0; i < 4; ++i) CHECK(http_get(lb.port(), "/").status == 200);
    CHECK(lb.metric(backend_series("lb_backend_passive_ejections_total", port)) == 0);
    CHECK(lb.metric(backend_series("lb_backend_up", port)) == 1);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a backend left alone by the admin API is not ejected: a drained one does not count as another",
          "[health][passive][admin]") {
    // Two backends: `kept` is drained through the admin API, then `refusing` is all its pool has for new requests.
    // Its refused connects are failures, but ejecting it would leave the pool nothing to send to.
    auto kept = std::make_unique<BackendProcess>("kept", 0);
    RefusingPort refusing;
    const std::string yaml = "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - " +
                             address(kept->port()) + "\n  - " + address(refusing.port()) +
                             "\nhealth:\n  enabled: false\n  passive:\n    consecutive_failures: 2\n"
                             "    base_ejection_time: 1h\n    max_ejection_time: 1h\nretries: 0\n";
    RunningLb lb("drained-not-another", yaml);
    Response drained =
        http_exchange(lb.admin_port(), "POST /backends/" + address(kept->port()) +
                                           "/drain HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(drained.status == 200);
    for (int i = 0; i < 6; ++i) CHECK(http_get(lb.port(), "/").status == 502);
    // The health thread has judged the failures (queued after the drain) once /status counts them: held at the
    // threshold, never ejected. An ejection would have reset the count to 0 and taken the backend down.
    wait_until([&] { return passive_failures(lb, refusing.port()) == 2; }, "the failures to be counted");
    CHECK(lb.metric(backend_series("lb_backend_passive_ejections_total", refusing.port())) == 0);
    CHECK(lb.metric(backend_series("lb_backend_up", refusing.port())) == 1);

    // A reload carries the drain over, and the new generation's health thread (which starts counting from 0) holds
    // `refusing` at the threshold as well.
    REQUIRE(lb.reload(yaml));
    for (int i = 0; i < 6; ++i) CHECK(http_get(lb.port(), "/").status == 502);
    wait_until([&] { return passive_failures(lb, refusing.port()) == 2; }, "the failures to be counted again");
    CHECK(lb.metric(backend_series("lb_backend_passive_ejections_total", refusing.port())) == 0);
    CHECK(lb.metric(backend_series("lb_backend_up", refusing.port())) == 1);

    // Enabled again, `kept` is another backend to fall back on, and the next failures eject `refusing`.
    Response enabled =
        http_exchange(lb.admin_port(), "POST /backends/" + address(kept->port()) +
                                           "/enable HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(enabled.status == 200);
    wait_until(
        [&] {
            http_get(lb.port(), "/");
            return lb.metric(backend_series("lb_backend_passive_ejections_total", refusing.port())) == 1;
        },
        "the refusing backend to be ejected");
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a passed active check ends a passive ejection, and with passed_check_ends_ejection off it runs its time",
          "[health][passive]") {
    const bool ends = GENERATE(true, false);
    INFO("passed_check_ends_ejection: " << ends);
    auto good = std::make_unique<BackendProcess>("good", 0);
    // Every connection to the flaky backend is refused, but its checks go to the good backend's port and pass:
    // passive checks eject it, active checks say it answers.
    RefusingPort refusing;
    const uint16_t flaky = refusing.port();
    RunningLb lb("passed-check",
                 "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - " +
                     address(good->port()) + "\n  - address: " + address(flaky) +
                     "\n    health:\n      port: " + std::to_string(good->port()) +
                     "\nhealth:\n  interval: 50ms\n  passive:\n    consecutive_failures: 2\n"
                     "    base_ejection_time: 1h\n    max_ejection_time: 1h\n    passed_check_ends_ejection: " +
                     (ends ? "true" : "false") + "\n");
    const std::string ejections = backend_series("lb_backend_passive_ejections_total", flaky);
    const std::string up = backend_series("lb_backend_up", flaky);
    const std::string passed = backend_series("lb_backend_health_checks_total", flaky, "result=\"success\"");
    // Refused connects are retried on the good backend: clients see 200 while the flaky one is ejected.
    wait_until(
        [&] {
            CHECK(http_get(lb.port(), "/").status == 200);
            return lb.metric(ejections) >= 1;
        },
        "the flaky backend is ejected");
    if (ends) {
        // An ejection of an hour ends on the next passed check.
        wait_until([&] { return lb.metric(up) == 1; }, "the flaky backend is back");
        lb.wait_for_log("ejection of 3600000 ms ended by a passed check (status 200)");
    } else {
        // Checks pass (three more after the ejection, to be sure some ran while it was on) and change nothing.
        const double before = lb.metric(passed);
        wait_until([&] { return lb.metric(passed) >= before + 3; }, "three more passed checks");
        CHECK(lb.metric(up) == 0);
        CHECK(lb.log().find("ended by a passed check") == std::string::npos);
    }
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a dead backend under load is logged once a second with a count, not once per failed attempt",
          "[health][passive][log]") {
    auto good = std::make_unique<BackendProcess>("alive", 0);
    RefusingPort refusing;
    const uint16_t dead = refusing.port();
    // No ejection: every request tries the dead backend first or second, and the log sees every failure.
    RunningLb lb("throttled-log", "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - " +
                                      address(dead) + "\n  - " + address(good->port()) +
                                      "\nhealth:\n  enabled: false\n  passive:\n    consecutive_failures: 0\n");
    const auto start = std::chrono::steady_clock::now();
    const int requests = 400;
    for (int i = 0; i < requests; ++i) REQUIRE(http_get(lb.port(), "/").status == 200);
    const double failed = lb.metric("lb_errors_total{kind=\"connect_refused\"}");
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
    const size_t lines = count_lines_with(lb.log_path(), "backend " + address(dead) + " connect failed");
    INFO(failed << " failed attempts in " << seconds.count() << " s, " << lines << " lines");
    // Round robin per worker sends about half the requests to the dead backend first.
    CHECK(failed >= requests / 4);
    // One line a second for the whole process (both workers together), the first at once.
    CHECK(lines >= 1);
    CHECK(lines <= static_cast<size_t>(seconds.count()) + 2);
    CHECK(static_cast<double>(lines) < failed);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}
