// Query parameters that steer the demo backend's response. Pure functions, no I/O: unit-testable on their own.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lb::demo {

enum class EchoMode : uint8_t { none, headers, body };

// What a request asks of the demo backend. Parameters combine freely; see parse_request_controls.
struct RequestControls {
    int status = 200;                // status=N, 200..999
    uint64_t delay_ms = 0;           // delay_ms=N: answer N ms after the request was read completely
    std::optional<uint64_t> bytes;   // bytes=N: body of N pattern bytes instead of the default body
    bool chunked = false;            // chunked=1: Transfer-Encoding: chunked (HTTP/1.1 clients only)
    EchoMode echo = EchoMode::none;  // echo=headers | echo=body
    bool drop = false;               // drop=1: close without a response once the head is read
    bool drop_if_reused = false;     // drop_if_reused=1: drop unless it is the connection's first request
    bool close = false;              // close=1: answer with Connection: close and close
    bool mid_close = false;          // mid_close=1: send the head and about half the body, then close abruptly
    bool health = false;             // the path is exactly /health: body "ok\n"
};

inline constexpr uint64_t kMaxDelayMs = 24ull * 3600 * 1000;
inline constexpr uint64_t kMaxBytes = 1ull << 40;

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
