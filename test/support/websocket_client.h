// A blocking WebSocket client (RFC 6455) on 127.0.0.1 for tests: it sends the handshake, reads the 101 (or
// whatever came back), then sends masked frames and reads frames, with a timeout on every read. Any bytes the
// server sent right after its response head are kept for the first frame. No Catch calls outside the test thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "test/support/test_support.h"

namespace lb::test {

struct WebSocketFrame {
    uint8_t opcode = 0;
    bool fin = false;
    std::string payload;
};

class WebSocketClient {
  public:
    static constexpr uint8_t kText = 0x1;
    static constexpr uint8_t kBinary = 0x2;
    static constexpr uint8_t kClose = 0x8;
    static constexpr uint8_t kPing = 0x9;
    static constexpr uint8_t kPong = 0xA;

    // Connects and sends "GET `target`" with the handshake's fields (and `extra_headers`, each ending in CRLF),
    // then reads the response head. Check status() before using the tunnel.
    explicit WebSocketClient(uint16_t port, const std::string& target = "/ws", const std::string& extra_headers = "",
                             std::chrono::milliseconds timeout = std::chrono::seconds{15});
    ~WebSocketClient();
    WebSocketClient(const WebSocketClient&) = delete;
    WebSocketClient& operator=(const WebSocketClient&) = delete;

    const Response& response() const { return response_; }
    int status() const { return response_.status; }
    // What Sec-WebSocket-Accept must be for the key this client sent.
    std::string expected_accept() const;

    // One masked frame (FIN set unless `fin` is false).
    void send_frame(uint8_t opcode, std::string_view payload, bool fin = true);
    // Raw bytes, as they are.
    void send_raw(std::string_view bytes);
    // The next frame; fails the test on timeout or when the connection ends first.
    WebSocketFrame read_frame();
    // Reads until the peer closes (EOF or reset); false on timeout. What arrived meanwhile is dropped.
    bool wait_closed();
    void shutdown_write();
    int fd() const { return fd_; }

  private:
    bool fill();  // false on EOF or error; fails the test on timeout
    std::string take(size_t n);

    int fd_ = -1;
    std::chrono::milliseconds timeout_;
    std::string key_;
    std::string buffered_;
    Response response_;
};

}  // namespace lb::test
