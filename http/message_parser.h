// An llhttp parser for one direction of a connection (requests from clients, responses from backends).
// It collects each message's head (with limits) and pushes body bytes to a sink as they are parsed; it never
// buffers a body. Bytes in, events out: no sockets, no libuv.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/proxy_error.h"

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
    uint64_t header_bytes = 64 * 1024;
    uint32_t header_count = 100;
    uint64_t uri_bytes = 8 * 1024;
};

// What the sink wants after a head.
enum class HeadAction {
    proceed,    // go on parsing the body
    pause,      // stop feeding here; the caller resumes later (request dispatch)
    skip_body,  // the message has no body whatever its headers say (response to HEAD)
};

class MessageSink {
  public:
    virtual ~MessageSink() = default;
    virtual HeadAction on_head(const MessageHead& head) = 0;
    virtual void on_body(std::string_view bytes) = 0;
    // Chunked bodies only: a chunk of `size` bytes starts (0 = the last chunk).
    virtual void on_chunk_header(uint64_t size) { (void)size; }
    virtual void on_chunk_complete() {}
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
    ProxyError error = ProxyError::none;
};

class MessageParser {
  public:
    MessageParser(llhttp_type_t type, MessageSink& sink, HeadLimits limits = {});
    // Events go to `sink` from now on (a backend connection's parser serves one session after another).
    void set_sink(MessageSink& sink) { sink_ = &sink; }
    MessageParser(const MessageParser&) = delete;
    MessageParser& operator=(const MessageParser&) = delete;

    // Parses as much of `bytes` as it can. After `paused`, call resume() before feeding the rest.
    FeedResult feed(std::string_view bytes);
    void resume();
    // The peer closed: completes a close-delimited message. Returns false if a message was cut short.
    bool finish();
    // Forget any partial message (a new exchange on a reused connection).
    void reset();

    const MessageHead& head() const { return head_; }
    bool in_message() const { return in_message_; }
    bool head_complete() const { return head_complete_; }
    const char* error_reason() const { return llhttp_get_error_reason(&parser_); }

  private:
    static MessageParser& self(llhttp_t* p) { return *static_cast<MessageParser*>(p->data); }
    static int on_message_begin(llhttp_t* p);
    static int on_url(llhttp_t* p, const char* at, size_t len);
    static int on_status(llhttp_t* p, const char* at, size_t len);
    static int on_header_field(llhttp_t* p, const char* at, size_t len);
    static int on_header_value(llhttp_t* p, const char* at, size_t len);
    static int on_headers_complete(llhttp_t* p);
    static int on_body(llhttp_t* p, const char* at, size_t len);
    static int on_chunk_header(llhttp_t* p);
    static int on_chunk_complete(llhttp_t* p);
    static int on_message_complete(llhttp_t* p);

    int append(MessageHead::Span& span, const char* at, size_t len);
    int fail(ProxyError error);

    static const llhttp_settings_t& settings();  // one table for every parser: saves 184 bytes each

    llhttp_t parser_;
    MessageSink* sink_;
    HeadLimits limits_;
    MessageHead head_;
    ProxyError limit_error_ = ProxyError::none;
    bool in_message_ = false;
    bool head_complete_ = false;
    bool in_trailers_ = false;
    bool last_was_value_ = false;
    const char* input_end_ = nullptr;  // end of the bytes being fed
    bool value_piece_reached_input_end_ = false;
};

}  // namespace lb::http
