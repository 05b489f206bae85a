// Query parameters that steer the demo backend's response. Pure functions, no I/O: unit-testable on their own.
//
// The path /health answers "ok\n"; /stats answers the backend's counters as one line of JSON:
//   {"id": "b1", "connections_accepted": N, "requests_served": N, "connections_open": N}
// (the /stats request's own connection included), which is how bench/run counts the upstream connections a proxy
// opens. /ws answers a WebSocket handshake (GET with Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Key) with
// 101 and then echoes frames (demo/websocket_echo.h); without a handshake it answers like any path. Every other path
// gets "<id>\n". Query parameters apply to all paths.
//
// Well-behaved controls:
//   status=N            the status code, 0..999, written as given ("HTTP/1.1 99 Unknown" for status=99): below 100
//                       and above 599 are for hostile-backend tests; 1xx is written as if it were final
//   delay_ms=N          answer N ms after the request was read completely
//   bytes=N             an N-byte body of the pattern 'a'..'z' instead of "<id>\n"
//   chunked=1           Transfer-Encoding: chunked (HTTP/1.1 clients only)
//   echo=headers        the request head as received is the body
//   echo=body           the request body streams back as it arrives
//   close=1             Connection: close, then close
// Misbehaviour, for testing what a proxy does with a broken backend:
//   drop=1              close without a response once the head is read
//   drop_if_reused=1    drop unless it is the connection's first request
//   mid_close=1         send the head and about half the body, then close (FIN)
//   reset_mid_body=1    send the head and about half the body, then reset (SO_LINGER 0: RST). Bytes still in the
//                       kernel's send queue at that moment are lost with the reset, as with any RST
//   close_delimited=1   no Content-Length, no chunking: "Connection: close", the body, then FIN (with bytes=N too)
//   invalid=1           instead of a response, a line that is not HTTP (kInvalidResponse), then close
//   silent=1            read the head, never answer; the connection stays open (input is read and discarded)
//                       until the peer closes it or the backend stops
//   read_pause_ms=N     once the head is read, stop reading the connection for N ms before the body (if any) and
//                       anything after it is read, so that a sender's write queue really fills
//   bogus_body=N        Content-Length: N and N pattern bytes even where the status (1xx, 204, 304) or the method
//                       (HEAD) forbids a body; overrides bytes=N, chunked=1 and close_delimited=1
//   stray=N             N bytes of junk (kStrayByte) right after the complete response, up to kMaxStray
//   stray_delay_ms=M    send the stray bytes M ms after the response, in a separate write; the next request on the
//                       connection is answered only after them
//   interim_body=1      a "100 Continue" interim response carrying a body (kInterimWithBody) before the final one
// On /ws, after the 101:
//   ws_flood=N          N bytes of binary frames (64 KiB each, pattern 'a'..'z') sent at once, as fast as the
//                       peer takes them, while the echo goes on
//   ws_close_after=N    after echoing N messages the backend closes first (close 1000 "bye"), then closes TCP once
//                       the client's close arrives
// The backend-wide counterpart of silent=1 is DemoBackendOptions::silent (--silent): accept, never read or answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lb::demo {

enum class EchoMode : uint8_t { none, headers, body };

// What a request asks of the demo backend. Parameters combine freely; see parse_request_controls.
struct RequestControls {
    int status = 200;                    // status=N, 0..999
    uint64_t delay_ms = 0;               // delay_ms=N
    std::optional<uint64_t> bytes;       // bytes=N
    bool chunked = false;                // chunked=1
    EchoMode echo = EchoMode::none;      // echo=headers | echo=body
    bool drop = false;                   // drop=1
    bool drop_if_reused = false;         // drop_if_reused=1
    bool close = false;                  // close=1
    bool mid_close = false;              // mid_close=1
    bool reset_mid_body = false;         // reset_mid_body=1
    bool close_delimited = false;        // close_delimited=1
    bool invalid = false;                // invalid=1
    bool silent = false;                 // silent=1
    uint64_t read_pause_ms = 0;          // read_pause_ms=N
    std::optional<uint64_t> bogus_body;  // bogus_body=N
    uint64_t stray = 0;                  // stray=N
    uint64_t stray_delay_ms = 0;         // stray_delay_ms=M
    bool interim_body = false;           // interim_body=1
    bool health = false;                 // the path is exactly /health: body "ok\n"
    bool stats = false;                  // the path is exactly /stats: the backend's counters as JSON
    bool websocket = false;              // the path is exactly /ws: WebSocket echo after a handshake
    uint64_t ws_flood = 0;               // ws_flood=N
    uint64_t ws_close_after = 0;         // ws_close_after=N
};

inline constexpr uint64_t kMaxDelayMs = 24ull * 3600 * 1000;
inline constexpr uint64_t kMaxBytes = 1ull << 40;
inline constexpr uint64_t kMaxStray = 64 * 1024;
inline constexpr int kMaxStatus = 999;

// What invalid=1 sends instead of a response.
inline constexpr std::string_view kInvalidResponse = "this is not an HTTP response\r\n\r\n";
// What interim_body=1 sends before the final response.
inline constexpr std::string_view kInterimWithBody =
    "HTTP/1.1 100 Continue\r\nContent-Length: 13\r\n\r\ninterim body\n";
// stray=N sends N of these.
inline constexpr char kStrayByte = '#';

// Parses an origin-form ("/path?a=1&b=2") or absolute-form ("http://host/path?..") request target. Unknown keys,
// malformed pairs and out-of-range numbers are ignored (the default stays); for repeated keys the last one wins.
// Booleans are true for "1" or "true". Values are not percent-decoded (none of the accepted ones need it).
RequestControls parse_request_controls(std::string_view target);

// Reason phrase for a status code: a small table of common codes, "Unknown" for the rest.
std::string_view reason_phrase(int status);

// True for statuses whose responses never carry a body or framing headers (1xx, 204, 304).
bool status_forbids_body(int status);

// Byte `offset` of the repeating body pattern 'a'..'z'.
inline char pattern_byte(uint64_t offset) { return static_cast<char>('a' + offset % 26); }

}  // namespace lb::demo
