// `listen: unix:PATH`: lb accepts clients on a Unix domain socket, through the real binary and a real client
// (curl --unix-socket). The socket file is lb's: a stale one is replaced at start, a live one or another kind of
// file is refused, a reload on the same path keeps the socket, and lb removes the file when it exits.
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
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The directory write_temp_file() uses: short enough for a socket path (108 bytes at most).
std::string temp_dir() {
    std::string probe = write_temp_file("dir-probe", "");
    return probe.substr(0, probe.rfind('/'));
}

bool is_socket(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

ino_t inode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_ino;
}

// A socket bound to `path`; listening or not. Closed on destruction (the file stays, as a dead process's would).
struct BoundUnixSocket {
    BoundUnixSocket(const std::string& path, bool listening) {
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        if (listening) REQUIRE(::listen(fd, 8) == 0);
    }
    ~BoundUnixSocket() { ::close(fd); }
    int fd = -1;
};

std::string unix_config(const std::string& socket_path, uint16_t backend_port, unsigned workers = 2) {
    return "listen: unix:" + socket_path + "\nworkers: " + std::to_string(workers) +
           "\nbackends:\n  - 127.0.0.1:" + std::to_string(backend_port) +
           "\nadmin:\n  enabled: false\nhealth:\n  enabled: false\n";
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}

// The body curl gets for GET / through the socket, or curl's error.
std::string curl_unix(const std::string& socket_path, const std::string& target = "/") {
    CommandResult result =
        run_command("curl -sS --max-time 10 --unix-socket '" + socket_path + "' 'http://lb" + target + "' 2>&1");
    return result.output;
}

// An lb process on a Unix socket, started once it has logged that it listens there.
struct UnixLb {
    UnixLb(const std::string& socket_path, const std::string& config)
        : config_path(write_temp_file("unix.yaml", config)),
          log_path(write_temp_file("unix.log", "")),
          process({LB_BINARY, "-c", config_path}, log_path) {
        wait_for_log("listening on unix:" + socket_path);
    }

    void wait_for_log(const std::string& text, size_t times = 1) {
        wait_until([&] { return count_of(read_file(log_path), text) >= times || !process.running(); },
                   "lb logs what it waits for, or exits");
        INFO(read_file(log_path));
        REQUIRE(count_of(read_file(log_path), text) >= times);
    }

    void reload(const std::string& config) {
        size_t outcomes = count_of(read_file(log_path), "reloaded ") + count_of(read_file(log_path), "reload failed");
        write_temp_file("unix.yaml", config);
        process.signal(SIGHUP);
        wait_until(
            [&] {
                std::string log = read_file(log_path);
                return count_of(log, "reloaded ") + count_of(log, "reload failed") > outcomes;
            },
            "lb logs the reload's outcome");
    }

    std::string config_path;
    std::string log_path;
    Process process;
};

}  // namespace

TEST_CASE("lb serves clients on a Unix socket and removes the socket file when it exits", "[unix]") {
    StartedBackend b1("b1");
    const std::string socket_path = temp_dir() + "/serve.sock";
    UnixLb lb(socket_path, unix_config(socket_path, b1.port()));

    CHECK(is_socket(socket_path));
    for (int i = 0; i < 5; ++i) CHECK(curl_unix(socket_path) == "b1\n");
    CHECK(curl_unix(socket_path, "/?echo=headers").find("X-Forwarded-Proto: http") != std::string::npos);

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
    CHECK_FALSE(exists(socket_path));
}

TEST_CASE("a reload on the same Unix socket keeps it, and one to another path moves it", "[unix][reload]") {
    StartedBackend b1("b1");
    StartedBackend b2("b2");
    const std::string socket_path = temp_dir() + "/reload.sock";
    UnixLb lb(socket_path, unix_config(socket_path, b1.port()));
    const ino_t inode = inode_of(socket_path);
    CHECK(curl_unix(socket_path) == "b1\n");

    // Same path, more workers, another backend: the new generation takes over the very socket, and the old one,
    // once drained, leaves the file to it.
    lb.reload(unix_config(socket_path, b2.port(), 3));
    lb.wait_for_log("generation 2 listening on unix:" + socket_path + " with 3 workers");
    lb.wait_for_log("configuration generation 1 drained");
    CHECK(inode_of(socket_path) == inode);
    for (int i = 0; i < 6; ++i) CHECK(curl_unix(socket_path) == "b2\n");

    // Another path: the new one is bound, the old one is closed and its file removed.
    const std::string moved_path = temp_dir() + "/moved.sock";
    lb.reload(unix_config(moved_path, b2.port()));
    lb.wait_for_log("generation 3 listening on unix:" + moved_path);
    CHECK_FALSE(exists(socket_path));
    CHECK(curl_unix(moved_path) == "b2\n");

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
    CHECK_FALSE(exists(moved_path));
}

TEST_CASE("a stale socket file is replaced at start, and a live socket or another file is left alone", "[unix]") {
    StartedBackend b1("b1");
    const std::string dir = temp_dir();

    SECTION("a socket nothing accepts on, as a killed lb leaves behind, is replaced") {
        const std::string socket_path = dir + "/stale.sock";
        { BoundUnixSocket dead(socket_path, false); }
        REQUIRE(is_socket(socket_path));
        UnixLb lb(socket_path, unix_config(socket_path, b1.port()));
        CHECK(curl_unix(socket_path) == "b1\n");
        lb.process.signal(SIGTERM);
        CHECK(lb.process.wait() == 0);
    }

    SECTION("a socket another process accepts on is refused, and keeps working") {
        const std::string socket_path = dir + "/live.sock";
        BoundUnixSocket live(socket_path, true);
        CommandResult result = run_command(std::string(LB_BINARY) + " -c " +
                                           write_temp_file("live.yaml", unix_config(socket_path, b1.port())) + " 2>&1");
        CHECK(result.exit_code == 1);
        CHECK(result.output.find("cannot listen on unix:" + socket_path +
                                 ": Address already in use (another process accepts on it)") != std::string::npos);
        CHECK(is_socket(socket_path));
        ::unlink(socket_path.c_str());
    }

    SECTION("a file that is not a socket is refused and not touched") {
        const std::string path = write_temp_file("not-a-socket", "precious");
        CommandResult result = run_command(std::string(LB_BINARY) + " -c " +
                                           write_temp_file("file.yaml", unix_config(path, b1.port())) + " 2>&1");
        CHECK(result.exit_code == 1);
        CHECK(result.output.find("cannot listen on unix:" + path + ": the path exists and is not a socket") !=
              std::string::npos);
        CHECK(read_file(path) == "precious");
    }
}

TEST_CASE("lb --check names file and line for a bad Unix socket path", "[unix][config]") {
    auto check = [](const std::string& listen) {
        std::string path = write_temp_file("check.yaml", "listen: " + listen + "\nbackends: [127.0.0.1:9001]\n");
        CommandResult result = run_command(std::string(LB_BINARY) + " --check -c " + path + " 2>&1");
        CHECK(result.exit_code == 1);
        return result.output.substr(result.output.find(path) + path.size());
    };
    CHECK(check("\"unix:\"") == ":1:9: 'listen': invalid address 'unix:': the socket path after 'unix:' is empty\n");
    const std::string long_path = "/tmp/" + std::string(103, 'a');
    CHECK(check("unix:" + long_path) ==
          ":1:9: 'listen': invalid address 'unix:" + long_path +
              "': the socket path is 108 bytes long; a Unix socket path holds at most 107\n");
    CHECK(check("unix:/run/lb/") ==
          ":1:9: 'listen': invalid address 'unix:/run/lb/': the socket path names a directory\n");

    std::string good = write_temp_file("good.yaml", "listen: unix:/run/lb.sock\nbackends: [127.0.0.1:9001]\n");
    CHECK(run_command(std::string(LB_BINARY) + " --check -c " + good).exit_code == 0);
}
