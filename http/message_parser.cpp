#include "http/message_parser.h"

#include <cstring>

#include "http/header_rules.h"

namespace lb::http {

namespace {

// Every header field costs its name and value plus ": " and CRLF on the wire.
constexpr uint64_t kFieldFraming = 4;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

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

// ---- the section scanner ----

void MessageParser::SectionScanner::start(Mode mode) {
    mode_ = mode;
    active_ = true;
    in_start_line_ = mode != Mode::trailers;
    // A trailer section starts right after the last chunk's line: like any line after a line end.
    after_lf_ = mode == Mode::trailers;
    last_byte_ = mode == Mode::trailers ? '\n' : 0;  // a trailer section starts right after a LF
    first_len_ = 0;
    last_len_ = 0;
}

ParseError MessageParser::SectionScanner::scan(std::string_view bytes) {
    const char* p = bytes.data();
    const char* end = p + bytes.size();
    while (active_ && p < end) {
        if (after_lf_ && !in_start_line_) {
            after_lf_ = false;
            if (*p == ' ' || *p == '\t') return ParseError::malformed;  // obs-fold
            if (*p == ':') return ParseError::malformed;                // a field with no name
            if (*p == '\r') {
                active_ = false;  // the blank line: the section ends here
                break;
            }
        }
        const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        const char* line_end = lf ? lf : end;
        // Every line ends in CRLF (RFC 9112 §2.2): llhttp takes a bare LF as the blank line that ends a section,
        // where another parser would not; a proxy that lets that through invites request smuggling. The start
        // line's first bytes are kept before the refusal: they say whether the error answer is to a HEAD.
        const bool bare_lf = lf && (lf > bytes.data() ? lf[-1] : last_byte_) != '\r';
        if (in_start_line_) p = keep_first_bytes(p, line_end);
        if (bare_lf) return ParseError::malformed;
        if (in_start_line_) {
            size_t piece = static_cast<size_t>(line_end - p);
            if (piece >= sizeof last_) {
                std::memcpy(last_, line_end - sizeof last_, sizeof last_);
                last_len_ = sizeof last_;
            } else if (piece > 0) {
                size_t keep = std::min<size_t>(last_len_, sizeof last_ - piece);
                std::memmove(last_, last_ + last_len_ - keep, keep);
                std::memcpy(last_ + keep, p, piece);
                last_len_ = static_cast<uint8_t>(keep + piece);
            }
            if (lf && first_len_ > 0) {
                in_start_line_ = false;
                if (ParseError e = end_start_line(); e != ParseError::none) return e;
            }
        }
        if (!lf) break;
        p = lf + 1;
        after_lf_ = true;
    }
    if (!bytes.empty()) last_byte_ = bytes.back();
    return ParseError::none;
}

const char* MessageParser::SectionScanner::keep_first_bytes(const char* p, const char* line_end) {
    // Empty lines before a request line are tolerated (RFC 9112 §2.2); llhttp decides on them.
    while (first_len_ == 0 && p < line_end && (*p == '\r' || *p == '\n')) ++p;
    for (const char* c = p; c < line_end && first_len_ < sizeof first_; ++c) {
        first_[first_len_++] = *c;
    }
    return p;
}

ParseError MessageParser::SectionScanner::end_start_line() {
    if (mode_ == Mode::response_head) {
        return first_len_ == sizeof first_ && std::memcmp(first_, "HTTP/", 5) == 0 ? ParseError::none
                                                                                   : ParseError::malformed;
    }
    // A request line ends in " HTTP/d.d" then CR: anything else (RTSP/1.0, ICE/1.0) is another protocol.
    bool http = last_len_ == sizeof last_ && last_[9] == '\r' && std::memcmp(last_, " HTTP/", 6) == 0 &&
                is_digit(last_[6]) && last_[7] == '.' && is_digit(last_[8]);
    return http ? ParseError::none : ParseError::malformed;
}

// ---- the parser ----

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
        s.on_chunk_extension_name = &MessageParser::on_chunk_extension;
        s.on_chunk_extension_value = &MessageParser::on_chunk_extension;
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
    size_t offset = 0;
    for (;;) {
        std::string_view rest = bytes.substr(offset);
        if (!in_message_ && !scanner_.active() && !rest.empty()) {
            scanner_.start(parser_.type == HTTP_REQUEST ? SectionScanner::Mode::request_head
                                                        : SectionScanner::Mode::response_head);
        }
        if (scanner_.active()) {
            if (ParseError e = scanner_.scan(rest); e != ParseError::none) {
                error_ = e;
                llhttp_set_error_reason(
                    &parser_, e == ParseError::malformed ? "obs-fold or not an HTTP/1.x message" : to_string(e).data());
                return {FeedStatus::error, offset, e};
            }
        }
        llhttp_errno_t err = llhttp_execute(&parser_, rest.data(), rest.size());
        if (err == HPE_OK) return {FeedStatus::consumed_all, bytes.size()};
        const char* pos = llhttp_get_error_pos(&parser_);
        size_t consumed = offset + (pos ? static_cast<size_t>(pos - rest.data()) : 0);
        if (err == HPE_PAUSED && trailers_pause_) {
            // Our own pause at the last chunk: scan the trailer section before llhttp parses it.
            trailers_pause_ = false;
            llhttp_resume(&parser_);
            scanner_.start(SectionScanner::Mode::trailers);
            offset = consumed;
            continue;
        }
        if (err == HPE_PAUSED) return {FeedStatus::paused, consumed};
        ParseError error = error_ != ParseError::none ? error_ : ParseError::malformed;
        return {FeedStatus::error, consumed, error};
    }
}

void MessageParser::resume() { llhttp_resume(&parser_); }

bool MessageParser::is_head_request() const {
    if (head_complete_) return head_.method == HTTP_HEAD;
    return parser_.type == HTTP_REQUEST && scanner_.start_line_prefix() == "HEAD ";
}

bool MessageParser::finish() {
    llhttp_errno_t err = llhttp_finish(&parser_);
    return err == HPE_OK || err == HPE_PAUSED;
}

void MessageParser::reset() {
    llhttp_reset(&parser_);
    parser_.data = this;
    head_.clear();
    scanner_ = {};
    error_ = ParseError::none;
    in_message_ = false;
    head_complete_ = false;
    in_trailers_ = false;
    last_was_value_ = false;
    trailers_pause_ = false;
}

void MessageParser::trim_storage(size_t max_capacity) {
    if (head_.storage_.capacity() > max_capacity) std::string().swap(head_.storage_);
    if (head_.fields_.capacity() * sizeof(MessageHead::FieldSpans) > max_capacity) {
        std::vector<MessageHead::FieldSpans>().swap(head_.fields_);
    }
}

int MessageParser::fail(ParseError error) {
    error_ = error;
    llhttp_set_error_reason(&parser_, to_string(error).data());
    return HPE_USER;
}

int MessageParser::append(MessageHead::Span& span, const char* at, size_t len) {
    if (span.length == 0) span.offset = static_cast<uint32_t>(head_.storage_.size());
    head_.storage_.append(at, len);
    span.length += static_cast<uint32_t>(len);
    uint64_t head_bytes = head_.storage_.size() + kFieldFraming * head_.fields_.size();
    if (head_bytes > limits_.header_bytes) return fail(ParseError::headers_too_large);
    return 0;
}

int MessageParser::count_trailer(size_t len, bool new_field) {
    // Trailers are not forwarded (the body is re-framed) but they cost time and bytes like a head: they count
    // against the same limits, added to the head they follow.
    trailer_bytes_ += len;
    if (new_field) {
        ++trailer_fields_;
        trailer_bytes_ += kFieldFraming;
    }
    uint64_t bytes = head_.storage_.size() + kFieldFraming * head_.fields_.size() + trailer_bytes_;
    if (bytes > limits_.header_bytes || head_.fields_.size() + trailer_fields_ > limits_.header_count) {
        return fail(ParseError::headers_too_large);
    }
    return 0;
}

int MessageParser::count_body(size_t len) {
    body_bytes_ += len;
    if (limits_.body_bytes != 0 && body_bytes_ > limits_.body_bytes) return fail(ParseError::body_too_large);
    return 0;
}

int MessageParser::on_message_begin(llhttp_t* p) {
    auto& s = self(p);
    s.head_.clear();
    // One allocation for a typical head instead of a string doubling its way up.
    if (s.head_.storage_.capacity() < 512) s.head_.storage_.reserve(512);
    if (s.head_.fields_.capacity() < 16) s.head_.fields_.reserve(16);
    s.error_ = ParseError::none;
    s.body_bytes_ = 0;
    s.trailer_bytes_ = 0;
    s.trailer_fields_ = 0;
    s.in_message_ = true;
    s.head_complete_ = false;
    s.in_trailers_ = false;
    s.last_was_value_ = false;
    return 0;
}

int MessageParser::on_url(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    if (s.head_.target_.length + len > s.limits_.uri_bytes) return s.fail(ParseError::uri_too_long);
    return s.append(s.head_.target_, at, len);
}

int MessageParser::on_status(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    return s.append(s.head_.reason_, at, len);
}

int MessageParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    bool new_field = s.last_was_value_ || (s.in_trailers_ ? s.trailer_fields_ == 0 : s.head_.fields_.empty());
    if (s.in_trailers_) {
        s.last_was_value_ = false;
        return s.count_trailer(len, new_field);
    }
    if (new_field) {
        if (s.head_.fields_.size() >= s.limits_.header_count) return s.fail(ParseError::headers_too_large);
        s.head_.fields_.emplace_back();
        s.last_was_value_ = false;
    }
    return s.append(s.head_.fields_.back().name, at, len);
}

int MessageParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    s.last_was_value_ = true;
    if (s.in_trailers_) return s.count_trailer(len, false);
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
    s.last_was_value_ = false;
    if (h.version_major != 1) {
        return s.fail(p->type == HTTP_REQUEST ? ParseError::unsupported_version : ParseError::malformed);
    }
    if (p->type == HTTP_REQUEST) {
        if (s.limits_.body_bytes != 0 && h.has_content_length && h.content_length > s.limits_.body_bytes) {
            return s.fail(ParseError::body_too_large);
        }
        // Upgrade requests are forwarded as plain requests with the hop-by-hop Upgrade header removed, so the
        // parser must not switch to tunnel mode after them.
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
    auto& s = self(p);
    if (int rc = s.count_body(len); rc != 0) return rc;
    s.sink_->on_body({at, len});
    return 0;
}

int MessageParser::on_chunk_header(llhttp_t* p) {
    if (p->content_length != 0) return 0;
    // The last chunk: a trailer section follows. Pause so feed() can scan it from here.
    self(p).trailers_pause_ = true;
    return HPE_PAUSED;
}

int MessageParser::on_chunk_extension(llhttp_t* p, const char*, size_t len) {
    // Extensions are dropped (chunks are re-framed), but a sender could stream them forever: they count as body.
    return self(p).count_body(len);
}

int MessageParser::on_message_complete(llhttp_t* p) {
    auto& s = self(p);
    s.in_message_ = false;
    s.scanner_ = {};
    s.sink_->on_message_complete();
    return HPE_PAUSED;
}

}  // namespace lb::http
