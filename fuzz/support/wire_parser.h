// The oracles' own view of bytes on the wire: a plain llhttp parser (the strict build lb uses) that keeps every
// message of a stream whole, heads and de-chunked bodies, independently of lb's http::MessageParser. Used to
// re-parse what lb wrote and what the fuzzer sent.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lb::fuzz {

struct WireField {
    std::string name;
    std::string value;
};

struct WireMessage {
    llhttp_method_t method = HTTP_GET;  // requests
    int status = 0;                     // responses
    int version_major = 0;
    int version_minor = 0;
    std::string target;
    std::string reason;
    std::vector<WireField> fields;
    bool chunked = false;
    bool has_content_length = false;
    uint64_t content_length = 0;
    bool keep_alive = false;
    std::string body;  // de-chunked
    bool head_complete = false;
    bool complete = false;
    size_t end_offset = 0;  // where the message ended in the stream (once complete)

    bool interim() const { return status >= 100 && status < 200; }
    size_t count(std::string_view name) const;
    // The first field with this name, or null.
    const WireField* find(std::string_view name) const;
    // Every value of the fields with this name, in order.
    std::vector<std::string_view> values(std::string_view name) const;
};

class WireParser {
  public:
    explicit WireParser(llhttp_type_t type);
    WireParser(const WireParser&) = delete;
    WireParser& operator=(const WireParser&) = delete;

    // Responses: whether the final response with this index (interim responses not counted), whose head is
    // given, answers a HEAD request, so that it has no body whatever its headers say.
    void set_answers_head(std::function<bool(size_t final_index, const WireMessage& head)> answers_head) {
        answers_head_ = std::move(answers_head);
    }
    // Responses: read 1xx, 204 and 304 bodies the way llhttp 8.1 does (by their framing fields) rather than as
    // RFC 9112 §6.3 says (none): to see a response stream as lb's parser sees it.
    void use_llhttp_bodies_for_bodiless_statuses() { llhttp_bodies_ = true; }
    // Responses: a 101 ends the HTTP stream; what follows is a tunnel's, and is not parsed (in_tunnel()).
    void stop_at_switching_protocols() { stop_at_101_ = true; }
    // Requests: the stream is a tunnel from here on (the caller answered the last request with a 101): further
    // bytes are not parsed.
    void start_tunnel() { tunnel_ = true; }
    bool in_tunnel() const { return tunnel_; }

    // Parses the next bytes of the stream; false once the stream is malformed (and from then on).
    bool feed(std::string_view bytes);
    // The peer closed: completes a close-delimited message. False only if the stream is malformed; a message
    // cut short is not an error here (messages().back().complete says).
    bool finish();

    const std::vector<WireMessage>& messages() const { return messages_; }
    size_t complete_count() const;
    // Final (non-1xx) responses begun.
    size_t final_count() const;
    bool failed() const { return failed_; }
    // Why the stream is malformed, and at which stream offset.
    const std::string& error() const { return error_; }
    size_t error_offset() const { return error_offset_; }
    size_t offset() const { return offset_; }
    // Bytes parsed after the end of the last complete message (a message begun, or bytes that are none).
    size_t bytes_after_last_complete() const;

  private:
    static WireParser& self(llhttp_t* p) { return *static_cast<WireParser*>(p->data); }
    static const llhttp_settings_t& settings();
    static int on_message_begin(llhttp_t* p);
    static int on_url(llhttp_t* p, const char* at, size_t len);
    static int on_status(llhttp_t* p, const char* at, size_t len);
    static int on_header_field(llhttp_t* p, const char* at, size_t len);
    static int on_header_value(llhttp_t* p, const char* at, size_t len);
    static int on_headers_complete(llhttp_t* p);
    static int on_body(llhttp_t* p, const char* at, size_t len);
    static int on_message_complete(llhttp_t* p);

    void fail(llhttp_errno_t err, const char* pos, const char* begin);

    llhttp_t parser_;
    std::vector<WireMessage> messages_;
    std::function<bool(size_t, const WireMessage&)> answers_head_;
    bool llhttp_bodies_ = false;
    bool stop_at_101_ = false;
    bool tunnel_ = false;
    size_t finals_begun_ = 0;
    bool in_field_name_ = false;
    bool in_trailers_ = false;
    bool failed_ = false;
    std::string error_;
    size_t error_offset_ = 0;
    size_t offset_ = 0;
};

}  // namespace lb::fuzz
