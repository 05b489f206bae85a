// lb as a service: what `cmake --install` puts where, a systemd unit systemd itself accepts, and the sd_notify
// messages systemd's Type=notify waits for (READY=1, RELOADING=1, STOPPING=1), read from a notify socket the test
// owns, as systemd would.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/test_support.h"

using namespace lb::test;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string temp_dir() {
    std::string marker = write_temp_file("service-dir", "");
    return marker.substr(0, marker.rfind('/'));
}

// The datagram socket systemd listens on for a Type=notify service: each sd_notify() is one datagram of
// newline-separated VAR=value fields.
class NotifySocket {
  public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        ::unlink(path.c_str());
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        REQUIRE(path.size() < sizeof address.sun_path);
        std::memcpy(address.sun_path, path.c_str(), path.size());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    // The next message; fails the test when none comes within `limit` (a bound for a hang, not a timing claim).
    std::string next(std::chrono::milliseconds limit = std::chrono::seconds{20}) {
        pollfd readable{fd_, POLLIN, 0};
        int ready = ::poll(&readable, 1, static_cast<int>(limit.count()));
        if (ready != 1) FAIL("no sd_notify message within " << limit.count() << " ms");
        char buffer[4096];
        ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        REQUIRE(n > 0);
        return std::string(buffer, static_cast<size_t>(n));
    }

  private:
    std::string path_;
    int fd_ = -1;
};

bool has_field(const std::string& message, const std::string& field) {
    std::istringstream lines(message);
    for (std::string line; std::getline(lines, line);) {
        if (line == field || line.rfind(field, 0) == 0) return true;
    }
    return false;
}

std::string config_for(uint16_t backend_port) {
    return "listen: 127.0.0.1:0\nworkers: 2\nbackends:\n  - 127.0.0.1:" + std::to_string(backend_port) +
           "\nadmin:\n  enabled: false\nhealth:\n  enabled: false\n";
}

}  // namespace

TEST_CASE("cmake --install puts lb in bin/, lb.yaml in the examples and a unit systemd-analyze verify accepts",
          "[service][install]") {
    std::string prefix = temp_dir() + "/prefix";
    auto install = run_command("cmake --install " LB_BUILD_DIR " --prefix " + prefix + " 2>&1");
    INFO(install.output);
    REQUIRE(install.exit_code == 0);

    std::string binary = prefix + "/bin/lb";
    CHECK(::access(binary.c_str(), X_OK) == 0);
    std::string example = prefix + "/share/doc/lb/examples/lb.yaml";
    CHECK(read_file(example) == read_file(LB_SOURCE_DIR "/lb.yaml"));
    CHECK(read_file(prefix + "/share/doc/lb/examples/lb-alerts.yml") ==
          read_file(LB_SOURCE_DIR "/deploy/prometheus/lb-alerts.yml"));
    // The installed binary accepts the installed example as it stands.
    CHECK(run_command(binary + " --check -c " + example).exit_code == 0);

    std::string unit_path = prefix + "/lib/systemd/system/lb.service";
    std::string unit = read_file(unit_path);
    // The unit names the binary where this install put it, not the prefix the build was configured with.
    CHECK(unit.find("\nExecStart=" + binary + " -c /etc/lb/lb.yaml\n") != std::string::npos);
    CHECK(unit.find("\nType=notify\n") != std::string::npos);
    CHECK(unit.find("\nExecReload=/bin/kill -HUP $MAINPID\n") != std::string::npos);
    CHECK(unit.find("@LB_") == std::string::npos);  // every template variable was replaced

    auto version = run_command("systemd-analyze --version 2>&1");
    if (version.exit_code != 0) {
        WARN("systemd-analyze cannot run here (" << version.output << "): the unit was not verified");
        return;
    }
    // verify loads the unit as systemd would: unknown keys, bad values and a missing executable are reported, on
    // stderr, some only as warnings; so any output at all fails the test.
    auto verify = run_command("systemd-analyze verify " + unit_path + " 2>&1");
    INFO(verify.output);
    CHECK(verify.exit_code == 0);
    CHECK(verify.output.empty());
}

TEST_CASE("lb tells systemd READY=1 once it listens, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM",
          "[service][notify]") {
    lb::demo::DemoBackend backend({});
    backend.start();
    NotifySocket notify(temp_dir() + "/notify.sock");
    RunningLb lb("notify", config_for(backend.port()),
                 {"/usr/bin/env", "NOTIFY_SOCKET=" + temp_dir() + "/notify.sock"});

    std::string ready = notify.next();
    INFO(ready);
    CHECK(has_field(ready, "READY=1"));
    CHECK(has_field(ready, "STATUS=generation 1 listening on 127.0.0.1:" + std::to_string(lb.port())));
    // Ready means serving.
    CHECK(http_get(lb.port(), "/").status == 200);

    SECTION("a reload that takes the new file") {
        lb.process().signal(SIGHUP);
        std::string reloading = notify.next();
        INFO(reloading);
        CHECK(has_field(reloading, "RELOADING=1"));
        CHECK(has_field(reloading, "MONOTONIC_USEC="));
        std::string reloaded = notify.next();
        INFO(reloaded);
        CHECK(has_field(reloaded, "READY=1"));
        CHECK(has_field(reloaded, "STATUS=generation 2 listening on"));
    }
    SECTION("a reload of a file with an error: the status says so, and lb is ready on the old configuration") {
        std::ofstream(lb.config_path()) << "backends: [\n";
        lb.process().signal(SIGHUP);
        CHECK(has_field(notify.next(), "RELOADING=1"));
        std::string kept = notify.next();
        INFO(kept);
        CHECK(has_field(kept, "READY=1"));
        CHECK(has_field(kept, "STATUS=generation 1 listening on"));
        CHECK(kept.find("last reload failed: " + lb.config_path() + ":") != std::string::npos);
        CHECK(http_get(lb.port(), "/").status == 200);
    }

    lb.process().signal(SIGTERM);
    std::string stopping = notify.next();
    INFO(stopping);
    CHECK(has_field(stopping, "STOPPING=1"));
    CHECK(has_field(stopping, "STATUS=Terminated: draining connections"));
    CHECK(lb.process().wait() == 0);
}
