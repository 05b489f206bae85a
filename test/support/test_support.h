// Helpers for tests that talk to real servers over loopback: a blocking client that parses responses, child
// processes, and port utilities. Readiness is always found by connecting, never by sleeping.
#pragma once

#include <sys/types.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "test/support/watchdog.h"

namespace lb::test {

using namespace std::chrono_literals;

struct CaseInsensitiveLess {
    bool operator()(const std::string& a, const std::string& b) const;
};

struct Response {
    int status = 0;
    std::string version;  // "HTTP/1.1"
    std::string head;     // status line and headers, as received
    std::multimap<std::string, std::string, CaseInsensitiveLess> headers;
    std::string body;  // de-chunked
    bool chunked = false;

    std::string header(const std::string& name) const;  // "" when absent
    bool has_header(const std::string& name) const;
};

// A blocking TCP client on 127.0.0.1 with a timeout on every read.
class Client {
  public:
    explicit Client(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds{15});
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void send(std::string_view bytes);
    void shutdown_write();
    // Reads one response; `head_request` when it answers a HEAD (no body whatever the headers say).
    // Interim 1xx responses are returned like any other.
    Response read_response(bool head_request = false);
    // Reads until the peer closes; returns what arrived. Fails the test on timeout.
    std::string read_until_closed();
    // True when the peer has closed (EOF or reset) within the timeout and nothing else arrived.
    bool wait_closed();
    int fd() const { return fd_; }

  private:
    std::string take(size_t n);
    std::string take_line();
    bool fill();  // false on EOF

    int fd_ = -1;
    std::string buffered_;
};

// A request kept in flight for as long as the test wants, with no clock involved: a POST whose body lacks its last
// byte, which the demo backend (it answers once a body is whole) cannot answer until finish() sends that byte.
class HeldRequest {
  public:
    // Sends the head and all but the last body byte to 127.0.0.1:`port`. `target` may carry demo controls.
    explicit HeldRequest(uint16_t port, const std::string& target = "/", const std::string& extra_headers = "");
    // Sends the last byte and reads the response.
    Response finish();
    Client& client() { return client_; }

  private:
    Client client_;
};

// Sends `request` on a new connection and reads one response.
Response http_exchange(uint16_t port, const std::string& request);
// A plain GET with Host and Connection: close.
Response http_get(uint16_t port, const std::string& target, const std::string& extra_headers = "");

// What a demo backend received under the header `name`, from its echo of the request head (`?echo=headers`, one
// field a line, the request line first): every value, in order.
std::vector<std::string> echoed_values(const Response& echo, const std::string& name);

// For background threads, where Catch's assertions must not be used (they are not thread-safe): sends
// `request` on a new connection and returns the response's status, or -1 on any failure. No Catch calls.
int status_of(uint16_t port, const std::string& request);

// A port on 127.0.0.1 that refuses connections for as long as this object lives: a socket bound to it that never
// listens. The kernel answers a SYN with a reset (ECONNREFUSED), and no other socket can bind the port meanwhile.
class RefusingPort {
  public:
    RefusingPort();
    ~RefusingPort();
    RefusingPort(const RefusingPort&) = delete;
    RefusingPort& operator=(const RefusingPort&) = delete;
    uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

// A port on 127.0.0.1 where a connect neither completes nor is refused, for as long as this object lives: a
// listener with a backlog of 0 whose one queue slot is taken by a connection nobody accepts, so the kernel drops
// every further SYN. A connect to it ends only at the connecting side's own timeout.
class UnansweredPort {
  public:
    UnansweredPort();
    ~UnansweredPort();
    UnansweredPort(const UnansweredPort&) = delete;
    UnansweredPort& operator=(const UnansweredPort&) = delete;
    uint16_t port() const { return port_; }

  private:
    int listen_fd_ = -1;
    int queued_fd_ = -1;  // the connection that fills the accept queue
    uint16_t port_ = 0;
};

// Waits for an lb started with `listen: ...:0` to log "listening on HOST:PORT" into `log_path` and returns the
// port. No port is reserved in advance, so no other process can take it in between.
uint16_t wait_for_lb_port(const std::string& log_path, std::chrono::milliseconds limit = std::chrono::seconds{20});
// The same for any "MARKER HOST:PORT" a process logs ("admin on ", "lb-demo-backend b1 listening on ").
uint16_t wait_for_logged_port(const std::string& log_path, const std::string& marker,
                              std::chrono::milliseconds limit = std::chrono::seconds{20});
// How many lines of the file contain `text`.
size_t count_lines_with(const std::string& path, const std::string& text);

// A child process, killed (SIGKILL) on destruction if still running.
class Process {
  public:
    // argv[0] is the executable's path. Output goes to `log_path` when given, else inherited.
    explicit Process(std::vector<std::string> argv, const std::string& log_path = "");
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig);
    // Waits for exit; returns the exit status, or 128+signal. Fails the test after `limit`.
    int wait(std::chrono::milliseconds limit = std::chrono::seconds{30});
    bool running();
    // Peak resident set (VmHWM) and current resident set (VmRSS) in bytes.
    uint64_t peak_rss_bytes() const;
    uint64_t rss_bytes() const;
    // User plus system CPU time used so far, in seconds.
    double cpu_seconds() const;

  private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

struct CommandResult {
    int exit_code;
    std::string output;  // stdout and stderr together
};
// Runs `shell_command` under sh and waits for it; exit_code is -1 when it could not start. No Catch calls, so a
// background thread may use it.
CommandResult run_command(const std::string& shell_command);

// A pause of about a millisecond between two checks of a condition (see wait_until).
void poll_pause();

// Writes `content` to a fresh file under the test temp directory and returns its path.
std::string write_temp_file(const std::string& name, const std::string& content);

}  // namespace lb::test

namespace lb::test {

// Re-checks `condition` (yielding between checks) until it holds; fails the test after `limit`. For state that
// changes asynchronously (a health transition, a connection returning to a pool), never a guessed sleep.
template <typename Condition>
void wait_until(Condition&& condition, const char* what, std::chrono::milliseconds limit = std::chrono::seconds{20}) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting until " << what);
        poll_pause();
    }
}

}  // namespace lb::test
