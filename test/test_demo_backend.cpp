// The demo backend over real sockets: an in-process DemoBackend on port 0 per test, plus the lb-demo-backend
// executable, plus the pure query-parameter parser.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "demo/demo_backend.h"
#include "demo/request_controls.h"
#include "test/support/test_support.h"

using lb::demo::DemoBackend;
using lb::demo::DemoBackendOptions;
using lb::test::Client;
using lb::test::Response;
using lb::test::Watchdog;

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
    auto bad = parse_request_controls("/?status=abc&status=42&bytes=-1&delay_ms=&x&=3&&chunked");
    CHECK(bad.status == 200);
    CHECK_FALSE(bad.bytes.has_value());
    CHECK(bad.delay_ms == 0);
    CHECK_FALSE(bad.chunked);
    CHECK(parse_request_controls("/?status=500&status=404").status == 404);

    CHECK(lb::demo::reason_phrase(404) == "Not Found");
    CHECK(lb::demo::reason_phrase(299) == "Unknown");
    CHECK(lb::demo::status_forbids_body(204));
    CHECK(lb::demo::status_forbids_body(304));
    CHECK_FALSE(lb::demo::status_forbids_body(200));
}

TEST_CASE("default response carries who served it", "[demo]") {
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{60}};
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
    Watchdog watchdog{std::chrono::seconds{90}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{60}};
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
    Watchdog watchdog{std::chrono::seconds{60}};
    Running server;
    Client client(server.port(), std::chrono::seconds{30});
    const size_t size = 16 << 20;
    std::thread sender([&] {
        std::string head =
            "POST /?echo=body HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n";
        client.send(head);
        const std::string piece = pattern(1 << 20);
        for (size_t sent = 0; sent < size; sent += piece.size()) client.send(piece);
    });
    Response r = client.read_response();
    sender.join();
    CHECK(r.chunked);
    CHECK(r.body.size() == size);
    CHECK(r.body == [&] {
        std::string all;
        for (size_t i = 0; i < size; i += 1 << 20) all += pattern(1 << 20);
        return all;
    }());
}

TEST_CASE("drop and drop_if_reused close without a response", "[demo]") {
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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

TEST_CASE("stop() closes everything and can be followed by start()", "[demo]") {
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{30}};
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
    Watchdog watchdog{std::chrono::seconds{60}};
    const std::string log = lb::test::write_temp_file("demo-backend.log", "");
    lb::test::Process process({LB_DEMO_BACKEND_BINARY, "--port", "0", "--id", "cli7", "--threads", "2"}, log);
    // Readiness: the line it prints once accepting.
    std::smatch match;
    const std::regex listening("lb-demo-backend cli7 listening on 127\\.0\\.0\\.1:([0-9]+)\n");
    std::string text;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};;) {
        std::ifstream in(log);
        text.assign(std::istreambuf_iterator<char>(in), {});
        if (std::regex_search(text, match, listening)) break;
        REQUIRE(process.running());
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
    const auto port = static_cast<uint16_t>(std::stoi(match[1]));
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
