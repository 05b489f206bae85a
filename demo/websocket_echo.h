// The demo backend's WebSocket endpoint (/ws), RFC 6455 server side, without I/O: the handshake's accept key, and
// an echo of what a client sends. Text and binary frames (continuations included) go back as they came, unmasked,
// streamed piece by piece as their payload arrives, so a message of any size costs no more memory than one read;
// a ping is answered with a pong carrying its payload; a close is answered with a close carrying its status.
// Text is not checked for UTF-8: an echo gives back what it got.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lb::demo {

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string websocket_accept(std::string_view key);

// A server frame (FIN set, unmasked) with `opcode` and `payload`; or only its header, for `length` bytes.
void append_websocket_frame(std::string& out, uint8_t opcode, std::string_view payload);
void append_websocket_frame_header(std::string& out, uint8_t opcode, uint64_t length);

class WebSocketEcho {
  public:
    static constexpr uint8_t kText = 0x1;
    static constexpr uint8_t kBinary = 0x2;
    static constexpr uint8_t kClose = 0x8;
    static constexpr uint8_t kPing = 0x9;
    static constexpr uint8_t kPong = 0xA;

    // `close_after`: after echoing that many complete messages the server closes first (close 1000 "bye"); 0 never.
    explicit WebSocketEcho(uint64_t close_after = 0) : close_after_(close_after) {}

    // Consumes all of `in`, appending what to send to `out`. After a protocol error (an unmasked frame, a control
    // frame that is fragmented or too long) a close 1002 is appended and everything after is ignored.
    void feed(std::string_view in, std::string& out);
    // A close frame went out (answering the client's, or ours first).
    bool close_sent() const { return close_sent_; }
    // The client's close frame arrived: the closing handshake is complete once close_sent() too.
    bool close_received() const { return close_received_; }
    // A protocol error ended the echo (a close 1002 went out).
    bool failed() const { return failed_; }
    // Not inside a data frame being echoed: a frame of our own may go out now without splitting it.
    bool between_frames() const { return !in_payload_ || is_control(opcode_); }
    // Appends our own close frame first, unless one went out already.
    void send_close(std::string& out, uint16_t code, std::string_view reason);

  private:
    static bool is_control(uint8_t opcode) { return (opcode & 0x8) != 0; }
    void on_header_complete(std::string& out);
    void on_control_complete(std::string& out);
    void fail(std::string& out);

    uint64_t close_after_;
    uint64_t messages_ = 0;
    // The frame being read.
    uint8_t header_[14] = {};
    size_t header_have_ = 0;
    size_t header_need_ = 2;
    uint8_t opcode_ = 0;
    bool fin_ = false;
    uint8_t mask_[4] = {};
    uint64_t remaining_ = 0;  // payload bytes still to come
    uint64_t offset_ = 0;     // payload bytes seen, for the mask
    bool in_payload_ = false;
    std::string control_;  // a control frame's payload (at most 125 bytes)
    bool close_sent_ = false;
    bool close_received_ = false;
    bool failed_ = false;
};

}  // namespace lb::demo
