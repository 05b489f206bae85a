// Hostile peers, in-process: memory per connection stays within its stated bound whatever a client or backend does,
// responses are framed exactly whatever the backend sends, and the request rules that keep a client from making
// lb lie to a backend.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "core/proxy/proxy_session.h"
#include "test/support/proxy_fixture.h"
#include "test/support/raw_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

// Sends what `next` makes, as fast as the socket takes it, until the peer stops reading: the socket stays
// unwritable for `quiet`. Returns the bytes sent. `limit` bounds the total.
uint64_t send_until_stalled(int fd, const std::function<std::string()>& next, uint64_t limit,
                            std::chrono::milliseconds quiet = 500ms) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t sent = 0;
    std::string pending;
    while (sent < limit) {
        if (pending.empty()) pending = next();
        ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<uint64_t>(n);
            pending.erase(0, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(quiet.count())) == 0) break;  // stalled
    }
    return sent;
}

uint64_t bound_for(uint64_t buffer_per_connection) {
    lb::core::Limits limits;
    limits.buffer_per_connection = buffer_per_connection;
    return lb::core::ProxySession::buffer_memory_bound(limits);
}

std::string get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

}  // namespace

TEST_CASE("the stated bound: 800 KiB of buffers per connection with the default limits", "[hardening][memory]") {
    CHECK(lb::core::ProxySession::buffer_memory_bound(lb::core::Limits{}) == 800 * 1024);
}

TEST_CASE("a client pipelining without reading holds no more than its bound, and gives it back",
          "[hardening][memory]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.limits.buffer_per_connection = 64 * 1024; });
    const uint64_t bound = bound_for(64 * 1024);
    {
        Client client(proxy.port());
        // Padded so that 60,000 of them are more than the kernel's socket buffers can hide.
        const std::string request = get("/?bytes=2000", "X-Pad: " + std::string(200, 'p') + "\r\n");
        uint64_t sent = send_until_stalled(
            client.fd(), [&] { return request; }, 60'000 * request.size());
        INFO("sent " << sent / request.size() << " requests; lb holds " << proxy.server().buffer_bytes());
        // lb stopped taking requests once the unread responses reached the bound...
        CHECK(sent < 60'000 * request.size());
        CHECK(proxy.backend(0).requests_served() < 60'000);
        // ...and holds no more than the bound for it.
        CHECK(proxy.server().buffer_bytes() <= bound);
        CHECK(proxy.server().buffer_bytes() > 0);
    }
    wait_until([&] { return proxy.server().buffer_bytes() == 0; }, "the connection's memory came back");
}

TEST_CASE("a body sent in tiny pieces to a backend that does not read costs its bytes, not a buffer per piece",
          "[hardening][memory]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.limits.buffer_per_connection = 64 * 1024; });
    const uint64_t bound = bound_for(64 * 1024);
    Client client(proxy.port());
    const uint64_t body = 64ULL << 20;
    client.send("POST /?read_pause_ms=60000 HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body) +
                "\r\n\r\n");
    const std::string piece(64, 'x');
    uint64_t sent = send_until_stalled(
        client.fd(), [&] { return piece; }, body);
    INFO("sent " << sent << " body bytes; lb holds " << proxy.server().buffer_bytes());
    CHECK(sent < body);
    CHECK(proxy.server().buffer_bytes() <= bound);
}

TEST_CASE("a response dripped in tiny chunks to a client that does not read costs its bytes", "[hardening][memory]") {
    std::atomic<bool> done{false};
    RawBackend backend([&](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) return;
        const std::string chunk = "40\r\n" + std::string(64, 'd') + "\r\n";
        for (int i = 0; i < 200'000 && !done; ++i) {
            if (!RawBackend::write_all(fd, chunk)) return;
            if (i % 16 == 0) std::this_thread::sleep_for(50us);
        }
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) {
        c.limits.buffer_per_connection = 64 * 1024;
        c.backends = make_config({backend.port()}).backends;
    });
    const uint64_t bound = bound_for(64 * 1024);
    Client client(proxy.port());
    int small = 4096;
    ::setsockopt(client.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    client.send(get("/drip"));
    // The client reads nothing; wait until lb has stopped reading the backend (its held memory stops growing).
    uint64_t held = 0;
    for (int still = 0; still < 20; poll_pause()) {
        uint64_t now = proxy.server().buffer_bytes();
        REQUIRE(now <= bound);
        still = now == held && now > 0 ? still + 1 : 0;
        held = now;
    }
    CHECK(proxy.server().buffer_bytes() <= bound);
    done = true;
}

TEST_CASE("no body is forwarded after a 204, 304 or HEAD head, and such a connection is not reused",
          "[hardening][framing]") {
    ProxyFixture proxy(1);
    struct Case {
        std::string method;
        std::string query;
        int status;
    };
    for (const Case& c : {Case{"GET", "status=204&bogus_body=90", 204}, Case{"GET", "status=304&bogus_body=90", 304},
                          Case{"HEAD", "bogus_body=90", 200}}) {
        SECTION(c.method + " " + c.query) {
            Client client(proxy.port());
            client.send(c.method + " /?" + c.query + " HTTP/1.1\r\nHost: t\r\n\r\n");
            Response first = client.read_response(true);
            CHECK(first.status == c.status);
            CHECK(first.body.empty());
            // The next response on the same client connection is the right one, from a new backend connection.
            client.send(get("/"));
            Response second = client.read_response();
            CHECK(second.status == 200);
            CHECK(second.body == "b1\n");
            CHECK(second.header("X-Conn-Id") != first.header("X-Conn-Id"));
        }
    }
}

TEST_CASE("an interim response with a body, and a status outside 100-599, are 502", "[hardening][framing]") {
    ProxyFixture proxy(1);
    for (std::string query : {"interim_body=1", "status=99", "status=600", "status=101"}) {
        SECTION(query) {
            Client client(proxy.port());
            client.send(get("/?" + query));
            Response r = client.read_response();
            CHECK(r.status == 502);
            CHECK(client.wait_closed());
        }
    }
}

TEST_CASE("stray bytes after a response never reach the next client", "[hardening][framing]") {
    ProxyFixture proxy(1, {}, 1);
    SECTION("in the same read") {
        Client client(proxy.port());
        client.send(get("/?stray=40"));
        Response first = client.read_response();
        CHECK(first.body == "b1\n");
        client.send(get("/"));
        Response second = client.read_response();
        CHECK(second.body == "b1\n");
        CHECK(second.header("X-Conn-Id") != first.header("X-Conn-Id"));
    }
    SECTION("in a later read, while the connection is idle in the pool") {
        Client client(proxy.port());
        client.send(get("/?stray=40&stray_delay_ms=50"));
        Response first = client.read_response();
        CHECK(first.body == "b1\n");
        // The pooled connection hears the junk and closes; the next request gets a connection of its own.
        wait_until([&] { return proxy.backend(0).connections_open() == 0; }, "the tainted connection closed");
        CHECK(proxy.server().idle_upstream_connections() == 0);
        client.send(get("/"));
        Response second = client.read_response();
        CHECK(second.status == 200);
        CHECK(second.body == "b1\n");
    }
}

TEST_CASE("an error in a request body after the response began closes the connection instead of writing a status",
          "[hardening][framing]") {
    RawBackend backend([](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        // Answers at once, before the body: the response is under way when the client's body turns bad.
        RawBackend::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nearly\r\n");
        char sink[4096];
        while (::recv(fd, sink, sizeof sink, 0) > 0) {
        }
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) { c.backends = make_config({backend.port()}).backends; });
    Client client(proxy.port());
    client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n");
    std::string head_and_chunk;
    while (head_and_chunk.find("early") == std::string::npos) {
        char buffer[4096];
        ssize_t n = ::recv(client.fd(), buffer, sizeof buffer, 0);
        REQUIRE(n > 0);
        head_and_chunk.append(buffer, static_cast<size_t>(n));
    }
    client.send("zz\r\nnot a chunk size\r\n");
    std::string rest = client.read_until_closed();
    CHECK(rest.find("400") == std::string::npos);
    CHECK(rest.find("lb:") == std::string::npos);
}

TEST_CASE("Connection cannot strip Host, and HTTP/1.0 without Host reaches the backend with one",
          "[hardening][headers]") {
    ProxyFixture proxy(1);
    Response stripped = http_exchange(proxy.port(),
                                      "GET /?echo=headers HTTP/1.1\r\nHost: site.example\r\nConnection: close, Host, "
                                      "X-Forwarded-For\r\nX-Forwarded-For: , 192.0.2.1,,\r\n\r\n");
    // The demo backend echoes the head it received one field per line.
    CHECK(stripped.body.find("Host: site.example\n") != std::string::npos);
    CHECK(stripped.body.find("X-Forwarded-For: 192.0.2.1, 127.0.0.1\n") != std::string::npos);

    Response http10 = http_exchange(proxy.port(), "GET /?echo=headers HTTP/1.0\r\n\r\n");
    CHECK(http10.body.rfind("GET /?echo=headers HTTP/1.1\n", 0) == 0);
    CHECK(http10.body.find("Host: 127.0.0.1:" + std::to_string(proxy.backend(0).port()) + "\n") != std::string::npos);
}

TEST_CASE("request lines of other protocols and versions are refused", "[hardening][parsing]") {
    ProxyFixture proxy(1);
    for (std::string line : {"OPTIONS * RTSP/1.0", "SOURCE /s ICE/1.0", "GET / HTTP/2.0", "GET / HTTP/0.9"}) {
        SECTION(line) {
            Client client(proxy.port());
            client.send(line + "\r\nHost: t\r\n\r\n");
            Response r = client.read_response();
            CHECK((r.status == 400 || r.status == 505));
            CHECK(client.wait_closed());
        }
    }
    CHECK(proxy.backend(0).connections_accepted() == 0);
}

TEST_CASE("trailers count against the header limits and chunk extensions against the body limit",
          "[hardening][parsing]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.limits.header_bytes = 2048;
        c.limits.request_body_bytes = 1000;
    });
    SECTION("trailers") {
        Client client(proxy.port());
        client.send("POST /?echo=body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: " +
                    std::string(4000, 't') + "\r\n\r\n");
        Response r = client.read_response();
        CHECK((r.status == 431 || r.status == 0));
    }
    SECTION("chunk extensions") {
        Client client(proxy.port());
        client.send("POST /?echo=body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;e=" +
                    std::string(2000, 'e') + "\r\na\r\n0\r\n\r\n");
        Response r = client.read_response();
        CHECK(r.status == 413);
    }
}

TEST_CASE("a worker at its share of limits.client_connections leaves new connections in the backlog",
          "[hardening][limits]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.limits.client_connections = 2; });
    auto first = std::make_unique<Client>(proxy.port());
    Client second(proxy.port());
    first->send(get("/"));
    CHECK(first->read_response().status == 200);
    second.send(get("/"));
    CHECK(second.read_response().status == 200);
    // The kernel completes the third handshake, but lb does not take the connection while two are open.
    Client third(proxy.port());
    third.send(get("/"));
    pollfd p{third.fd(), POLLIN, 0};
    CHECK(::poll(&p, 1, 300) == 0);
    CHECK(proxy.server().connections_accepted(0) == 2);
    first.reset();  // a slot comes free: the third is accepted and served
    CHECK(third.read_response().status == 200);
    CHECK(proxy.server().connections_accepted(0) == 3);
}

TEST_CASE("lb's own error response to HEAD has no body", "[hardening][framing]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.backends[0].endpoint.port = 1; });  // nothing listens there
    Client client(proxy.port());
    client.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = client.read_response(true);
    CHECK(r.status == 502);
    CHECK(r.body.empty());
    CHECK(client.read_until_closed().empty());  // nothing after the head
}

TEST_CASE("lb's 400 to a malformed HEAD request has no body", "[hardening][framing]") {
    ProxyFixture proxy(1);
    for (std::string request : {"HEAD / HTTP/1.1\n\n", "HEAD / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n"}) {
        INFO(request);
        Client client(proxy.port());
        client.send(request);
        Response r = client.read_response(true);
        CHECK(r.status == 400);
        CHECK(r.body.empty());
        CHECK(client.read_until_closed().empty());
    }
}
