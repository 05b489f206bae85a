// README claims about backends that misbehave, checked on the lb binary with the settings written in lb.yaml as an
// operator writes them: origins scripted byte by byte (RawBackend), ports that refuse or never answer, and the
// demo backend. Each case fails if the behaviour it names is taken out of lb. (CONNECT's 400 and the 502 for a
// response that is not HTTP are VTest scripts around the binary: test/vtc/error_400_connect.vtc and
// error_502_invalid_response.vtc.)
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/metrics_text.h"
#include "test/support/raw_backend.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// One worker (so the rotation is known: it starts at the first backend), admin for the metrics, no active checks
// (only what the test does reaches the backends), then `extra`, which may add top-level sections. `health` replaces
// the health section.
std::string config(const std::vector<std::string>& backends, const std::string& extra = "",
                   const std::string& health = "health:\n  enabled: false\n") {
    std::string yaml = "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\n" + health + "backends:\n";
    for (const std::string& b : backends) yaml += "  - " + b + "\n";
    return yaml + extra;
}

std::string address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

double errors(const RunningLb& lb, const std::string& kind) {
    return lb.metric("lb_errors_total{kind=\"" + kind + "\"}");
}

// For serve functions: blocks until lb closes the connection or the RawBackend stops.
void wait_for_close(int fd) {
    char sink[4096];
    while (::recv(fd, sink, sizeof sink, 0) > 0) {
    }
}

// For serve functions: reads exactly `n` bytes of body; false if the peer went away first.
bool read_body(int fd, size_t n) {
    char sink[4096];
    while (n > 0) {
        ssize_t got = ::recv(fd, sink, std::min(n, sizeof sink), 0);
        if (got <= 0) return false;
        n -= static_cast<size_t>(got);
    }
    return true;
}

void stop(RunningLb& lb) {
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

}  // namespace

TEST_CASE("binary: a connect that times out goes to a backend not yet tried", "[origin][retry]") {
    // A listener the test keeps, with its one queue slot taken and nobody accepting: a SYN to it is dropped, so the
    // connect can only end at lb's timeouts.connect, however slow the machine.
    UnansweredPort unanswered;
    StartedBackend b1("b1");
    RunningLb lb("origin-connect-timeout",
                 config({address(unanswered.port()), address(b1.port())}, "retries: 1\ntimeouts:\n  connect: 1s\n"));
    Response r = http_get(lb.port(), "/");
    CHECK(r.status == 200);
    CHECK(r.header("X-Backend-Id") == "b1");
    CHECK(errors(lb, "connect_timeout") == 1);
    CHECK(errors(lb, "connect_refused") == 0);
    CHECK(lb.metric("lb_retries_total") == 1);
    stop(lb);
}

TEST_CASE("binary: a PUT or PATCH whose body was sent is not retried, though another backend is free",
          "[origin][retry]") {
    std::string method = GENERATE(as<std::string>{}, "PUT", "PATCH");
    // Both backends take the whole request and close without a byte of response, as a backend that crashed while
    // acting on it would: sending it again could act on it twice.
    auto take_and_drop = [](int fd) {
        std::string head = RawBackend::read_head(fd);
        if (head.empty()) return;
        if (head.find("Content-Length: 4\r\n") != std::string::npos && !read_body(fd, 4)) return;
        ::shutdown(fd, SHUT_RDWR);
    };
    RawBackend first(take_and_drop);
    RawBackend second(take_and_drop);
    RunningLb lb("origin-body-not-retried", config({address(first.port()), address(second.port())}, "retries: 2\n"));
    Client client(lb.port());
    client.send(method + " /resource HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody");
    Response r = client.read_response();
    CHECK(r.status == 502);
    CHECK(r.header("Connection") == "close");
    CHECK(client.wait_closed());
    CHECK(first.connections() + second.connections() == 1);
    CHECK(lb.metric("lb_retries_total") == 0);
    // Without a body, cut off before any response byte on a fresh connection, a PUT (idempotent) goes to the other
    // backend, which drops it too; a PATCH is not sent again.
    Client again(lb.port());
    again.send(method + " /resource HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(again.read_response().status == 502);
    const bool idempotent = method == "PUT";
    CHECK(first.connections() + second.connections() == (idempotent ? 3u : 2u));
    CHECK(lb.metric("lb_retries_total") == (idempotent ? 1 : 0));
    stop(lb);
}

TEST_CASE("binary: a close-delimited response reaches the client whole, and its upstream connection is not kept",
          "[origin][close-delimited]") {
    const std::string body(100000, 'c');
    RawBackend backend([&](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)) return;
        ::shutdown(fd, SHUT_WR);  // the body's end
        wait_for_close(fd);
    });
    RunningLb lb("origin-close-delimited", config({address(backend.port())}));
    SECTION("an HTTP/1.1 client gets it chunked, on a connection that stays open") {
        Client client(lb.port());
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 200);
        CHECK(r.chunked);
        CHECK_FALSE(r.has_header("Content-Length"));
        CHECK(r.body == body);
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        Response next = client.read_response();
        CHECK(next.status == 200);
        CHECK(next.body == body);
        CHECK(backend.connections() == 2);  // the first upstream connection ended with its response
    }
    SECTION("an HTTP/1.0 client gets it until the close") {
        Client client(lb.port());
        client.send("GET / HTTP/1.0\r\n\r\n");
        std::string raw = client.read_until_closed();
        CHECK(raw.rfind("HTTP/1.1 200", 0) == 0);
        CHECK(raw.find("Transfer-Encoding") == std::string::npos);
        CHECK(raw.substr(raw.find("\r\n\r\n") + 4) == body);
    }
    CHECK(lb.metric(backend_series("lb_backend_upstream_connections_idle", backend.port())) == 0);
    stop(lb);
}

TEST_CASE("binary: with the queue full, a request gets 503 at once", "[origin][queue]") {
    StartedBackend b1("b1");
    // The queue's timeout is longer than the test: the 503 can only come from queue.size.
    RunningLb lb("origin-queue-full", config({"address: " + address(b1.port()) + "\n    max_connections: 1"},
                                             "queue:\n  size: 1\n  timeout: 10m\n"));
    HeldRequest holder(lb.port());
    wait_until([&] { return b1.connections_accepted() == 1; }, "the held request took the backend's one slot");
    Client waiting(lb.port());
    waiting.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until([&] { return lb.metric("lb_queue_waits_total") == 1; }, "one request waits in the queue");
    Response refused = http_get(lb.port(), "/");
    CHECK(refused.status == 503);
    CHECK(refused.header("Connection") == "close");
    CHECK(errors(lb, "no_backend") == 1);
    CHECK(errors(lb, "queue_timeout") == 0);
    CHECK(holder.finish().status == 200);
    CHECK(waiting.read_response().status == 200);
    CHECK(b1.requests_served() == 2);
    stop(lb);
}

TEST_CASE("binary: timeouts.upstream_response applies between reads of a response", "[origin][timeout]") {
    SECTION("a backend that stops sending in the middle of a body: the client connection is closed") {
        RawBackend backend([](int fd) {
            if (RawBackend::read_head(fd).empty()) return;
            if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nthe first bytes")) return;
            wait_for_close(fd);  // and nothing more, ever: only lb's timeout can end this
        });
        RunningLb lb("origin-stalled-body", config({address(backend.port())}, "timeouts:\n  upstream_response: 1s\n"));
        Client client(lb.port());
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        std::string received = client.read_until_closed();
        CHECK(received.rfind("HTTP/1.1 200", 0) == 0);
        CHECK(received.substr(received.size() - 15) == "the first bytes");
        CHECK(errors(lb, "upstream_timeout") == 1);
        stop(lb);
    }
    SECTION("a backend that sends a piece every 50 ms for longer than the timeout: the response completes") {
        // 2.5 s in all against a 1 s timeout: a gap would have to stretch twentyfold to reach it.
        RawBackend backend([](int fd) {
            if (RawBackend::read_head(fd).empty()) return;
            if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) return;
            for (auto start = Clock::now(); Clock::now() - start < 2500ms;) {
                if (!RawBackend::write_all(fd, "1\r\np\r\n")) return;
                std::this_thread::sleep_for(50ms);
            }
            if (!RawBackend::write_all(fd, "0\r\n\r\n")) return;
            wait_for_close(fd);
        });
        RunningLb lb("origin-dripped-body", config({address(backend.port())}, "timeouts:\n  upstream_response: 1s\n"));
        Response r = http_get(lb.port(), "/");
        CHECK(r.status == 200);
        CHECK(r.body.size() >= 40);
        CHECK(r.body == std::string(r.body.size(), 'p'));
        CHECK(errors(lb, "upstream_timeout") == 0);
        stop(lb);
    }
}

TEST_CASE("binary: an idle upstream connection is closed after timeouts.upstream_keepalive", "[origin][keepalive]") {
    StartedBackend b1("b1");
    RunningLb lb("origin-upstream-keepalive", config({address(b1.port())}, "timeouts:\n  upstream_keepalive: 200ms\n"));
    const std::string idle = backend_series("lb_backend_upstream_connections_idle", b1.port());
    Response first = http_get(lb.port(), "/");
    CHECK(first.status == 200);
    // Nobody uses it: only the idle deadline can close it.
    wait_until([&] { return b1.connections_open() == 0; }, "lb closes the idle upstream connection");
    wait_until([&] { return lb.metric(idle) == 0; }, "the idle gauge falls");
    Response second = http_get(lb.port(), "/");
    CHECK(second.status == 200);
    CHECK(second.header("X-Conn-Request") == "1");
    CHECK(b1.connections_accepted() == 2);
    stop(lb);
}

TEST_CASE("binary: limits.request_body_bytes: 0 lets a body beyond the default 1 GiB through", "[origin][limits]") {
    StartedBackend b1("b1");
    RunningLb lb("origin-unlimited-body", config({address(b1.port())}, "limits:\n  request_body_bytes: 0\n"));
    // The backend echoes the body as it arrives, so its answer starts long before 5 GiB could be sent; with any
    // limit under 5 GiB lb would answer 413 at once instead.
    {
        Client client(lb.port());
        client.send("POST /?echo=body HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(5ULL << 30) +
                    "\r\n\r\n" + std::string(100000, 'x'));
        std::string seen;
        while (seen.find(std::string(1000, 'x')) == std::string::npos) {
            char buffer[65536];
            ssize_t n = ::recv(client.fd(), buffer, sizeof buffer, 0);
            REQUIRE(n > 0);
            seen.append(buffer, static_cast<size_t>(n));
        }
        CHECK(seen.rfind("HTTP/1.1 200", 0) == 0);
    }  // the client leaves mid-body, so the drain below does not wait for this request
    CHECK(errors(lb, "body_limit") == 0);
    stop(lb);
}

// Regression test for commit 8423997 on the binary: the end of a close-delimited response, found as the backend
// closes after the client has gone with a reset, used the upstream connection already given up; lb crashed.
TEST_CASE("binary: a close-delimited response whose client left before its end", "[origin][close-delimited]") {
    std::atomic<bool> client_gone{false};
    RawBackend backend([&](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst part")) return;
        for (pollfd p{fd, POLLIN, 0}; !client_gone; p.revents = 0) {
            if (::poll(&p, 1, 1) == 1) return;  // the backend is stopping (lb itself never closes first here)
        }
        ::shutdown(fd, SHUT_WR);  // the end of the response, after the client is gone
        wait_for_close(fd);
    });
    RunningLb lb("origin-close-delimited-client-gone", config({address(backend.port())}));
    {
        Client client(lb.port());
        // Half-closed after the request: lb stops reading the client and takes the start of the response.
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        client.shutdown_write();
        std::string received;
        while (received.find("first part") == std::string::npos) {
            char buffer[4096];
            ssize_t n = ::recv(client.fd(), buffer, sizeof buffer, 0);
            REQUIRE(n > 0);
            received.append(buffer, static_cast<size_t>(n));
        }
        linger reset{1, 0};
        ::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }  // closed with a reset
    client_gone = true;
    wait_until([&] { return lb.metric("lb_client_connections_active") == 0; }, "the client connection is closed once");
    wait_until([&] { return lb.metric(backend_series("lb_backend_upstream_connections_active", backend.port())) == 0; },
               "the upstream connection is given up");
    CHECK(lb.process().running());
    // Still serving: a second exchange goes through whole.
    Client next(lb.port());
    next.send("GET / HTTP/1.0\r\n\r\n");
    CHECK(next.read_until_closed().find("\r\n\r\nfirst part") != std::string::npos);
    stop(lb);
}

TEST_CASE("binary: an error response is followed by a lingering close that ends after 2 s", "[origin][linger]") {
    StartedBackend b1("b1");
    RunningLb lb("origin-linger", config({address(b1.port())}));
    Client client(lb.port());
    const auto start = Clock::now();
    client.send("BAD\r\n\r\n");
    CHECK(client.read_response().status == 400);
    // lb has shut down its side and reads and discards what still comes: a byte every 20 ms here. Once lb closes the
    // socket, the next byte is answered with a reset. Without the deadline this would go on to the 20 s below.
    ::fcntl(client.fd(), F_SETFL, ::fcntl(client.fd(), F_GETFL) | O_NONBLOCK);
    bool closed = false;
    while (!closed && Clock::now() - start < 20s) {
        if (::send(client.fd(), "x", 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN) closed = true;
        char c;
        if (::recv(client.fd(), &c, 1, 0) < 0 && errno != EAGAIN) closed = true;
        ::poll(nullptr, 0, 20);
    }
    const auto lingered = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    INFO("closed after " << lingered.count() << " ms");
    CHECK(closed);
    CHECK(lingered >= 1500ms);  // not at once; a slow machine can only make this longer
    CHECK(b1.connections_accepted() == 0);
    stop(lb);
}

TEST_CASE("binary: live requests that meet resets eject their backend", "[origin][passive]") {
    RawBackend resetting([](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        linger abort{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        ::shutdown(fd, SHUT_RDWR);  // with SO_LINGER 0, the close that follows is a reset
    });
    StartedBackend b1("b1");
    // No active checks: only what requests through lb meet can eject it, for longer than the test.
    RunningLb lb("origin-passive-resets", config({address(resetting.port()), address(b1.port())}, "retries: 1\n",
                                                 "health:\n  enabled: false\n  passive:\n    consecutive_failures: 3\n"
                                                 "    base_ejection_time: 10m\n    max_ejection_time: 10m\n"));
    const std::string up = backend_series("lb_backend_up", resetting.port());
    // Each GET the resetting backend spoils before any response byte goes to b1: the clients see 200.
    for (int i = 0; i < 20 && lb.metric(up) == 1; ++i) CHECK(http_get(lb.port(), "/").status == 200);
    wait_until([&] { return lb.metric(up) == 0; }, "the resetting backend is ejected");
    CHECK(lb.metric(backend_series("lb_backend_passive_ejections_total", resetting.port())) == 1);
    const size_t reached = resetting.connections();
    for (int i = 0; i < 6; ++i) CHECK(http_get(lb.port(), "/").header("X-Backend-Id") == "b1");
    CHECK(resetting.connections() == reached);
    stop(lb);
}
