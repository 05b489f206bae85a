#include "http/message_parser.h"

#include "http/header_rules.h"

namespace lb::http {

namespace {

// Every header field costs its name and value plus ": " and CRLF on the wire.
constexpr uint64_t kFieldFraming = 4;

}  // namespace

bool MessageHead::find(std::string_view name, std::string_view& value) const {
    for (const auto& f : fields_) {
        if (equals_ignore_case(view(f.name), name)) {
            value = view(f.value);
            return true;
        }
    }
    value = {};
    return false;
}

size_t MessageHead::count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields_) n += equals_ignore_case(view(f.name), name) ? 1 : 0;
    return n;
}

void MessageHead::clear() {
    storage_.clear();
    fields_.clear();
    target_ = {};
    reason_ = {};
    chunked = false;
    has_content_length = false;
    content_length = 0;
    keep_alive = false;
    status = 0;
}

const llhttp_settings_t& MessageParser::settings() {
    static const llhttp_settings_t table = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_message_begin = &MessageParser::on_message_begin;
        s.on_url = &MessageParser::on_url;
        s.on_status = &MessageParser::on_status;
        s.on_header_field = &MessageParser::on_header_field;
        s.on_header_value = &MessageParser::on_header_value;
        s.on_headers_complete = &MessageParser::on_headers_complete;
        s.on_body = &MessageParser::on_body;
        s.on_chunk_header = &MessageParser::on_chunk_header;
        s.on_chunk_complete = &MessageParser::on_chunk_complete;
        s.on_message_complete = &MessageParser::on_message_complete;
        return s;
    }();
    return table;
}

MessageParser::MessageParser(llhttp_type_t type, MessageSink& sink, HeadLimits limits) : sink_(&sink), limits_(limits) {
    llhttp_init(&parser_, type, &settings());
    parser_.data = this;
}

FeedResult MessageParser::feed(std::string_view bytes) {
    input_end_ = bytes.data() + bytes.size();
    llhttp_errno_t err = llhttp_execute(&parser_, bytes.data(), bytes.size());
    if (err == HPE_OK) return {FeedStatus::consumed_all, bytes.size()};
    const char* pos = llhttp_get_error_pos(&parser_);
    size_t consumed = pos ? static_cast<size_t>(pos - bytes.data()) : 0;
    if (err == HPE_PAUSED) return {FeedStatus::paused, consumed};
    ProxyError error = limit_error_;
    if (error == ProxyError::none) {
        error = parser_.type == HTTP_REQUEST ? ProxyError::bad_request : ProxyError::bad_response;
    }
    return {FeedStatus::error, consumed, error};
}

void MessageParser::resume() { llhttp_resume(&parser_); }

bool MessageParser::finish() {
    llhttp_errno_t err = llhttp_finish(&parser_);
    return err == HPE_OK || err == HPE_PAUSED;
}

void MessageParser::reset() {
    llhttp_reset(&parser_);
    parser_.data = this;
    head_.clear();
    limit_error_ = ProxyError::none;
    in_message_ = false;
    head_complete_ = false;
    in_trailers_ = false;
    last_was_value_ = false;
}

int MessageParser::fail(ProxyError error) {
    limit_error_ = error;
    llhttp_set_error_reason(&parser_, to_string(error).data());
    return HPE_USER;
}

int MessageParser::append(MessageHead::Span& span, const char* at, size_t len) {
    if (span.length == 0) span.offset = static_cast<uint32_t>(head_.storage_.size());
    head_.storage_.append(at, len);
    span.length += static_cast<uint32_t>(len);
    uint64_t head_bytes = head_.storage_.size() + kFieldFraming * head_.fields_.size();
    if (head_bytes > limits_.header_bytes) return fail(ProxyError::headers_too_large);
    return 0;
}

int MessageParser::on_message_begin(llhttp_t* p) {
    auto& s = self(p);
    s.head_.clear();
    // One allocation for a typical head instead of a string doubling its way up.
    if (s.head_.storage_.capacity() < 512) s.head_.storage_.reserve(512);
    if (s.head_.fields_.capacity() < 16) s.head_.fields_.reserve(16);
    s.limit_error_ = ProxyError::none;
    s.in_message_ = true;
    s.head_complete_ = false;
    s.in_trailers_ = false;
    s.last_was_value_ = false;
    return 0;
}

int MessageParser::on_url(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    if (s.head_.target_.length + len > s.limits_.uri_bytes) return s.fail(ProxyError::uri_too_long);
    return s.append(s.head_.target_, at, len);
}

int MessageParser::on_status(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    return s.append(s.head_.reason_, at, len);
}

int MessageParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    if (s.in_trailers_) return 0;  // trailers are not forwarded: the body is re-framed
    if (s.head_.fields_.empty() || s.last_was_value_) {
        if (s.head_.fields_.size() >= s.limits_.header_count) return s.fail(ProxyError::headers_too_large);
        s.head_.fields_.emplace_back();
        s.last_was_value_ = false;
    }
    return s.append(s.head_.fields_.back().name, at, len);
}

int MessageParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    if (s.in_trailers_) return 0;
    // llhttp accepts obs-fold (a value continued on the next line) and reports the continuation as one more
    // piece of the value. A value split only by a read boundary ends its piece at the end of the input; one
    // that ends earlier and continues is a fold. RFC 9112 §5.2 lets a recipient reject it: it does.
    auto& value = s.head_.fields_.back().value;
    if (s.last_was_value_ && value.length > 0 && !s.value_piece_reached_input_end_) {
        return s.fail(p->type == HTTP_REQUEST ? ProxyError::bad_request : ProxyError::bad_response);
    }
    s.value_piece_reached_input_end_ = at + len == s.input_end_;
    s.last_was_value_ = true;
    return s.append(s.head_.fields_.back().value, at, len);
}

int MessageParser::on_headers_complete(llhttp_t* p) {
    auto& s = self(p);
    auto& h = s.head_;
    h.method = static_cast<llhttp_method_t>(p->method);
    h.status = p->status_code;
    h.version_major = p->http_major;
    h.version_minor = p->http_minor;
    h.chunked = (p->flags & F_CHUNKED) != 0;
    h.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    h.content_length = h.has_content_length ? p->content_length : 0;
    h.keep_alive = llhttp_should_keep_alive(p) != 0;
    s.head_complete_ = true;
    s.in_trailers_ = true;
    if (p->type == HTTP_REQUEST) {
        // CONNECT tunnels are not supported; other Upgrade requests are forwarded as plain requests with the
        // hop-by-hop Upgrade header removed, so the parser must not switch to tunnel mode after them.
        if (h.method == HTTP_CONNECT) return s.fail(ProxyError::bad_request);
        p->upgrade = 0;
    }
    switch (s.sink_->on_head(h)) {
        case HeadAction::proceed:
            return 0;
        case HeadAction::skip_body:
            return 1;
        case HeadAction::pause:
            return HPE_PAUSED;
    }
    return 0;
}

int MessageParser::on_body(llhttp_t* p, const char* at, size_t len) {
    self(p).sink_->on_body({at, len});
    return 0;
}

int MessageParser::on_chunk_header(llhttp_t* p) {
    self(p).sink_->on_chunk_header(p->content_length);
    return 0;
}

int MessageParser::on_chunk_complete(llhttp_t* p) {
    self(p).sink_->on_chunk_complete();
    return 0;
}

int MessageParser::on_message_complete(llhttp_t* p) {
    auto& s = self(p);
    s.in_message_ = false;
    s.sink_->on_message_complete();
    return HPE_PAUSED;
}

}  // namespace lb::http
