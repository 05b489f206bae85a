// The demo backend over real sockets: an in-process DemoBackend on port 0 per test, plus the lb-demo-backend
// executable, plus the pure query-parameter parser; and the same over HTTPS (at the end).
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "demo/demo_backend.h"
#include "demo/request_controls.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"
#include "test/support/tls_bridge.h"

using lb::demo::DemoBackend;
using lb::demo::DemoBackendOptions;
using lb::test::Client;
using lb::test::Response;
using namespace std::chrono_literals;

namespace {

std::string pattern(size_t size, uint64_t offset = 0) {
    std::string s(size, '\0');
    for (size_t i = 0; i < size; ++i) s[i] = lb::demo::pattern_byte(offset + i);
    return s;
}

std::string get(const std::string& target, const std::string& extra_headers = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

// A running backend for one test; stopped (and leak-checked by the backend itself) at the end.
struct Running {
    explicit Running(DemoBackendOptions options = {}) : backend(std::move(options)) { backend.start(); }
    DemoBackend backend;
    uint16_t port() const { return backend.port(); }
};

// Reads raw bytes until `needle` has arrived; returns everything read.
std::string read_until(Client& client, const std::string& needle) {
    std::string got;
    char buf[4096];
    while (got.find(needle) == std::string::npos) {
        ssize_t n = ::recv(client.fd(), buf, sizeof buf, 0);
        if (n <= 0) FAIL("connection ended before '" << needle << "' arrived; got: " << got);
        got.append(buf, static_cast<size_t>(n));
    }
    return got;
}

// Bytes that arrived on `fd` and were not read yet (SIOCINQ).
int unread_bytes(int fd) {
    int n = 0;
    ::ioctl(fd, SIOCINQ, &n);
    return n;
}

// Bytes sent on `fd` that the peer's kernel has not acknowledged yet (SIOCOUTQ): they wait in our send queue.
int unsent_bytes(int fd) {
    int n = 0;
    ::ioctl(fd, SIOCOUTQ, &n);
    return n;
}

// True when nothing arrives on `fd` (no byte, no FIN) for `quiet`. For "the server does not answer": a server that
// wrongly answered may, on a loaded machine, do so later than `quiet`, but a correct one never fails this.
bool nothing_arrives(int fd, std::chrono::milliseconds quiet) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(quiet.count())) == 0;
}

// Sends up to `total` filler bytes without blocking, until all are sent or the socket has had no room for `quiet`:
// the peer does not read and the kernel queues between us are full. Returns the bytes sent. Main thread only.
uint64_t send_until_stalled(int fd, uint64_t total, std::chrono::milliseconds quiet = 200ms) {
    static const std::string filler(64 * 1024, 'u');
    uint64_t sent = 0;
    while (sent < total) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(filler.size(), total - sent));
        ssize_t rc = ::send(fd, filler.data(), n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (rc > 0) {
            sent += static_cast<uint64_t>(rc);
        } else if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd p{fd, POLLOUT, 0};
            if (::poll(&p, 1, static_cast<int>(quiet.count())) == 0) return sent;
        } else if (!(rc < 0 && errno == EINTR)) {
            FAIL("send: " << std::strerror(errno));
        }
    }
    return sent;
}

// Waits for an lb-demo-backend started with --port 0 to print its listening line into `log`; returns the port.
uint16_t wait_for_demo_port(lb::test::Process& process, const std::string& log, const std::string& id) {
    std::smatch match;
    const std::regex listening("lb-demo-backend " + id + " listening on 127\\.0\\.0\\.1:([0-9]+)\n");
    std::string text;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};;) {
        std::ifstream in(log);
        text.assign(std::istreambuf_iterator<char>(in), {});
        if (std::regex_search(text, match, listening)) break;
        REQUIRE(process.running());
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        lb::test::poll_pause();
    }
    return static_cast<uint16_t>(std::stoi(match[1]));
}

}  // namespace

TEST_CASE("request controls are parsed from the query", "[demo]") {
    using lb::demo::EchoMode;
    using lb::demo::parse_request_controls;
    auto plain = parse_request_controls("/");
    CHECK(plain.status == 200);
    CHECK_FALSE(plain.bytes.has_value());
    CHECK_FALSE(plain.health);
    CHECK(parse_request_controls("/health").health);
    CHECK(parse_request_controls("/health?status=503").health);
    CHECK(parse_request_controls("http://h:1/health").health);
    CHECK_FALSE(parse_request_controls("/healthz").health);

    auto c = parse_request_controls(
        "/x?status=503&delay_ms=20&bytes=1000&chunked=1&echo=body&drop=0&drop_if_reused=1&close=true&mid_close=1");
    CHECK(c.status == 503);
    CHECK(c.delay_ms == 20);
    CHECK(c.bytes == 1000u);
    CHECK(c.chunked);
    CHECK(c.echo == EchoMode::body);
    CHECK_FALSE(c.drop);
    CHECK(c.drop_if_reused);
    CHECK(c.close);
    CHECK(c.mid_close);
    CHECK(parse_request_controls("/?echo=headers").echo == EchoMode::headers);

    // Malformed or out of range: ignored. Repeated: the last wins.
    auto bad = parse_request_controls("/?status=abc&status=1000&bytes=-1&delay_ms=&x&=3&&chunked&stray=65537");
    CHECK(bad.status == 200);
    CHECK_FALSE(bad.bytes.has_value());
    CHECK(bad.delay_ms == 0);
    CHECK_FALSE(bad.chunked);
    CHECK(bad.stray == 0);
    CHECK(parse_request_controls("/?status=500&status=404").status == 404);

    CHECK(lb::demo::reason_phrase(404) == "Not Found");
    CHECK(lb::demo::reason_phrase(299) == "Unknown");
    CHECK(lb::demo::status_forbids_body(204));
    CHECK(lb::demo::status_forbids_body(304));
    CHECK_FALSE(lb::demo::status_forbids_body(200));
}

TEST_CASE("misbehaviour controls are parsed from the query", "[demo]") {
    using lb::demo::parse_request_controls;
    auto plain = parse_request_controls("/");
    CHECK_FALSE(plain.reset_mid_body);
    CHECK_FALSE(plain.close_delimited);
    CHECK_FALSE(plain.invalid);
    CHECK_FALSE(plain.silent);
    CHECK(plain.read_pause_ms == 0);
    CHECK_FALSE(plain.bogus_body.has_value());
    CHECK(plain.stray == 0);
    CHECK(plain.stray_delay_ms == 0);
    CHECK_FALSE(plain.interim_body);
    CHECK_FALSE(plain.stats);

    auto c = parse_request_controls(
        "/?reset_mid_body=1&close_delimited=true&invalid=1&silent=1&read_pause_ms=250&bogus_body=7&stray=12"
        "&stray_delay_ms=30&interim_body=1");
    CHECK(c.reset_mid_body);
    CHECK(c.close_delimited);
    CHECK(c.invalid);
    CHECK(c.silent);
    CHECK(c.read_pause_ms == 250);
    CHECK(c.bogus_body == 7u);
    CHECK(c.stray == 12);
    CHECK(c.stray_delay_ms == 30);
    CHECK(c.interim_body);
    CHECK(parse_request_controls("/?bogus_body=0").bogus_body == 0u);  // Content-Length: 0 on a 204 is bogus too
    CHECK(parse_request_controls("/?stray=65536").stray == lb::demo::kMaxStray);
    CHECK(parse_request_controls("/?silent=0").silent == false);

    // Any status 0..999 is taken as given, for hostile-backend tests.
    CHECK(parse_request_controls("/?status=99").status == 99);
    CHECK(parse_request_controls("/?status=0").status == 0);
    CHECK(parse_request_controls("/?status=100").status == 100);
    CHECK(parse_request_controls("/?status=999").status == 999);
    CHECK(parse_request_controls("/?status=1000").status == 200);
    CHECK(parse_request_controls("/?status=-1").status == 200);

    CHECK(parse_request_controls("/stats").stats);
    CHECK(parse_request_controls("/stats?x=1").stats);
    CHECK_FALSE(parse_request_controls("/stats/more").stats);
}

TEST_CASE("default response carries who served it", "[demo]") {
    Running server({.id = "b7"});
    Response r = lb::test::http_get(server.port(), "/anything");
    CHECK(r.status == 200);
    CHECK(r.version == "HTTP/1.1");
    CHECK(r.body == "b7\n");
    CHECK(r.header("X-Backend-Id") == "b7");
    CHECK(r.header("X-Conn-Id") == "1");
    CHECK(r.header("X-Conn-Request") == "1");
    CHECK(r.header("Content-Type") == "text/plain");
    CHECK(r.header("Content-Length") == "3");
    CHECK(r.header("X-Received-Body-Bytes") == "0");
    CHECK(r.header("Connection") == "close");  // the client asked for it

    Response health = lb::test::http_get(server.port(), "/health");
    CHECK(health.status == 200);
    CHECK(health.body == "ok\n");
    CHECK(health.header("X-Conn-Id") == "2");

    Response head = lb::test::http_exchange(server.port(), "HEAD /?bytes=1234 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(head.header("Content-Length") == "1234");
    CHECK(head.body.empty());

    Response missing = lb::test::http_get(server.port(), "/?status=404");
    CHECK(missing.status == 404);
    CHECK(missing.head.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
    CHECK(lb::test::http_get(server.port(), "/?status=599").head.rfind("HTTP/1.1 599 Unknown\r\n", 0) == 0);
    CHECK(server.backend.connections_accepted() == 5);
    CHECK(server.backend.requests_served() == 5);
}

TEST_CASE("keep-alive connections count their requests", "[demo]") {
    Running server;
    Client a(server.port());
    for (int i = 1; i <= 3; ++i) {
        a.send(get("/"));
        Response r = a.read_response();
        CHECK(r.header("X-Conn-Id") == "1");
        CHECK(r.header("X-Conn-Request") == std::to_string(i));
        CHECK_FALSE(r.has_header("Connection"));
    }
    Client b(server.port());
    b.send(get("/"));
    CHECK(b.read_response().header("X-Conn-Id") == "2");

    // HTTP/1.0: closed after the answer unless keep-alive is asked for.
    Client old(server.port());
    old.send("GET / HTTP/1.0\r\n\r\n");
    CHECK(old.read_response().header("Connection") == "close");
    CHECK(old.wait_closed());
    Client old_keep(server.port());
    old_keep.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(old_keep.read_response().header("Connection") == "keep-alive");
    old_keep.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(old_keep.read_response().header("X-Conn-Request") == "2");
}

TEST_CASE("pipelined requests are answered in order", "[demo]") {
    Running server;
    Client client(server.port());
    // The first answer is delayed: the second must still come after it.
    client.send(get("/first?delay_ms=50&status=201") + get("/second?bytes=5") + get("/third?echo=headers"));
    Response first = client.read_response();
    Response second = client.read_response();
    Response third = client.read_response();
    CHECK(first.status == 201);
    CHECK(first.header("X-Conn-Request") == "1");
    CHECK(second.body == "abcde");
    CHECK(second.header("X-Conn-Request") == "2");
    CHECK(third.body == "GET /third?echo=headers HTTP/1.1\nHost: test\n");
    CHECK(third.header("X-Conn-Request") == "3");
}

TEST_CASE("many pipelined requests, more than the input buffer, and bodies between them", "[demo]") {
    Running server;
    Client client(server.port());
    // The first answer is delayed while about 140 KB of requests arrive: reading pauses, then everything is answered.
    std::string burst = get("/?delay_ms=50");
    for (int i = 0; i < 3000; ++i) {
        burst += i % 3 == 1 ? "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                            : "GET /g?status=202 HTTP/1.1\r\nHost: t\r\n\r\n";
    }
    client.send(burst);
    CHECK(client.read_response().header("X-Conn-Request") == "1");
    for (int i = 0; i < 3000; ++i) {
        Response r = client.read_response();
        REQUIRE(r.header("X-Conn-Request") == std::to_string(i + 2));
        REQUIRE(r.header("X-Received-Body-Bytes") == (i % 3 == 1 ? "5" : "0"));
    }
    CHECK(server.backend.requests_served() == 3001);
}

TEST_CASE("a request trickling in byte by byte, and an oversized head", "[demo]") {
    Running server;
    Client client(server.port());
    const std::string request =
        "POST /?echo=headers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
    for (char c : request) client.send(std::string_view(&c, 1));
    Response r = client.read_response();
    CHECK(r.body == "POST /?echo=headers HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n");
    CHECK(r.header("X-Received-Body-Bytes") == "2");

    Client big(server.port());
    big.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(70000, 'x') + "\r\n\r\n");
    Response too_large = big.read_response();
    CHECK(too_large.status == 431);
    CHECK(big.wait_closed());
}

TEST_CASE("bytes=N streams a patterned body, plain or chunked", "[demo]") {
    Running server;
    const std::string expected = pattern(1000000);
    Client client(server.port());
    client.send(get("/?bytes=1000000"));
    Response plain = client.read_response();
    CHECK(plain.header("Content-Length") == "1000000");
    CHECK_FALSE(plain.chunked);
    CHECK(plain.body == expected);

    client.send(get("/?bytes=1000000&chunked=1"));
    Response chunked = client.read_response();
    CHECK(chunked.chunked);
    CHECK_FALSE(chunked.has_header("Content-Length"));
    CHECK(chunked.body == expected);

    client.send(get("/?chunked=1"));
    Response small = client.read_response();
    CHECK(small.chunked);
    CHECK(small.body == "b1\n");
    CHECK(small.header("X-Conn-Request") == "3");

    // Several chunks for a large body.
    client.send(get("/?bytes=200000&chunked=1", "Connection: close\r\n"));
    std::string raw = client.read_until_closed();
    CHECK(raw.find("\r\n10000\r\n") != std::string::npos);
    CHECK(raw.size() > 200000);
    CHECK(raw.ends_with("\r\n0\r\n\r\n"));
}

TEST_CASE("a 1 GiB body streams with bounded memory", "[demo][slow]") {
    lb::test::set_watchdog_limit(std::chrono::seconds{90});
    Running server;
    Client client(server.port(), std::chrono::seconds{60});
    const uint64_t size = 1ull << 30;
    client.send(get("/?bytes=" + std::to_string(size), "Connection: close\r\n"));
    std::string head = read_until(client, "\r\n\r\n");
    auto head_end = head.find("\r\n\r\n") + 4;
    CHECK(head.find("Content-Length: 1073741824\r\n") != std::string::npos);
    uint64_t received = head.size() - head_end;
    std::string tail = head.substr(head_end);
    std::vector<char> buf(1 << 20);
    for (;;) {
        ssize_t n = ::recv(client.fd(), buf.data(), buf.size(), 0);
        if (n < 0) FAIL("recv failed after " << received << " bytes");
        if (n == 0) break;
        received += static_cast<uint64_t>(n);
        if (received == size) tail.assign(buf.data() + n - 26, 26);  // the last bytes of the pattern
    }
    CHECK(received == size);
    CHECK(tail == pattern(26, size - 26));
}

TEST_CASE("echo=headers returns the request head as parsed", "[demo]") {
    Running server;
    Response r =
        lb::test::http_exchange(server.port(),
                                "POST /e?echo=headers&x=1 HTTP/1.1\r\nHost: h\r\nX-A: one\r\nx-a: two\r\nEmpty:\r\n"
                                "Content-Length: 4\r\n\r\nbody");
    CHECK(r.status == 200);
    CHECK(r.body == "POST /e?echo=headers&x=1 HTTP/1.1\nHost: h\nX-A: one\nx-a: two\nEmpty: \nContent-Length: 4\n");
    CHECK(r.header("X-Received-Body-Bytes") == "4");
}

TEST_CASE("request bodies are read, counted and discarded", "[demo]") {
    Running server;
    Client client(server.port());
    client.send("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789");
    CHECK(client.read_response().header("X-Received-Body-Bytes") == "10");
    client.send("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    Response chunked = client.read_response();
    CHECK(chunked.header("X-Received-Body-Bytes") == "5");
    CHECK(chunked.header("X-Conn-Request") == "2");

    // Expect: 100-continue gets the interim response before the body is sent.
    client.send("PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    Response interim = client.read_response();
    CHECK(interim.status == 100);
    client.send("xyz");
    Response final_response = client.read_response();
    CHECK(final_response.status == 200);
    CHECK(final_response.header("X-Received-Body-Bytes") == "3");
}

TEST_CASE("echo=body streams a chunked upload back as it arrives", "[demo]") {
    Running server;
    Client client(server.port());
    client.send("POST /?echo=body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    // The head and the first piece come back before the upload is finished.
    std::string early = read_until(client, "hello");
    CHECK(early.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(early.find("X-Conn-Request: 1\r\n") != std::string::npos);
    client.send("6\r\n world\r\n0\r\n\r\n");
    std::string rest = read_until(client, "\r\n0\r\n\r\n");
    std::string all = early + rest;
    CHECK(all.find("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") != std::string::npos);
    CHECK(all.ends_with("0\r\n\r\n"));
    // The connection stays usable; nothing else was sent meanwhile.
    client.send(get("/after"));
    Response after = client.read_response();
    CHECK(after.body == "b1\n");
    CHECK(after.header("X-Conn-Request") == "2");
}

TEST_CASE("echo=body applies backpressure to a large upload", "[demo]") {
    lb::test::set_watchdog_limit(std::chrono::seconds{90});
    Running server;
    Client client(server.port(), std::chrono::seconds{30});
    // Larger than every queue between us together (send and receive buffers may autotune to tens of MiB on
    // loopback): a backend that buffered the echo instead of pausing would take it all without the sender stalling.
    const size_t size = 64 << 20;
    const std::string piece = pattern(1 << 20);
    client.send("POST /?echo=body HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n");

    // The sender runs while the main thread does not read. No Catch call in it: it reports through atomics.
    std::atomic<uint64_t> sent{0};
    std::atomic<bool> stalled{false};  // its last send found no room
    std::atomic<int> send_errno{0};
    std::jthread sender([&](std::stop_token stop) {
        const int fd = client.fd();
        uint64_t offset = 0;
        while (offset < size && !stop.stop_requested()) {
            const size_t at = static_cast<size_t>(offset % piece.size());
            ssize_t n = ::send(fd, piece.data() + at, piece.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                offset += static_cast<uint64_t>(n);
                sent.store(offset);
                stalled.store(false);
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                stalled.store(true);
                pollfd p{fd, POLLOUT, 0};
                ::poll(&p, 1, 50);
            } else if (!(n < 0 && errno == EINTR)) {
                send_errno.store(errno);
                return;
            }
        }
    });

    // The backend stops reading once its peer stops reading (its own state), and the kernel queues show it:
    // the echo fills our receive queue, our upload waits in our send queue, the sender can push no more.
    lb::test::wait_until([&] { return server.backend.connections_held_back() == 1 && stalled.load(); },
                         "the backend holds back and the sender stalls", std::chrono::seconds{60});
    const uint64_t sent_at_stall = sent.load();
    CHECK(sent_at_stall < size);
    CHECK(server.backend.backpressure_stops() >= 1);
    CHECK(unread_bytes(client.fd()) > 0);
    CHECK(unsent_bytes(client.fd()) > 0);
    // What the backend holds itself is bounded: it stops reading at 1 MiB queued, plus what one read brings.
    CHECK(server.backend.write_queue_peak_bytes() < (2u << 20));
    CHECK(send_errno.load() == 0);

    // Reading resumes the flow: everything comes back, in order.
    Response r = client.read_response();
    sender.join();
    CHECK(send_errno.load() == 0);
    CHECK(sent.load() == size);
    CHECK(r.chunked);
    REQUIRE(r.body.size() == size);
    size_t mismatches = 0;
    for (size_t offset = 0; offset < size; offset += piece.size()) {
        mismatches += r.body.compare(offset, piece.size(), piece) != 0;
    }
    CHECK(mismatches == 0);
    CHECK(server.backend.connections_held_back() == 0);
    CHECK(server.backend.write_queue_peak_bytes() < (2u << 20));
}

TEST_CASE("drop and drop_if_reused close without a response", "[demo]") {
    Running server;
    Client dropped(server.port());
    dropped.send(get("/?drop=1"));
    CHECK(dropped.wait_closed());

    Client client(server.port());
    client.send(get("/?drop_if_reused=1"));
    Response first = client.read_response();
    CHECK(first.status == 200);
    CHECK(first.header("X-Conn-Request") == "1");
    client.send(get("/?drop_if_reused=1"));
    CHECK(client.wait_closed());
    CHECK(server.backend.requests_served() == 1);
}

TEST_CASE("status=204 and 304 have no body and no Content-Length", "[demo]") {
    Running server;
    Client client(server.port());
    client.send(get("/?status=204&bytes=100"));
    Response no_content = client.read_response();
    CHECK(no_content.status == 204);
    CHECK_FALSE(no_content.has_header("Content-Length"));
    CHECK_FALSE(no_content.has_header("Transfer-Encoding"));
    client.send(get("/?status=304&chunked=1"));
    Response not_modified = client.read_response();
    CHECK(not_modified.status == 304);
    CHECK_FALSE(not_modified.has_header("Content-Length"));
    CHECK_FALSE(not_modified.has_header("Transfer-Encoding"));
    // Nothing stray was sent: the next response parses cleanly on the same connection.
    client.send(get("/"));
    Response next = client.read_response();
    CHECK(next.body == "b1\n");
    CHECK(next.header("X-Conn-Request") == "3");
}

TEST_CASE("close, mid_close, delay and malformed requests", "[demo]") {
    Running server;
    {
        Client client(server.port());
        client.send(get("/?close=1"));
        Response r = client.read_response();
        CHECK(r.header("Connection") == "close");
        CHECK(client.wait_closed());
    }
    {
        Client client(server.port());
        client.send(get("/?bytes=1000000&mid_close=1"));
        std::string raw = client.read_until_closed();
        auto head_end = raw.find("\r\n\r\n");
        REQUIRE(head_end != std::string::npos);
        CHECK(raw.find("Content-Length: 1000000\r\n") < head_end);
        CHECK(raw.size() - head_end - 4 == 500000);
    }
    {
        auto start = std::chrono::steady_clock::now();
        Response r = lb::test::http_get(server.port(), "/?delay_ms=100");
        CHECK(r.status == 200);
        // libuv's timer clock counts whole milliseconds, so a 100 ms timer may fire up to 1 ms early.
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds{99});
    }
    {
        Client client(server.port());
        client.send("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 400);
        CHECK(r.header("Connection") == "close");
        CHECK(client.wait_closed());
    }
    {
        Client client(server.port());
        client.send("NOT HTTP AT ALL\r\n\r\n");
        CHECK(client.read_response().status == 400);
        CHECK(client.wait_closed());
    }
    {
        // A client that half-closes after its request still gets the answer.
        Client client(server.port());
        client.send(get("/?delay_ms=20"));
        client.shutdown_write();
        CHECK(client.read_response().body == "b1\n");
        CHECK(client.wait_closed());
    }
}

TEST_CASE("status=N writes any code from 0 to 999 as given", "[demo]") {
    Running server;
    auto raw_answer = [&](const std::string& target) {
        Client client(server.port());
        client.send(get(target, "Connection: close\r\n"));
        return client.read_until_closed();
    };
    // Below 100 and from 600 up: a body framed as for any other status.
    const std::string framed_b1 = "\r\nContent-Length: 3\r\nConnection: close\r\n\r\nb1\n";
    for (const char* status : {"99", "0", "600", "999"}) {
        INFO("status=" << status);
        std::string raw = raw_answer(std::string("/?status=") + status);
        CHECK(raw.rfind("HTTP/1.1 " + std::string(status) + " Unknown\r\n", 0) == 0);
        CHECK(raw.ends_with(framed_b1));
    }
    // A 1xx is written as if it were final: no body, no framing.
    std::string interim = raw_answer("/?status=150");
    CHECK(interim.rfind("HTTP/1.1 150 Unknown\r\n", 0) == 0);
    CHECK(interim.ends_with("\r\nConnection: close\r\n\r\n"));
    CHECK(interim.find("Content-Length") == std::string::npos);
    // Out of range: the default.
    CHECK(raw_answer("/?status=1000").rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
}

TEST_CASE("close_delimited=1 ends the body with the connection", "[demo]") {
    Running server;
    {
        Client client(server.port());
        client.send(get("/?close_delimited=1&bytes=100000"));  // a keep-alive request: closed all the same
        Response r = client.read_response();                   // no length: read until the connection ends
        CHECK(r.status == 200);
        CHECK_FALSE(r.has_header("Content-Length"));
        CHECK_FALSE(r.has_header("Transfer-Encoding"));
        CHECK(r.header("Connection") == "close");
        CHECK(r.body == pattern(100000));
    }
    {
        Client client(server.port());
        client.send(get("/?close_delimited=1&chunked=1"));  // close_delimited wins over chunked
        Response r = client.read_response();
        CHECK_FALSE(r.chunked);
        CHECK_FALSE(r.has_header("Content-Length"));
        CHECK(r.body == "b1\n");
    }
    {
        Client client(server.port());
        client.send("GET /?close_delimited=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        Response r = client.read_response();
        CHECK_FALSE(r.has_header("Content-Length"));
        CHECK(r.body == "b1\n");
    }
}

TEST_CASE("invalid=1 answers bytes that are not HTTP, then closes", "[demo]") {
    Running server;
    Client client(server.port());
    client.send(get("/?invalid=1&bytes=100"));
    CHECK(client.read_until_closed() == std::string(lb::demo::kInvalidResponse));
    CHECK(server.backend.requests_served() == 1);
}

TEST_CASE("reset_mid_body=1 sends the head and half the body, then a reset", "[demo]") {
    Running server;
    Client client(server.port());
    client.send(get("/?bytes=1000&reset_mid_body=1"));
    std::string got;
    int error = 0;
    for (char buf[4096];;) {
        ssize_t n = ::recv(client.fd(), buf, sizeof buf, 0);
        if (n > 0) {
            got.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            error = n == 0 ? 0 : errno;
            break;
        }
    }
    CHECK(error == ECONNRESET);  // an RST, not a FIN (mid_close=1 ends with a FIN)
    auto head_end = got.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    CHECK(got.find("Content-Length: 1000\r\n") < head_end);
    CHECK(got.substr(head_end + 4) == pattern(500));
    lb::test::wait_until([&] { return server.backend.connections_open() == 0; }, "the backend closed its side");
}

TEST_CASE("silent=1 reads the head, never answers and keeps the connection open", "[demo]") {
    Running server;
    Client client(server.port());
    client.send(get("/"));
    CHECK(client.read_response().status == 200);
    client.send(get("/?silent=1"));
    CHECK(nothing_arrives(client.fd(), 200ms));
    client.send(get("/"));  // read and discarded, never answered
    CHECK(nothing_arrives(client.fd(), 100ms));
    CHECK(server.backend.requests_served() == 1);
    CHECK(server.backend.connections_open() == 1);
    // It still reads: our FIN is seen, and the backend closes its side.
    client.shutdown_write();
    CHECK(client.wait_closed());
    lb::test::wait_until([&] { return server.backend.connections_open() == 0; }, "the backend closed its side");
}

TEST_CASE("a silent backend accepts connections and never reads or answers", "[demo]") {
    Running server({.silent = true});
    Client client(server.port());
    lb::test::wait_until([&] { return server.backend.connections_accepted() == 1; }, "the connection is accepted");
    client.send(get("/"));
    CHECK(nothing_arrives(client.fd(), 200ms));
    // Nothing is read: what we send piles up in the kernel queues until there is no room.
    const uint64_t limit = 256ull << 20;
    CHECK(send_until_stalled(client.fd(), limit) < limit);
    CHECK(unsent_bytes(client.fd()) > 0);
    // Not even our FIN is noticed.
    client.shutdown_write();
    CHECK(nothing_arrives(client.fd(), 100ms));
    CHECK(server.backend.connections_open() == 1);
    CHECK(server.backend.requests_served() == 0);
}  // stop() closes it

TEST_CASE("read_pause_ms=N stops reading the request for N ms", "[demo]") {
    Running server;
    {
        // A long pause: the body piles up in the kernel queues and the client's sends stall.
        Client client(server.port());
        const uint64_t size = 256ull << 20;
        client.send("POST /?read_pause_ms=600000 HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(size) +
                    "\r\n\r\n");
        CHECK(send_until_stalled(client.fd(), size) < size);
        CHECK(unsent_bytes(client.fd()) > 0);
        CHECK(server.backend.requests_served() == 0);
    }  // the client leaves; the paused backend notices only at stop()
    {
        // A short pause: then the whole body is read and the request answered, and the next one too.
        Client client(server.port());
        const size_t size = 4 << 20;
        const auto start = std::chrono::steady_clock::now();
        client.send("POST /?read_pause_ms=100 HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(size) +
                    "\r\n\r\n");
        client.send(std::string(size, 'u'));
        Response r = client.read_response();
        CHECK(std::chrono::steady_clock::now() - start >= 99ms);  // libuv's timers count whole milliseconds
        CHECK(r.header("X-Received-Body-Bytes") == std::to_string(size));
        // A request without a body is paused and answered too, and one pipelined behind it follows.
        client.send(get("/?read_pause_ms=20") + get("/after"));
        CHECK(client.read_response().header("X-Conn-Request") == "2");
        CHECK(client.read_response().header("X-Conn-Request") == "3");
    }
}

TEST_CASE("bogus_body=N sends a body where none is allowed", "[demo]") {
    Running server;
    struct Case {
        const char* method;
        const char* target;
        const char* status_line;
    };
    for (const Case& c : {Case{"GET", "/?status=204&bogus_body=5", "HTTP/1.1 204 No Content\r\n"},
                          Case{"GET", "/?status=304&bogus_body=5&chunked=1", "HTTP/1.1 304 Not Modified\r\n"},
                          Case{"GET", "/?status=100&bogus_body=5", "HTTP/1.1 100 Continue\r\n"},
                          Case{"HEAD", "/?bogus_body=5", "HTTP/1.1 200 OK\r\n"}}) {
        INFO(c.method << " " << c.target);
        Client client(server.port());
        client.send(std::string(c.method) + " " + c.target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        std::string raw = client.read_until_closed();
        CHECK(raw.rfind(c.status_line, 0) == 0);
        CHECK(raw.ends_with("\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde"));
        CHECK(raw.find("Transfer-Encoding") == std::string::npos);
    }
}

TEST_CASE("stray=N follows a complete response with junk, at once or later", "[demo]") {
    Running server;
    {
        Client client(server.port());
        client.send(get("/?stray=5", "Connection: close\r\n"));
        CHECK(client.read_until_closed().ends_with("\r\nContent-Length: 3\r\nConnection: close\r\n\r\nb1\n#####"));
    }
    {
        // stray_delay_ms: later, in a write of its own, and before the next pipelined response.
        Client client(server.port());
        const auto start = std::chrono::steady_clock::now();
        client.send(get("/?stray=3&stray_delay_ms=100") + get("/next"));
        const std::string all = read_until(client, "X-Conn-Request: 2\r\n");
        // The next response waits for the stray bytes, which wait for the delay.
        CHECK(std::chrono::steady_clock::now() - start >= 99ms);
        const auto stray_at = all.find("\r\n\r\nb1\n###HTTP/1.1 200 OK\r\n");
        CHECK(stray_at != std::string::npos);
        CHECK(all.find("HTTP/1.1", 1) > stray_at);
    }
}

TEST_CASE("interim_body=1 sends a 100 with a body before the final response", "[demo]") {
    Running server;
    Client client(server.port());
    client.send(get("/?interim_body=1", "Connection: close\r\n"));
    const std::string raw = client.read_until_closed();
    const std::string interim(lb::demo::kInterimWithBody);
    CHECK(raw.rfind(interim + "HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(raw.ends_with("\r\n\r\nb1\n"));
}

TEST_CASE("/stats reports the backend's counters", "[demo]") {
    Running server({.id = "s1"});
    CHECK(lb::test::http_get(server.port(), "/").status == 200);
    CHECK(lb::test::http_get(server.port(), "/health").status == 200);
    lb::test::wait_until([&] { return server.backend.connections_open() == 0; }, "both connections are closed");
    Response r = lb::test::http_get(server.port(), "/stats");
    // Its own connection and request count.
    CHECK(r.body == "{\"id\": \"s1\", \"connections_accepted\": 3, \"requests_served\": 3, \"connections_open\": 1}\n");
}

TEST_CASE("stop() closes everything and can be followed by start()", "[demo]") {
    DemoBackend backend({.threads = 2});
    backend.start();
    const uint16_t port = backend.port();
    REQUIRE(port != 0);
    Client idle(port);
    idle.send(get("/"));
    CHECK(idle.read_response().status == 200);
    Client waiting(port);
    waiting.send(get("/?delay_ms=60000"));  // a response in progress
    Client streaming(port);
    streaming.send(get("/?bytes=1073741824"));  // a response blocked on backpressure
    read_until(streaming, "\r\n\r\n");
    // Wait until both requests are being served: readiness by counters, not by sleeping.
    while (backend.requests_served() < 3) std::this_thread::yield();

    // stop() must not wait for the 60 s delay: the 30 s watchdog fails the test if it does.
    backend.stop();  // aborts the process if a loop still has handles
    CHECK(idle.wait_closed());
    CHECK(waiting.wait_closed());
    backend.stop();  // idempotent

    // Nothing listens any more.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0);
    ::close(fd);

    backend.start();
    Response again = lb::test::http_get(backend.port(), "/");
    CHECK(again.status == 200);
    CHECK(again.header("X-Conn-Id") == "4");  // serials continue across a restart
}

TEST_CASE("several threads share one port", "[demo]") {
    Running server({.id = "multi", .threads = 4});
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 40; ++i) clients.push_back(std::make_unique<Client>(server.port()));
    for (auto& c : clients) c->send(get("/"));
    std::set<std::string> ids;
    for (auto& c : clients) {
        Response r = c->read_response();
        CHECK(r.body == "multi\n");
        ids.insert(r.header("X-Conn-Id"));
    }
    CHECK(ids.size() == 40);  // serials are unique across threads
    CHECK(server.backend.connections_accepted() == 40);
}

TEST_CASE("lb-demo-backend runs, serves and stops on SIGTERM", "[demo][process]") {
    const std::string log = lb::test::write_temp_file("demo-backend.log", "");
    lb::test::Process process({LB_DEMO_BACKEND_BINARY, "--port", "0", "--id", "cli7", "--threads", "2"}, log);
    const uint16_t port = wait_for_demo_port(process, log, "cli7");  // readiness: the line it prints once accepting
    Response r = lb::test::http_get(port, "/");
    CHECK(r.body == "cli7\n");

    // 1 GiB goes through without the backend's memory growing with it.
    Client client(port, std::chrono::seconds{60});
    client.send(get("/?bytes=1073741824", "Connection: close\r\n"));
    std::vector<char> buf(1 << 20);
    uint64_t received = 0;
    for (ssize_t n; (n = ::recv(client.fd(), buf.data(), buf.size(), 0)) > 0;) received += static_cast<uint64_t>(n);
    CHECK(received > (1ull << 30));
    CHECK(process.peak_rss_bytes() < (64ull << 20) + (1ull << 30) / 16);

    process.signal(SIGTERM);
    CHECK(process.wait() == 0);

    auto help = lb::test::run_command(std::string(LB_DEMO_BACKEND_BINARY) + " --help");
    CHECK(help.exit_code == 0);
    CHECK(help.output.find("--threads") != std::string::npos);
    CHECK(lb::test::run_command(std::string(LB_DEMO_BACKEND_BINARY) + " --bogus").exit_code == 2);
}

TEST_CASE("lb-demo-backend --silent accepts and never answers", "[demo][process]") {
    const std::string log = lb::test::write_temp_file("demo-backend-silent.log", "");
    lb::test::Process process({LB_DEMO_BACKEND_BINARY, "--port", "0", "--id", "quiet", "--silent"}, log);
    const uint16_t port = wait_for_demo_port(process, log, "quiet");
    Client client(port);
    client.send(get("/health"));
    CHECK(nothing_arrives(client.fd(), 200ms));
    process.signal(SIGTERM);
    CHECK(process.wait() == 0);
    CHECK(client.wait_closed());  // stopping closes what it held
}

// ---- HTTPS ------------------------------------------------------------------------------------------------------
// The same backend with a certificate: real clients (curl, openssl s_client) check what it presents, and the test
// Client, through a TlsBridge, checks that every control and the backpressure work as they do in plain HTTP.

namespace {

using lb::test::test_certs;
using lb::test::TlsBridge;

DemoBackendOptions https_options(const lb::test::CertAndKey& pair, const std::string& client_ca = "") {
    DemoBackendOptions options;
    options.tls_cert = pair.cert;
    options.tls_key = pair.key;
    options.tls_client_ca = client_ca;
    return options;
}

TlsBridge::Options bridge_to(uint16_t port) { return {.tls_port = port, .ca_file = test_certs().ca.cert}; }

// curl with a bound on its run time; stdout is the body unless -o says otherwise.
lb::test::CommandResult curl(const std::string& arguments) {
    return lb::test::run_command("curl --silent --show-error --max-time 20 " + arguments);
}

}  // namespace

TEST_CASE("HTTPS: curl verifies the certificate and keeps the connection alive", "[demo][tls]") {
    const auto& certs = test_certs();
    const lb::test::CertAndKey& pair = GENERATE(test_certs().localhost_rsa, test_certs().localhost_ecdsa);
    Running server(https_options(pair));
    const std::string port = std::to_string(server.port());

    // Two URLs in one curl: the second goes on the same connection (num_connects counts new ones). 127.0.0.1 is
    // one of the certificate's names too.
    auto both = curl("--cacert " + certs.ca.cert + " -w ' connects=%{num_connects} version=%{http_version}\\n' " +
                     "'https://127.0.0.1:" + port + "/?bytes=5' 'https://127.0.0.1:" + port + "/?status=201'");
    CHECK(both.exit_code == 0);
    CHECK(both.output == "abcde connects=1 version=1.1\nb1\n connects=0 version=1.1\n");
    CHECK(server.backend.connections_accepted() == 1);
    CHECK(server.backend.requests_served() == 2);
    CHECK(server.backend.tls_handshakes() == 1);

    auto head = curl("--cacert " + certs.ca.cert + " -D - -o /dev/null https://localhost:" + port + "/");
    CHECK(head.exit_code == 0);
    CHECK_THAT(head.output, Catch::Matchers::Contains("X-TLS-Version: TLSv1.3\r\n") &&
                                Catch::Matchers::Contains("X-TLS-SNI: localhost\r\n") &&
                                !Catch::Matchers::Contains("X-TLS-Client"));

    // Without the CA curl refuses the certificate; with the wrong name too (the certificate is for localhost).
    CHECK(curl("https://localhost:" + port + "/").exit_code == 60);
    CHECK(curl("--cacert " + certs.ca.cert + " --resolve other.test:" + port + ":127.0.0.1 https://other.test:" + port +
               "/")
              .exit_code == 60);
    // Plain HTTP on the HTTPS port gets no answer.
    CHECK(curl("http://127.0.0.1:" + port + "/").exit_code == 52);
    CHECK(server.backend.tls_failures() >= 1);
}

TEST_CASE("HTTPS: openssl s_client, TLS 1.2 and 1.3, and session resumption", "[demo][tls]") {
    const auto& certs = test_certs();
    Running server(https_options(certs.localhost_ecdsa));
    const std::string session = lb::test::write_temp_file("demo-tls.session", "");
    const std::string s_client =
        "printf 'GET /?bytes=3 HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
        "timeout 20 openssl s_client -connect 127.0.0.1:" +
        std::to_string(server.port()) + " -servername localhost -CAfile " + certs.ca.cert +
        " -verify_return_error -ign_eof ";

    auto first = lb::test::run_command(s_client + "-brief -sess_out " + session);
    CHECK(first.exit_code == 0);
    CHECK_THAT(first.output, Catch::Matchers::Contains("Protocol version: TLSv1.3") &&
                                 Catch::Matchers::Contains("Verification: OK") &&
                                 Catch::Matchers::Contains("HTTP/1.1 200 OK\r\n") &&
                                 Catch::Matchers::EndsWith("\r\n\r\nabc"));
    auto resumed = lb::test::run_command(s_client + "-sess_in " + session);
    CHECK(resumed.exit_code == 0);
    CHECK_THAT(resumed.output, Catch::Matchers::Contains("Reused, TLSv1.3"));
    CHECK(server.backend.tls_resumed() == 1);

    auto tls12 = lb::test::run_command(s_client + "-brief -tls1_2");
    CHECK(tls12.exit_code == 0);
    CHECK_THAT(tls12.output, Catch::Matchers::Contains("Protocol version: TLSv1.2") &&
                                 Catch::Matchers::Contains("X-TLS-Version: TLSv1.2\r\n"));
    // TLS 1.1 and older are refused.
    CHECK(lb::test::run_command(s_client + "-brief -tls1_1").exit_code != 0);
    CHECK(server.backend.tls_handshakes() == 3);
}

TEST_CASE("HTTPS: keep-alive, pipelining and the query controls work as in HTTP", "[demo][tls]") {
    Running server(https_options(test_certs().localhost_rsa));
    {
        TlsBridge bridge(bridge_to(server.port()));
        Client client(bridge.port());
        client.send(get("/first?delay_ms=50&status=201") + get("/second?bytes=70000&chunked=1") +
                    get("/third?echo=headers"));
        Response first = client.read_response();
        Response second = client.read_response();
        Response third = client.read_response();
        CHECK(first.status == 201);
        CHECK(first.header("X-TLS-Version") == "TLSv1.3");
        CHECK(second.chunked);
        CHECK(second.body == pattern(70000));
        CHECK(second.header("X-Conn-Request") == "2");
        CHECK(third.body == "GET /third?echo=headers HTTP/1.1\nHost: test\n");

        client.send("POST /?echo=body HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        CHECK_THAT(read_until(client, "hello"), Catch::Matchers::Contains("X-Conn-Request: 4\r\n"));
        client.send("6\r\n world\r\n0\r\n\r\n");
        read_until(client, "\r\n0\r\n\r\n");
        client.send(get("/?status=204") + get("/last", "Connection: close\r\n"));
        Response no_content = client.read_response();
        CHECK(no_content.status == 204);
        CHECK_FALSE(no_content.has_header("Content-Length"));
        Response last = client.read_response();
        CHECK(last.header("X-Conn-Request") == "6");
        CHECK(last.header("Connection") == "close");
        // A graceful close ends TLS with close_notify, then the FIN.
        CHECK(client.wait_closed());
        CHECK(bridge.end() == TlsBridge::End::close_notify);
    }
    {
        // HTTP/1.0 without keep-alive, and a client that ends with close_notify after its request.
        TlsBridge bridge(bridge_to(server.port()));
        Client client(bridge.port());
        client.send("GET /?bytes=3 HTTP/1.0\r\n\r\n");
        client.shutdown_write();
        Response r = client.read_response();
        CHECK(r.body == "abc");
        CHECK(r.header("Connection") == "close");
        CHECK(client.wait_closed());
    }
    CHECK(server.backend.connections_accepted() == 2);
    CHECK(server.backend.tls_failures() == 0);
}

TEST_CASE("HTTPS: drop, mid_close and reset_mid_body end the TLS stream as they end TCP", "[demo][tls]") {
    Running server(https_options(test_certs().localhost_ecdsa));
    {
        TlsBridge bridge(bridge_to(server.port()));
        Client client(bridge.port());
        client.send(get("/?drop=1"));
        CHECK(client.wait_closed());
        CHECK(bridge.end() == TlsBridge::End::eof_without_notify);
    }
    {
        TlsBridge bridge(bridge_to(server.port()));
        Client client(bridge.port());
        client.send(get("/?bytes=1000&mid_close=1"));
        std::string got = client.read_until_closed();
        CHECK(got.ends_with("\r\n\r\n" + pattern(500)));
        CHECK(bridge.end() == TlsBridge::End::eof_without_notify);
    }
    {
        TlsBridge bridge(bridge_to(server.port()));
        Client client(bridge.port());
        client.send(get("/?bytes=1000&reset_mid_body=1"));
        std::string got;
        int error = 0;
        for (char buf[4096];;) {
            ssize_t n = ::recv(client.fd(), buf, sizeof buf, 0);
            if (n > 0) {
                got.append(buf, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                error = n == 0 ? 0 : errno;
                break;
            }
        }
        CHECK(error == ECONNRESET);  // the bridge passes the reset on
        CHECK(got.ends_with("\r\n\r\n" + pattern(500)));
        CHECK(bridge.end() == TlsBridge::End::reset);
    }
}

TEST_CASE("HTTPS: echo=body applies backpressure through TLS", "[demo][tls]") {
    lb::test::set_watchdog_limit(std::chrono::seconds{90});
    Running server(https_options(test_certs().localhost_ecdsa));
    TlsBridge bridge(bridge_to(server.port()));
    Client client(bridge.port(), std::chrono::seconds{30});
    const size_t size = 32 << 20;
    const std::string piece = pattern(1 << 20);
    client.send("POST /?echo=body HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n");
    std::atomic<uint64_t> sent{0};
    std::atomic<bool> stalled{false};
    std::atomic<int> send_errno{0};
    std::jthread sender([&](std::stop_token stop) {
        const int fd = client.fd();
        uint64_t offset = 0;
        while (offset < size && !stop.stop_requested()) {
            const size_t at = static_cast<size_t>(offset % piece.size());
            ssize_t n = ::send(fd, piece.data() + at, piece.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                offset += static_cast<uint64_t>(n);
                sent.store(offset);
                stalled.store(false);
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                stalled.store(true);
                pollfd p{fd, POLLOUT, 0};
                ::poll(&p, 1, 50);
            } else if (!(n < 0 && errno == EINTR)) {
                send_errno.store(errno);
                return;
            }
        }
    });
    lb::test::wait_until([&] { return server.backend.connections_held_back() == 1 && stalled.load(); },
                         "the backend holds back and the sender stalls", std::chrono::seconds{60});
    CHECK(sent.load() < size);
    CHECK(server.backend.backpressure_stops() >= 1);
    // What the backend holds is bounded as in HTTP: 1 MiB queued (ciphertext now), plus what one read brings.
    CHECK(server.backend.write_queue_peak_bytes() < (2u << 20));

    Response r = client.read_response();
    sender.join();
    CHECK(send_errno.load() == 0);
    REQUIRE(r.body.size() == size);
    size_t mismatches = 0;
    for (size_t offset = 0; offset < size; offset += piece.size()) {
        mismatches += r.body.compare(offset, piece.size(), piece) != 0;
    }
    CHECK(mismatches == 0);
    CHECK(server.backend.connections_held_back() == 0);
}

TEST_CASE("HTTPS with --tls-client-ca: a client certificate from that CA is required", "[demo][tls]") {
    const auto& certs = test_certs();
    Running server(https_options(certs.localhost_rsa, certs.ca.cert));
    const std::string url = " https://localhost:" + std::to_string(server.port()) + "/";
    const std::string trust = "--cacert " + certs.ca.cert;

    auto accepted = curl(trust + " --cert " + certs.client.cert + " --key " + certs.client.key + " -D -" + url);
    CHECK(accepted.exit_code == 0);
    CHECK_THAT(accepted.output, Catch::Matchers::Contains("X-TLS-Client: CN=lb test client,O=lb tests\r\n"));

    // No certificate, or one from another CA: TLS 1.3 finds out after the client's handshake, at its first read.
    CHECK(curl(trust + url).exit_code != 0);
    CHECK(curl(trust + " --cert " + certs.other_client.cert + " --key " + certs.other_client.key + url).exit_code != 0);
    CHECK(server.backend.tls_failures() == 2);
    CHECK(server.backend.requests_served() == 1);

    // The bridge reports what the server said.
    TlsBridge bridge(bridge_to(server.port()));
    Client client(bridge.port());
    client.send(get("/"));
    CHECK(client.wait_closed());
    CHECK(bridge.end() == TlsBridge::End::tls_error);
    CHECK_THAT(bridge.error(), Catch::Matchers::Contains("certificate required"));

    TlsBridge::Options with_certificate = bridge_to(server.port());
    with_certificate.client_cert = certs.client.cert;
    with_certificate.client_key = certs.client.key;
    with_certificate.tls1_2_only = true;
    TlsBridge bridge12(with_certificate);
    Client client12(bridge12.port());
    client12.send(get("/"));
    Response r = client12.read_response();
    CHECK(r.header("X-TLS-Version") == "TLSv1.2");
    CHECK(r.header("X-TLS-Client") == "CN=lb test client,O=lb tests");
}

TEST_CASE("HTTPS: TLS files OpenSSL cannot use stop start()", "[demo][tls]") {
    const auto& certs = test_certs();
    DemoBackend missing(https_options({certs.dir + "/missing.pem", certs.localhost_rsa.key}));
    CHECK_THROWS_WITH(missing.start(), Catch::Matchers::StartsWith("TLS certificate " + certs.dir + "/missing.pem"));
    DemoBackend mismatched(https_options({certs.localhost_rsa.cert, certs.other.key}));
    CHECK_THROWS_WITH(mismatched.start(), Catch::Matchers::StartsWith("TLS key "));
    DemoBackend bad_ca(https_options(certs.localhost_rsa, certs.localhost_rsa.key));
    CHECK_THROWS_WITH(bad_ca.start(), Catch::Matchers::StartsWith("TLS client CA "));
    CHECK(missing.port() == 0);
}

TEST_CASE("lb-demo-backend --tls-cert --tls-key serves HTTPS", "[demo][tls][process]") {
    const auto& certs = test_certs();
    const std::string log = lb::test::write_temp_file("demo-backend-tls.log", "");
    lb::test::Process process(
        {LB_DEMO_BACKEND_BINARY, "--port", "0", "--id", "s1", "--tls-cert", certs.localhost_ecdsa.cert, "--tls-key",
         certs.localhost_ecdsa.key, "--tls-client-ca", certs.ca.cert},
        log);
    const uint16_t port = wait_for_demo_port(process, log, "s1");
    auto r = curl("--cacert " + certs.ca.cert + " --cert " + certs.client.cert + " --key " + certs.client.key +
                  " https://localhost:" + std::to_string(port) + "/");
    CHECK(r.exit_code == 0);
    CHECK(r.output == "s1\n");
    process.signal(SIGTERM);
    CHECK(process.wait() == 0);

    const std::string binary = LB_DEMO_BACKEND_BINARY;
    CHECK(lb::test::run_command(binary + " --tls-cert " + certs.localhost_ecdsa.cert).exit_code == 2);
    CHECK(lb::test::run_command(binary + " --tls-client-ca " + certs.ca.cert).exit_code == 2);
    auto unusable = lb::test::run_command(binary + " --port 0 --tls-cert " + certs.localhost_ecdsa.cert +
                                          " --tls-key " + certs.other.key);
    CHECK(unusable.exit_code == 1);
    CHECK_THAT(unusable.output, Catch::Matchers::Contains("cannot start: TLS key"));
}
