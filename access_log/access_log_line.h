// One access log line from one request's record: pure code, no clock and no I/O, so every byte of both formats is
// unit-tested. Whatever a hostile client put in its request (quotes, backslashes, control characters, bytes that
// are not UTF-8) stays inside its field: a line never breaks in two, and a JSON line always parses.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "access_log/access_log_config.h"

namespace lb::access_log {

// What one request was, as the line tells it. Views are the caller's, read only during format_line(). An empty
// view is a value lb does not have ("-" in text, null in JSON).
struct AccessRecord {
    std::string_view client;    // the client's address, without its port ("unix:" for a Unix-socket client)
    std::string_view method;    // empty when lb answered before the request head was whole
    std::string_view target;    // the request target as sent
    std::string_view protocol;  // "HTTP/1.1" or "HTTP/1.0"
    unsigned status = 0;        // the status lb sent to the client
    uint64_t bytes_in = 0;      // request bytes read from the client: head and body as sent
    uint64_t bytes_out = 0;     // response bytes handed to the client connection: head and body
    uint64_t request_ns = 0;    // first request byte to the response being complete
    // Dispatch to the last attempt's backend to its connection being ready (0 for a reused keep-alive connection),
    // and to the response's last byte; unset when there was none.
    std::optional<uint64_t> upstream_connect_ns;
    std::optional<uint64_t> upstream_response_ns;
    std::string_view backend;      // the last backend tried, as named in lb.yaml
    unsigned retries = 0;          // attempts after the first
    std::string_view request_id;   // the client's or lb's (request_id:)
    std::string_view tls_version;  // "TLSv1.3"; empty on a plain listener
};

// Appends one line, ending in '\n', in `format`. `time` is the line's timestamp as Timestamp makes it.
void format_line(Format format, const AccessRecord& record, std::string_view time, std::string& out);

// A text-format field: empty as "-"; quotes, backslashes, spaces, control characters and bytes above 0x7e as \xHH
// (nginx's escaping), so a field never holds the separator or a line end.
void append_text_field(std::string_view value, std::string& out);

// Nanoseconds as seconds with microseconds, "0.000213": a JSON number and a text field alike.
void append_seconds(uint64_t ns, std::string& out);

// ISO 8601 UTC with milliseconds, "2026-12-01T09:30:17.123Z". Keeps the formatted second, so only the
// milliseconds are written again for the lines of the same second (one worker logs many per second).
class Timestamp {
  public:
    std::string_view format(const timespec& now);

  private:
    time_t second_ = -1;
    char text_[32] = {};
};

}  // namespace lb::access_log
