// How connections end: the lingering close after an error response and its 2 s deadline, a response delimited by
// the backend's close, the timeouts that end a stalled response or an idle pooled connection. Where a test needs a
// time to pass, the thing waited for never comes on its own (a backend that stops sending, a client that stops
// reading), so only the configured timeout can end it, however slow the machine.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/raw_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

double metric(ProxyFixture& proxy, const std::string& series) {
    return metric_value(proxy.server().render_metrics(), series);
}

double open_client_connections(ProxyFixture& proxy) { return metric(proxy, "lb_client_connections_active"); }

// For serve functions: blocks until the peer (lb) closes the connection or the RawBackend stops.
void wait_for_close(int fd) {
    char sink[4096];
    while (::recv(fd, sink, sizeof sink, 0) > 0) {
    }
}

std::string pattern(size_t size) {
    std::string bytes;
    for (size_t i = 0; i < size; ++i) bytes += static_cast<char>('a' + i % 26);
    return bytes;
}

}  // namespace

// Regression test for commit 8423997: the end of a close-delimited response, found as the backend closes, went on
// after the client had gone (its last bytes could not be written) and used the upstream connection already given
// up. Here the client half-closes after its request, so lb stops reading it, takes the start of the response, and
// resets the connection; only then does the backend close, and lb writes the last chunk into a dead socket.
TEST_CASE("a close-delimited response whose client left before its end ends the session once",
          "[endings][close-delimited]") {
    std::atomic<bool> client_gone{false};
    RawBackend backend([&](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst part")) return;
        for (pollfd p{fd, POLLIN, 0}; !client_gone; p.revents = 0) {
            if (::poll(&p, 1, 1) == 1) return;  // the backend is stopping (lb itself never closes first here)
        }
        ::shutdown(fd, SHUT_WR);  // the end of the response
        wait_for_close(fd);
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) { c.backends = make_config({backend.port()}).backends; });
    {
        Client client(proxy.port());
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        client.shutdown_write();
        std::string received;
        while (received.find("first part") == std::string::npos) {
            char buffer[4096];
            ssize_t n = ::recv(client.fd(), buffer, sizeof buffer, 0);
            REQUIRE(n > 0);
            received.append(buffer, static_cast<size_t>(n));
        }
        CHECK(received.find("Transfer-Encoding: chunked") != std::string::npos);
        linger reset{1, 0};
        ::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }  // closed with a reset
    client_gone = true;
    wait_until([&] { return backend.connections() == 1 && proxy.server().idle_upstream_connections() == 0; },
               "the exchange is over");
    // The session was closed once: the gauge is back to zero (not below), and lb still serves.
    wait_until([&] { return open_client_connections(proxy) == 0; }, "the client connection is counted closed");
    CHECK(http_get(proxy.port(), "/").status == 200);
    wait_until([&] { return open_client_connections(proxy) == 0; }, "that connection is counted closed too");
}

// Regression test for commit 8423997: a connection closing after a response with client bytes still unread (here a
// request pipelined behind one that asked to close) waits for its queued bytes to go out before it shuts down; a
// client that never reads them held the session forever, as no deadline was armed. The linger deadline ends it.
TEST_CASE("a closing connection whose client stops reading is closed by the linger deadline", "[endings][linger]") {
    // A large per-connection bound: the whole response is read from the backend and queued, so the response is
    // complete (and the connection closing) while the client has read none of it.
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.limits.buffer_per_connection = 64 << 20; });
    Client client(proxy.port());
    int small = 4096;
    ::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    client.send("GET /?bytes=16777216 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n");
    wait_until([&] { return proxy.backend(0).requests_served() == 1; }, "the backend answered");
    wait_until([&] { return open_client_connections(proxy) == 0; }, "lb closes the connection", 30s);
    // Its queued response is given back once the transport has closed.
    wait_until([&] { return proxy.server().buffer_bytes() == 0; }, "the connection's memory came back");
}

TEST_CASE("the lingering close keeps an error response from being destroyed by a reset", "[endings][linger]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    int small = 4096;
    ::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    // A response the client does not read yet, a malformed request behind it, and more bytes behind that. lb answers
    // 400 after the response and must close with those last bytes unread: closed at once, the kernel would answer
    // them with a reset and throw away what lb had not yet delivered, the end of the response and the 400.
    client.send("GET /?bytes=200000 HTTP/1.1\r\nHost: t\r\n\r\nBAD\r\n\r\n" + std::string(64 * 1024, 'j'));
    wait_until([&] { return metric(proxy, "lb_errors_total{kind=\"client_parse_error\"}") == 1; },
               "lb has refused the malformed request");
    // Within the 2 s that lb keeps reading and discarding, the client reads everything.
    Response first = client.read_response();
    CHECK(first.status == 200);
    CHECK(first.body == pattern(200000));
    Response refusal = client.read_response();
    CHECK(refusal.status == 400);
    CHECK(refusal.header("Connection") == "close");
    CHECK(client.read_until_closed().empty());
}

TEST_CASE("the lingering close ends after 2 s even if the client keeps sending", "[endings][linger]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    auto start = Clock::now();
    client.send("BAD\r\n\r\n");
    CHECK(client.read_response().status == 400);
    // lb has shut down its side (the client sees the end of the stream) and reads and discards what still comes:
    // one byte every 20 ms here. Once lb closes the socket, the next byte is answered with a reset.
    ::fcntl(client.fd(), F_SETFL, ::fcntl(client.fd(), F_GETFL) | O_NONBLOCK);
    bool closed = false;
    while (!closed && Clock::now() - start < 20s) {
        if (::send(client.fd(), "x", 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN) closed = true;
        char c;
        if (::recv(client.fd(), &c, 1, 0) < 0 && errno != EAGAIN) closed = true;
        ::poll(nullptr, 0, 20);
    }
    auto lingered = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    INFO("closed after " << lingered.count() << " ms");
    CHECK(closed);
    // Not at once: slowness can only make this longer.
    CHECK(lingered >= 1500ms);
    CHECK(proxy.backend(0).connections_accepted() == 0);
}

TEST_CASE("timeouts.upstream_response applies between reads of a response, not to the whole of it",
          "[endings][timeout]") {
    SECTION("a backend that stops sending in the middle of a body: the client connection is closed") {
        RawBackend backend([](int fd) {
            if (RawBackend::read_head(fd).empty()) return;
            if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nthe first bytes")) return;
            wait_for_close(fd);  // and nothing more, ever
        });
        ProxyFixture proxy(0, [&](lb::core::Config& c) {
            c.backends = make_config({backend.port()}).backends;
            c.timeouts.upstream_response = 1000ms;  // only the stall can last that long
        });
        Client client(proxy.port());
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        std::string received = client.read_until_closed();
        CHECK(received.rfind("HTTP/1.1 200", 0) == 0);
        CHECK(received.substr(received.size() - 15) == "the first bytes");
        CHECK(metric(proxy, "lb_errors_total{kind=\"upstream_timeout\"}") == 1);
    }
    SECTION("a backend that sends a piece every 50 ms for longer than the timeout: the response completes") {
        // 2.5 s in all against a 1 s timeout: each gap would have to stretch twentyfold to reach it.
        RawBackend backend([](int fd) {
            if (RawBackend::read_head(fd).empty()) return;
            if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) return;
            auto start = Clock::now();
            while (Clock::now() - start < 2500ms) {
                if (!RawBackend::write_all(fd, "1\r\np\r\n")) return;
                std::this_thread::sleep_for(50ms);
            }
            if (!RawBackend::write_all(fd, "0\r\n\r\n")) return;
            wait_for_close(fd);
        });
        ProxyFixture proxy(0, [&](lb::core::Config& c) {
            c.backends = make_config({backend.port()}).backends;
            c.timeouts.upstream_response = 1000ms;
        });
        Client client(proxy.port());
        client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 200);
        CHECK(r.body.size() >= 40);
        CHECK(r.body == std::string(r.body.size(), 'p'));
        CHECK(metric(proxy, "lb_errors_total{kind=\"upstream_timeout\"}") == 0);
    }
}

TEST_CASE("an idle upstream connection is closed after timeouts.upstream_keepalive", "[endings][keepalive]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.timeouts.upstream_keepalive = 200ms; });
    Response first = http_get(proxy.port(), "/");
    CHECK(first.status == 200);
    // Nobody uses it: only the idle deadline can close it.
    wait_until([&] { return proxy.backend(0).connections_open() == 0; }, "lb closes the idle upstream connection");
    CHECK(proxy.server().idle_upstream_connections() == 0);
    Response second = http_get(proxy.port(), "/");
    CHECK(second.status == 200);
    CHECK(second.header("X-Conn-Request") == "1");
    CHECK(proxy.backend(0).connections_accepted() == 2);
}
