// What lb forwards and in which order: round robin, keep-alive on both sides, pipelining, header rules,
// bodies that must not exist (HEAD, 204, 304), Expect: 100-continue and HTTP/1.0 clients.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <mutex>

#include "test/support/proxy_fixture.h"
#include "test/support/raw_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;

namespace {
const std::string kGet = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
}

TEST_CASE("one shard cycles through the backends in order", "[forwarding]") {
    ProxyFixture proxy(3);
    std::vector<std::string> served;
    for (int i = 0; i < 6; ++i) served.push_back(http_get(proxy.port(), "/").header("X-Backend-Id"));
    CHECK(served == std::vector<std::string>{"b1", "b2", "b3", "b1", "b2", "b3"});
}

TEST_CASE("one upstream connection serves 100 keep-alive requests", "[forwarding][keepalive]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    for (int i = 1; i <= 100; ++i) {
        client.send(kGet);
        Response r = client.read_response();
        REQUIRE(r.status == 200);
        REQUIRE(r.body == "b1\n");
        REQUIRE(r.header("X-Conn-Request") == std::to_string(i));
    }
    CHECK(proxy.backend(0).connections_accepted() == 1);
}

TEST_CASE("pipelined requests are answered in order", "[forwarding][pipelining]") {
    ProxyFixture proxy(3);
    Client client(proxy.port());
    // The first is the slowest: answers must still come back in request order.
    client.send(
        "GET /?delay_ms=100 HTTP/1.1\r\nHost: test\r\n\r\n"
        "GET /second HTTP/1.1\r\nHost: test\r\n\r\n"
        "GET /third HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    CHECK(client.read_response().header("X-Backend-Id") == "b1");
    CHECK(client.read_response().header("X-Backend-Id") == "b2");
    Response last = client.read_response();
    CHECK(last.header("X-Backend-Id") == "b3");
    CHECK(last.header("Connection") == "close");
    CHECK(client.wait_closed());
}

TEST_CASE("hop-by-hop headers stay on their hop, X-Forwarded-* are set and Host is preserved",
          "[forwarding][headers]") {
    ProxyFixture proxy(1);
    Response r = http_exchange(proxy.port(),
                               "GET /path?echo=headers HTTP/1.1\r\n"
                               "Host: app.example\r\n"
                               "Connection: keep-alive, X-Secret-Hop\r\n"
                               "Keep-Alive: timeout=5\r\n"
                               "Proxy-Connection: keep-alive\r\n"
                               "TE: trailers\r\n"
                               "Upgrade: websocket\r\n"
                               "X-Secret-Hop: must-not-pass\r\n"
                               "X-Forwarded-For: 203.0.113.7\r\n"
                               "X-Forwarded-Proto: https\r\n"
                               "X-End-To-End: kept\r\n"
                               "\r\n");
    REQUIRE(r.status == 200);
    const std::string& seen = r.body;
    INFO(seen);
    CHECK(seen.rfind("GET /path?echo=headers HTTP/1.1\n", 0) == 0);
    CHECK(seen.find("Host: app.example\n") != std::string::npos);
    CHECK(seen.find("X-End-To-End: kept\n") != std::string::npos);
    CHECK(seen.find("X-Forwarded-For: 203.0.113.7, 127.0.0.1\n") != std::string::npos);
    CHECK(seen.find("X-Forwarded-Proto: http\n") != std::string::npos);
    CHECK(seen.find("https") == std::string::npos);
    for (const char* hop : {"Connection:", "Keep-Alive:", "Proxy-Connection:", "TE:", "Upgrade:", "X-Secret-Hop:"}) {
        INFO(hop);
        CHECK(seen.find(hop) == std::string::npos);
    }
}

TEST_CASE("the backend's hop-by-hop response headers are not passed to the client", "[forwarding][headers]") {
    // Every hop-by-hop field a response can carry, a chunk extension and a trailer: lb frames the body itself.
    RawBackend backend([](int fd) {
        while (!RawBackend::read_head(fd).empty()) {
            if (!RawBackend::write_all(fd,
                                       "HTTP/1.1 200 OK\r\n"
                                       "Connection: keep-alive, X-Named-By-Connection\r\n"
                                       "X-Named-By-Connection: must-not-pass\r\n"
                                       "Keep-Alive: timeout=5, max=100\r\n"
                                       "Proxy-Connection: keep-alive\r\n"
                                       "TE: trailers\r\n"
                                       "Trailer: X-Checksum\r\n"
                                       "Upgrade: h2c\r\n"
                                       "Transfer-Encoding: chunked\r\n"
                                       "X-End-To-End: kept\r\n"
                                       "\r\n"
                                       "2;ext=must-not-pass\r\nok\r\n0\r\nX-Checksum: must-not-pass\r\n\r\n")) {
                return;
            }
        }
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) { c.backends = make_config({backend.port()}).backends; });
    // What lb itself may write: its own framing and, at the end, its own Connection: close.
    auto check_head = [](const std::string& raw) {
        INFO(raw);
        for (const char* hop : {"X-Named-By-Connection", "Keep-Alive", "Proxy-Connection", "TE:", "Trailer", "Upgrade",
                                "must-not-pass", "keep-alive", "ext="}) {
            INFO(hop);
            CHECK(raw.find(hop) == std::string::npos);
        }
        CHECK(raw.find("X-End-To-End: kept\r\n") != std::string::npos);
    };
    SECTION("an HTTP/1.1 client gets lb's own chunks") {
        Client client(proxy.port());
        client.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        std::string raw = client.read_until_closed();
        check_head(raw);
        size_t body = raw.find("\r\n\r\n") + 4;
        CHECK(raw.substr(body) == "2\r\nok\r\n0\r\n\r\n");  // no extension, no trailer
        std::string head = raw.substr(0, body);
        CHECK(head.find("Transfer-Encoding: chunked\r\n") == head.rfind("Transfer-Encoding"));  // lb's, once
        CHECK(head.find("Connection: close\r\n") == head.rfind("Connection"));                  // lb's, once
    }
    SECTION("an HTTP/1.0 client gets the body until the close, with no Transfer-Encoding") {
        Client client(proxy.port());
        client.send("GET / HTTP/1.0\r\n\r\n");
        std::string raw = client.read_until_closed();
        check_head(raw);
        CHECK(raw.find("Transfer-Encoding") == std::string::npos);
        CHECK(raw.substr(raw.find("\r\n\r\n") + 4) == "ok");
    }
    SECTION("the client connection stays open on its own terms") {
        Client client(proxy.port());
        client.send(kGet);
        Response r = client.read_response();
        CHECK(r.status == 200);
        CHECK(r.body == "ok");
        CHECK_FALSE(r.has_header("Connection"));
        client.send(kGet);
        CHECK(client.read_response().body == "ok");
    }
}

TEST_CASE("a chunked request body is re-chunked: chunk extensions and trailers are not forwarded",
          "[forwarding][chunked]") {
    // The backend keeps the raw bytes of the body it received, up to the end of the chunked message.
    std::mutex mutex;
    std::string received;  // guarded by mutex
    RawBackend backend([&](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        std::string body;
        char c;
        while (body.size() < 5 || body.compare(body.size() - 5, 5, "0\r\n\r\n") != 0) {
            if (::recv(fd, &c, 1, 0) != 1) return;
            body.push_back(c);
        }
        {
            std::lock_guard lock(mutex);
            received = body;
        }
        RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) { c.backends = make_config({backend.port()}).backends; });
    Client client(proxy.port());
    client.send(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        "5;ext=must-not-pass\r\nhello\r\n6;name=\"quoted\"\r\n world\r\n0;last=yes\r\nX-Checksum: abc\r\n\r\n");
    CHECK(client.read_response().body == "ok");
    std::lock_guard lock(mutex);
    INFO(received);
    CHECK(received.find(';') == std::string::npos);
    CHECK(received.find("X-Checksum") == std::string::npos);
    // Plain chunks carrying the same bytes, then the last chunk with an empty trailer section.
    std::string data;
    for (size_t at = 0;;) {
        size_t line_end = received.find("\r\n", at);
        REQUIRE(line_end != std::string::npos);
        size_t size = std::stoul(received.substr(at, line_end - at), nullptr, 16);
        if (size == 0) {
            CHECK(received.substr(line_end) == "\r\n\r\n");
            break;
        }
        data += received.substr(line_end + 2, size);
        at = line_end + 2 + size + 2;
    }
    CHECK(data == "hello world");
}

TEST_CASE("a close-delimited response reaches an HTTP/1.1 client chunked, on a connection that stays open",
          "[forwarding][close-delimited]") {
    ProxyFixture proxy(1);
    std::string pattern;
    for (int i = 0; i < 100000; ++i) pattern += static_cast<char>('a' + i % 26);
    SECTION("HTTP/1.1") {
        Client client(proxy.port());
        client.send("GET /?close_delimited=1&bytes=100000 HTTP/1.1\r\nHost: t\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 200);
        CHECK(r.chunked);
        CHECK_FALSE(r.has_header("Content-Length"));
        CHECK_FALSE(r.has_header("Connection"));
        CHECK(r.body == pattern);
        // The backend's connection ended with its response; the client's did not.
        client.send(kGet);
        Response next = client.read_response();
        CHECK(next.status == 200);
        CHECK(next.header("X-Conn-Id") != r.header("X-Conn-Id"));
        CHECK(proxy.backend(0).connections_accepted() == 2);
    }
    SECTION("HTTP/1.0: sent until the close") {
        Client client(proxy.port());
        client.send("GET /?close_delimited=1&bytes=100000 HTTP/1.0\r\n\r\n");
        std::string raw = client.read_until_closed();
        CHECK(raw.rfind("HTTP/1.1 200", 0) == 0);
        CHECK(raw.find("Transfer-Encoding") == std::string::npos);
        CHECK(raw.find("Connection: close\r\n") != std::string::npos);
        CHECK(raw.substr(raw.find("\r\n\r\n") + 4) == pattern);
    }
}

TEST_CASE("limits.request_body_bytes: 0 lets a body of any size through", "[forwarding][limits]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.limits.request_body_bytes = 0; });
    SECTION("a declared length beyond the default limit of 1 GiB") {
        // The backend echoes the body as it arrives, so the head answers long before 5 GiB could be sent.
        Client client(proxy.port());
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
    }
    SECTION("a chunked body, counted as it streams") {
        const size_t size = 3 << 20;
        Client client(proxy.port());
        client.send("POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
        for (size_t sent = 0; sent < size; sent += 0x10000) client.send(chunk);
        client.send("0\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 200);
        CHECK(r.header("X-Received-Body-Bytes") == std::to_string(size));
    }
}

TEST_CASE("HEAD, 204 and 304 responses carry no body", "[forwarding][bodies]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send("HEAD /?bytes=5000 HTTP/1.1\r\nHost: test\r\n\r\n");
    Response head = client.read_response(true);
    CHECK(head.status == 200);
    CHECK(head.header("Content-Length") == "5000");
    for (int status : {204, 304}) {
        client.send("GET /?status=" + std::to_string(status) + " HTTP/1.1\r\nHost: test\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == status);
        CHECK(r.body.empty());
    }
    // Had a body slipped through, it would be read here as the start of this response.
    client.send(kGet);
    Response after = client.read_response();
    CHECK(after.status == 200);
    CHECK(after.body == "b1\n");
}

TEST_CASE("Expect: 100-continue gets the interim response before the body is sent", "[forwarding][expect]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    Response interim = client.read_response();
    REQUIRE(interim.status == 100);
    client.send("hello");
    Response final_response = client.read_response();
    CHECK(final_response.status == 200);
    CHECK(final_response.header("X-Received-Body-Bytes") == "5");
}

TEST_CASE("HTTP/1.0 clients: keep-alive on request, close otherwise, no chunked encoding", "[forwarding][http10]") {
    ProxyFixture proxy(1);
    {
        Client client(proxy.port());
        client.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 200);
        CHECK(r.header("Connection") == "keep-alive");
        client.send("GET /?chunked=1&bytes=3000 HTTP/1.0\r\n\r\n");
        // A chunked response cannot go to an HTTP/1.0 client: it is sent whole and the connection closes.
        std::string rest = client.read_until_closed();
        CHECK(rest.find("Transfer-Encoding") == std::string::npos);
        CHECK(rest.find("Connection: close") != std::string::npos);
        CHECK(rest.size() > 3000);
        CHECK(rest.substr(rest.size() - 3000).find("\r\n") == std::string::npos);
    }
    {
        Client client(proxy.port());
        client.send("GET / HTTP/1.0\r\n\r\n");
        CHECK(client.read_response().status == 200);
        CHECK(client.wait_closed());
    }
}

TEST_CASE("curl sees traffic flow through lb", "[forwarding][curl]") {
    ProxyFixture proxy(3);
    auto result = run_command("curl -s --max-time 10 http://127.0.0.1:" + std::to_string(proxy.port()) +
                              "/ http://127.0.0.1:" + std::to_string(proxy.port()) + "/");
    CHECK(result.exit_code == 0);
    CHECK(result.output == "b1\nb2\n");
}

TEST_CASE("a client that half-closes after its request still gets the response", "[forwarding][halfclose]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send("GET /?delay_ms=50 HTTP/1.1\r\nHost: t\r\n\r\n");
    client.shutdown_write();
    Response r = client.read_response();
    CHECK(r.status == 200);
    CHECK(r.body == "b1\n");
    CHECK(r.header("Connection") == "close");
    CHECK(client.wait_closed());
}
