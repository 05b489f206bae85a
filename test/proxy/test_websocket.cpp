// Upgrade and WebSocket through lb, in-process (the sanitizers see the tunnel code): the 101 relayed with its
// Upgrade, frames both ways through the demo backend's echo, both close directions, half-closes passed on, bytes
// that ride along with the heads, what is not a tunnel (a declined upgrade, a 101 nobody asked for), the idle
// timeout, backpressure, and the TLS listener.
#include <sys/socket.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "core/proxy/proxy_session.h"
#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/raw_backend.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"
#include "test/support/tls_bridge.h"
#include "test/support/websocket_client.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

double metric(lb::core::Server& server, const std::string& series) {
    return metric_value(server.render_metrics(), series);
}

std::string pattern(size_t size) {
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 7 + i / 251) & 0xff);
    return bytes;
}

// Sends the WebSocket closing handshake from the client and checks the backend's answer and the end of the TCP
// connection.
void close_from_client(WebSocketClient& ws) {
    ws.send_frame(WebSocketClient::kClose, std::string("\x03\xe8", 2));  // 1000
    WebSocketFrame reply = ws.read_frame();
    CHECK(reply.opcode == WebSocketClient::kClose);
    CHECK(reply.payload == std::string("\x03\xe8", 2));
    // The backend closes TCP first (RFC 6455 §7.1.1) and lb passes its FIN on; the client then ends its own side,
    // which lb passes back: both directions done, the tunnel ends.
    CHECK(ws.wait_closed());
    ws.shutdown_write();
}

}  // namespace

TEST_CASE("a WebSocket through lb: the 101 with its Upgrade, text and binary frames, ping and a client close",
          "[websocket]") {
    ProxyFixture proxy(1);
    WebSocketClient ws(proxy.port());
    REQUIRE(ws.status() == 101);
    CHECK(ws.response().header("Upgrade") == "websocket");
    CHECK(ws.response().header("Connection") == "upgrade");
    CHECK(ws.response().header("Sec-WebSocket-Accept") == ws.expected_accept());
    CHECK(ws.response().header("X-Backend-Id") == "b1");

    ws.send_frame(WebSocketClient::kText, "hello through lb");
    WebSocketFrame text = ws.read_frame();
    CHECK(text.opcode == WebSocketClient::kText);
    CHECK(text.fin);
    CHECK(text.payload == "hello through lb");

    const std::string binary = pattern(70'000);  // a 64-bit length field
    ws.send_frame(WebSocketClient::kBinary, binary);
    WebSocketFrame echoed = ws.read_frame();
    CHECK(echoed.opcode == WebSocketClient::kBinary);
    CHECK(echoed.payload == binary);

    ws.send_frame(WebSocketClient::kPing, "are you there");
    WebSocketFrame pong = ws.read_frame();
    CHECK(pong.opcode == WebSocketClient::kPong);
    CHECK(pong.payload == "are you there");

    CHECK(metric(proxy.server(), "lb_tunnels_total") == 1);
    CHECK(metric(proxy.server(), "lb_tunnels_open") == 1);
    CHECK(metric(proxy.server(), "lb_requests_total{method=\"GET\",code=\"101\"}") == 1);
    close_from_client(ws);
    wait_until([&] { return metric(proxy.server(), "lb_tunnels_open") == 0; }, "the tunnel is counted closed");
    CHECK(metric(proxy.server(), "lb_tunnel_bytes_total{direction=\"client_to_backend\"}") > 70'000);
    CHECK(metric(proxy.server(), "lb_tunnel_bytes_total{direction=\"backend_to_client\"}") > 70'000);
    wait_until([&] { return metric(proxy.server(), "lb_client_connections_active") == 0; }, "lb closed its side");
}

TEST_CASE("a 4 MiB WebSocket message goes through whole while the client sends and reads at once", "[websocket]") {
    ProxyFixture proxy(1);
    WebSocketClient ws(proxy.port());
    REQUIRE(ws.status() == 101);
    const std::string message = pattern(4 * kMiB);
    // The echo comes back while the message is still going up: a client that only sent would stall on
    // backpressure, as it should. The sender thread writes raw (no Catch calls off the test thread).
    std::string frame;
    {
        // One masked frame, built as WebSocketClient would, with a zero mask so the payload stays readable.
        frame.push_back(static_cast<char>(0x80 | WebSocketClient::kBinary));
        frame.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8)
            frame.push_back(static_cast<char>((message.size() >> shift) & 0xff));
        frame.append(4, '\0');
        frame.append(message);
    }
    std::thread sender([&] {
        std::string_view rest = frame;
        while (!rest.empty()) {
            ssize_t n = ::send(ws.fd(), rest.data(), rest.size(), MSG_NOSIGNAL);
            if (n <= 0) return;
            rest.remove_prefix(static_cast<size_t>(n));
        }
    });
    WebSocketFrame echoed = ws.read_frame();
    sender.join();
    CHECK(echoed.opcode == WebSocketClient::kBinary);
    CHECK(echoed.payload.size() == message.size());
    CHECK(echoed.payload == message);
    close_from_client(ws);
}

TEST_CASE("the backend closes a WebSocket first: its close frame, the client's answer, then its FIN", "[websocket]") {
    ProxyFixture proxy(1);
    WebSocketClient ws(proxy.port(), "/ws?ws_close_after=1");
    REQUIRE(ws.status() == 101);
    ws.send_frame(WebSocketClient::kText, "last words");
    CHECK(ws.read_frame().payload == "last words");
    WebSocketFrame close = ws.read_frame();
    CHECK(close.opcode == WebSocketClient::kClose);
    CHECK(close.payload == std::string("\x03\xe8", 2) + "bye");
    ws.send_frame(WebSocketClient::kClose, std::string("\x03\xe8", 2));
    // The backend closes TCP once the handshake is complete; lb passes the FIN on, then the client's FIN back.
    CHECK(ws.wait_closed());
    ws.shutdown_write();
    wait_until([&] { return metric(proxy.server(), "lb_tunnels_open") == 0; }, "the tunnel ended");
}

TEST_CASE("a half-close passes through a tunnel: the client's FIN reaches the backend, whose answer still comes back",
          "[websocket]") {
    // A raw origin: after its 101 it reads until EOF, then answers with what it got and closes.
    RawBackend backend([](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        RawBackend::write_all(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n");
        std::string got;
        char buffer[4096];
        for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) got.append(buffer, static_cast<size_t>(n));
        RawBackend::write_all(fd, "after your FIN I got: " + got);
        ::shutdown(fd, SHUT_WR);
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) { c.backends = make_config({backend.port()}).backends; });
    Client client(proxy.port());
    client.send("GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n");
    Response r = client.read_response();
    REQUIRE(r.status == 101);
    CHECK(r.header("Upgrade") == "echo");
    client.send("some bytes");
    client.shutdown_write();
    CHECK(client.read_until_closed() == "after your FIN I got: some bytes");
    wait_until([&] { return metric(proxy.server(), "lb_tunnels_open") == 0; }, "the tunnel ended");
}

TEST_CASE(
    "bytes after the 101 in the backend's write and bytes the client sent after its request head are relayed "
    "in order",
    "[websocket]") {
    RawBackend backend([](int fd) {
        if (RawBackend::read_head(fd).empty()) return;
        // The head and the tunnel's first bytes in one write: lb's response parser must stop at the head.
        RawBackend::write_all(
            fd,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\nHTTP/1.1 200 no\r\n\r\n");
        std::string got;
        char buffer[64];
        while (got.size() < 19) {
            ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) return;
            got.append(buffer, static_cast<size_t>(n));
        }
        RawBackend::write_all(fd, "|got:" + got);
        ::shutdown(fd, SHUT_WR);
        while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
        }
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) { c.backends = make_config({backend.port()}).backends; });
    Client client(proxy.port());
    // What follows the head in the same write looks like a request, and must not be parsed as one.
    client.send("GET / HTTP/1.1\r\nHost: t\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
    Response r = client.read_response();
    REQUIRE(r.status == 101);
    client.shutdown_write();
    CHECK(client.read_until_closed() == "HTTP/1.1 200 no\r\n\r\n|got:GET /x HTTP/1.1\r\n\r\n");
}

TEST_CASE("an Upgrade the backend declines is an ordinary response, and the connection goes on", "[websocket]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    // Not /ws: the demo backend answers as for any request, and shows what it received.
    client.send("GET /?echo=headers HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    Response declined = client.read_response();
    CHECK(declined.status == 200);
    CHECK(declined.body.find("Upgrade: websocket\n") != std::string::npos);
    CHECK(declined.body.find("Connection: upgrade\n") != std::string::npos);
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(client.read_response().body == "b1\n");
    CHECK(metric(proxy.server(), "lb_tunnels_total") == 0);
}

TEST_CASE("Upgrade is forwarded only when Connection lists it, on HTTP/1.1, without a body", "[websocket]") {
    ProxyFixture proxy(1);
    auto forwarded_upgrade = [&](const std::string& request) {
        Response r = http_exchange(proxy.port(), request);
        INFO(r.body);
        REQUIRE(r.status == 200);
        return r.body.find("Upgrade:") != std::string::npos;
    };
    CHECK(forwarded_upgrade("GET /?echo=headers HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n"));
    CHECK_FALSE(
        forwarded_upgrade("GET /?echo=headers HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: "
                          "close\r\n\r\n"));
    CHECK_FALSE(forwarded_upgrade("GET /?echo=headers HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"));
    CHECK_FALSE(
        forwarded_upgrade("POST /?echo=headers HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: "
                          "upgrade\r\nContent-Length: 2\r\n\r\nhi"));
}

TEST_CASE("a 101 the request did not ask for, or one without Upgrade, is a 502", "[websocket]") {
    RawBackend backend([](int fd) {
        std::string head = RawBackend::read_head(fd);
        if (head.empty()) return;
        if (head.find("X-Bare: 1") != std::string::npos) {
            RawBackend::write_all(fd, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n");
        } else {
            RawBackend::write_all(fd,
                                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                                  "upgrade\r\n\r\n");
        }
        char buffer[256];
        while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
        }
    });
    ProxyFixture proxy(0, [&](lb::core::Config& c) {
        c.backends = make_config({backend.port()}).backends;
        c.retries = 0;
    });
    CHECK(http_exchange(proxy.port(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n").status == 502);
    CHECK(http_exchange(proxy.port(),
                        "GET / HTTP/1.1\r\nHost: t\r\nX-Bare: 1\r\nUpgrade: websocket\r\nConnection: "
                        "upgrade\r\n\r\n")
              .status == 502);
    CHECK(metric(proxy.server(), "lb_tunnels_total") == 0);
    CHECK(metric(proxy.server(), "lb_errors_total{kind=\"bad_response\"}") == 2);
}

TEST_CASE("a silent tunnel is closed after timeouts.tunnel", "[websocket][timeout]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.timeouts.tunnel = 300ms; });
    WebSocketClient ws(proxy.port());
    REQUIRE(ws.status() == 101);
    ws.send_frame(WebSocketClient::kText, "one");
    CHECK(ws.read_frame().payload == "one");
    CHECK(ws.wait_closed());
    wait_until([&] { return metric(proxy.server(), "lb_tunnels_open") == 0; }, "the tunnel is counted closed");
    // The tunnel's upstream connection was closed, never pooled: the next request gets a connection of its own.
    Response next = http_get(proxy.port(), "/");
    CHECK(next.status == 200);
    CHECK(next.header("X-Conn-Id") != ws.response().header("X-Conn-Id"));
}

TEST_CASE("a client that does not read while the backend floods its WebSocket leaves lb's buffers bounded",
          "[websocket][backpressure]") {
    ProxyFixture proxy(1);
    const uint64_t flood = 32 * kMiB;
    WebSocketClient ws(proxy.port(), "/ws?ws_flood=" + std::to_string(flood));
    REQUIRE(ws.status() == 101);
    // The client reads nothing: lb stops reading the backend, whose own write queue then fills past its mark.
    wait_until([&] { return proxy.backend(0).write_queue_peak_bytes() > kMiB; }, "the backend's queue fills");
    const uint64_t bound = lb::core::ProxySession::buffer_memory_bound(proxy.server().config().limits);
    // Sampled a while, the largest seen: the queues keep moving as the kernel's socket buffers grow.
    double held = 0;
    for (int i = 0; i < 200; ++i) {
        held = std::max(held, metric(proxy.server(), "lb_buffer_bytes"));
        poll_pause();
    }
    WARN("a flooded tunnel whose client does not read: lb held at most " << held << " bytes of buffers (bound " << bound
                                                                         << ")");
    CHECK(held <= static_cast<double>(bound));
    // Everything arrives once the client reads.
    uint64_t received = 0;
    while (received < flood) {
        WebSocketFrame frame = ws.read_frame();
        REQUIRE(frame.opcode == WebSocketClient::kBinary);
        REQUIRE(frame.payload.substr(0, 3) == "abc");
        received += frame.payload.size();
    }
    CHECK(received == flood);
    close_from_client(ws);
}

TEST_CASE("a WebSocket over lb's TLS listener, to a TLS backend", "[websocket][tls]") {
    const TestCerts& certs = test_certs();
    ProxyFixture proxy(
        1,
        [&](lb::core::Config& c) {
            lb::net::TlsListenerConfig tls;
            tls.certificates.push_back({certs.localhost_ecdsa.cert, certs.localhost_ecdsa.key, ""});
            c.listeners = {lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}, tls}};
            for (auto& b : c.backends) {
                b.tls.enabled = true;
                b.tls.ca_file = certs.ca.cert;
            }
        },
        1,
        [&](size_t, lb::demo::DemoBackendOptions& options) {
            options.tls_cert = certs.localhost_rsa.cert;
            options.tls_key = certs.localhost_rsa.key;
        });
    TlsBridge bridge({.tls_port = proxy.port(), .ca_file = certs.ca.cert});
    WebSocketClient ws(bridge.port());
    REQUIRE(ws.status() == 101);
    CHECK(ws.response().header("Sec-WebSocket-Accept") == ws.expected_accept());
    ws.send_frame(WebSocketClient::kText, "over TLS both ways");
    CHECK(ws.read_frame().payload == "over TLS both ways");
    const std::string big = pattern(300'000);
    ws.send_frame(WebSocketClient::kBinary, big);
    CHECK(ws.read_frame().payload == big);
    close_from_client(ws);
    wait_until([&] { return metric(proxy.server(), "lb_tunnels_open") == 0; }, "the tunnel ended");
}

TEST_CASE("the upgraded request gets its access log line, status 101, at the switch", "[websocket][access_log]") {
    const std::string path = write_temp_file("access-websocket.log", "");
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.access_log = {.enabled = true, .path = path, .format = lb::access_log::Format::text};
    });
    auto lines = [&] {
        std::ifstream in(path);
        std::vector<std::string> out;
        for (std::string line; std::getline(in, line);) out.push_back(line);
        return out;
    };
    WebSocketClient ws(proxy.port(), "/ws?chat=1");
    REQUIRE(ws.status() == 101);
    // Written while the tunnel is open, as lb_requests_total counts the 101.
    wait_until([&] { return lines().size() == 1; }, "the 101's line");
    CHECK(lines()[0].find("\"GET /ws?chat=1 HTTP/1.1\" 101 ") != std::string::npos);
    ws.send_frame(WebSocketClient::kText, std::string(5000, 't'));
    CHECK(ws.read_frame().payload.size() == 5000);
    close_from_client(ws);
    wait_until([&] { return metric(proxy.server(), "lb_tunnels_open") == 0; }, "the tunnel ended");
    CHECK(lines().size() == 1);  // the tunnel itself adds none
    proxy.stop();
}
