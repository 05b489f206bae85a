// An llhttp parser for one direction of a connection (requests from clients, responses from backends).
// It collects each message's head (with limits) and pushes body bytes to a sink as they are parsed; it never
// buffers a body. Bytes in, events out: no sockets, no libuv.
//
// On top of llhttp's strict mode it refuses what llhttp lets through: obs-fold line folding in any form (heads and
// trailers), start lines of other protocols (RTSP/, ICE/), HTTP versions other than 1.0 and 1.1, and it counts
// trailers against the header limits and chunk extensions against the body limit.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/parse_error.h"

namespace lb::http {

// A parsed request or response head. Views stay valid until the next message begins.
class MessageHead {
  public:
    struct Field {
        std::string_view name;
        std::string_view value;
    };

    llhttp_method_t method = HTTP_GET;  // requests
    int status = 0;                     // responses
    uint8_t version_major = 1;
    uint8_t version_minor = 1;
    bool chunked = false;
    bool has_content_length = false;
    uint64_t content_length = 0;
    bool keep_alive = false;  // by the version's default and the Connection header

    std::string_view target() const { return view(target_); }
    std::string_view reason() const { return view(reason_); }
    size_t field_count() const { return fields_.size(); }
    Field field(size_t i) const { return {view(fields_[i].name), view(fields_[i].value)}; }
    // The first field with this name (case-insensitive), or an empty view with found=false.
    bool find(std::string_view name, std::string_view& value) const;
    size_t count(std::string_view name) const;
    bool is_http10() const { return version_major == 1 && version_minor == 0; }
    // Whether the head announces a body (a Content-Length above zero, or chunked framing).
    bool declares_body() const { return chunked || (has_content_length && content_length > 0); }

  private:
    friend class MessageParser;
    struct Span {
        uint32_t offset = 0;
        uint32_t length = 0;
    };
    struct FieldSpans {
        Span name;
        Span value;
    };
    std::string_view view(Span s) const { return {storage_.data() + s.offset, s.length}; }
    void clear();

    std::string storage_;  // every piece of the head, back to back
    Span target_;
    Span reason_;
    std::vector<FieldSpans> fields_;
};

struct HeadLimits {
    uint64_t header_bytes = 64 * 1024;  // start line and fields, trailers included
    uint32_t header_count = 100;        // fields, trailers included
    uint64_t uri_bytes = 8 * 1024;
    uint64_t body_bytes = 0;  // body plus chunk extensions; 0 = unlimited
};

// What the sink wants after a head.
enum class HeadAction {
    proceed,    // go on parsing the body
    pause,      // stop feeding here; the caller resumes later (request dispatch)
    skip_body,  // the message has no body whatever its headers say (HEAD, 1xx, 204, 304)
};

class MessageSink {
  public:
    virtual ~MessageSink() = default;
    virtual HeadAction on_head(const MessageHead& head) = 0;
    virtual void on_body(std::string_view bytes) = 0;
    // The parser pauses after every message, so pipelined messages are handled one at a time.
    virtual void on_message_complete() = 0;
};

enum class FeedStatus {
    consumed_all,  // every byte was parsed
    paused,        // stopped at a message boundary or by the sink; `consumed` says where
    error,         // malformed or over a limit; `error` says which
};

struct FeedResult {
    FeedStatus status;
    size_t consumed;
    ParseError error = ParseError::none;
};

class MessageParser {
  public:
    MessageParser(llhttp_type_t type, MessageSink& sink, HeadLimits limits = {});
    MessageParser(const MessageParser&) = delete;
    MessageParser& operator=(const MessageParser&) = delete;
    // Events go to `sink` from now on (a backend connection's parser serves one session after another).
    void set_sink(MessageSink& sink) { sink_ = &sink; }

    // Parses as much of `bytes` as it can. After `paused`, call resume() before feeding the rest.
    FeedResult feed(std::string_view bytes);
    void resume();
    // The peer closed: completes a close-delimited message. Returns false if a message was cut short.
    bool finish();
    // Forget any partial message (a new exchange on a reused connection).
    void reset();
    // Gives back head storage beyond `max_capacity` bytes (a recycled parser must not keep a 64 KiB head forever).
    void trim_storage(size_t max_capacity);

    const MessageHead& head() const { return head_; }
    // Whether the request is a HEAD, as soon as its first bytes say so and whether or not the rest is valid: an
    // error response to a malformed HEAD request must have no body either, or the client reads it as more.
    bool is_head_request() const;
    bool in_message() const { return in_message_; }
    bool head_complete() const { return head_complete_; }
    const char* error_reason() const { return llhttp_get_error_reason(&parser_); }

  private:
    // Watches the raw bytes of a header section (or trailer section) before llhttp parses them, for what llhttp
    // accepts and lb must not: a line that starts with a space or tab (obs-fold, RFC 9112 §5.2), and a start line
    // that is not HTTP. It stops at the blank line that ends the section, so body bytes are never scanned.
    class SectionScanner {
      public:
        enum class Mode { request_head, response_head, trailers };
        void start(Mode mode);
        // Scans up to the end of the section; returns what is wrong, or none.
        ParseError scan(std::string_view bytes);
        bool active() const { return active_; }
        // The start line's first bytes, as far as they have come.
        std::string_view start_line_prefix() const { return {first_, first_len_}; }

      private:
        // Records the start line's first bytes from [p, line_end); returns p past any empty lines before it.
        const char* keep_first_bytes(const char* p, const char* line_end);
        ParseError end_start_line();
        Mode mode_ = Mode::request_head;
        bool active_ = false;
        bool in_start_line_ = false;
        bool after_lf_ = false;
        char last_byte_ = 0;  // the byte before this piece of input, for a LF at its start
        // The start line's first and last bytes (it may arrive over several reads).
        char first_[5] = {};
        uint8_t first_len_ = 0;
        char last_[10] = {};
        uint8_t last_len_ = 0;
    };

    static MessageParser& self(llhttp_t* p) { return *static_cast<MessageParser*>(p->data); }
    static int on_message_begin(llhttp_t* p);
    static int on_url(llhttp_t* p, const char* at, size_t len);
    static int on_status(llhttp_t* p, const char* at, size_t len);
    static int on_header_field(llhttp_t* p, const char* at, size_t len);
    static int on_header_value(llhttp_t* p, const char* at, size_t len);
    static int on_headers_complete(llhttp_t* p);
    static int on_body(llhttp_t* p, const char* at, size_t len);
    static int on_chunk_header(llhttp_t* p);
    static int on_chunk_extension(llhttp_t* p, const char* at, size_t len);
    static int on_message_complete(llhttp_t* p);

    int append(MessageHead::Span& span, const char* at, size_t len);
    int count_trailer(size_t len, bool new_field);
    int count_body(size_t len);
    int fail(ParseError error);

    static const llhttp_settings_t& settings();  // one table for every parser: saves 184 bytes each

    llhttp_t parser_;
    MessageSink* sink_;
    HeadLimits limits_;
    MessageHead head_;
    SectionScanner scanner_;
    ParseError error_ = ParseError::none;
    uint64_t body_bytes_ = 0;
    uint64_t trailer_bytes_ = 0;
    uint32_t trailer_fields_ = 0;
    bool in_message_ = false;
    bool head_complete_ = false;
    bool in_trailers_ = false;
    bool last_was_value_ = false;
    bool trailers_pause_ = false;  // paused by us at the last chunk, to scan the trailers
};

}  // namespace lb::http
