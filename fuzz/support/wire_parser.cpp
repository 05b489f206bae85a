#include "fuzz/support/wire_parser.h"

#include <fmt/format.h>
#include <strings.h>

namespace lb::fuzz {

namespace {

bool same_name(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

size_t WireMessage::count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields) n += same_name(f.name, name) ? 1 : 0;
    return n;
}

const WireField* WireMessage::find(std::string_view name) const {
    for (const auto& f : fields) {
        if (same_name(f.name, name)) return &f;
    }
    return nullptr;
}

std::vector<std::string_view> WireMessage::values(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& f : fields) {
        if (same_name(f.name, name)) out.push_back(f.value);
    }
    return out;
}

const llhttp_settings_t& WireParser::settings() {
    static const llhttp_settings_t table = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_message_begin = &WireParser::on_message_begin;
        s.on_url = &WireParser::on_url;
        s.on_status = &WireParser::on_status;
        s.on_header_field = &WireParser::on_header_field;
        s.on_header_value = &WireParser::on_header_value;
        s.on_headers_complete = &WireParser::on_headers_complete;
        s.on_body = &WireParser::on_body;
        s.on_message_complete = &WireParser::on_message_complete;
        return s;
    }();
    return table;
}

WireParser::WireParser(llhttp_type_t type) {
    llhttp_init(&parser_, type, &settings());
    parser_.data = this;
}

size_t WireParser::complete_count() const {
    size_t n = 0;
    for (const auto& m : messages_) n += m.complete ? 1 : 0;
    return n;
}

size_t WireParser::final_count() const {
    size_t n = 0;
    for (const auto& m : messages_) n += (m.head_complete && m.interim()) ? 0 : 1;
    return n;
}

size_t WireParser::bytes_after_last_complete() const {
    size_t end = 0;
    for (const auto& m : messages_) {
        if (m.complete) end = m.end_offset;
    }
    return (failed_ ? error_offset_ : offset_) - end + (failed_ ? 1 : 0);
}

bool WireParser::feed(std::string_view bytes) {
    if (failed_) return false;
    if (tunnel_) return true;
    const char* begin = bytes.data();
    const char* end = begin + bytes.size();
    const char* at = begin;
    while (true) {
        llhttp_errno_t err = llhttp_execute(&parser_, at, static_cast<size_t>(end - at));
        if (err == HPE_OK) {
            offset_ += static_cast<size_t>(end - at);
            return true;
        }
        const char* pos = llhttp_get_error_pos(&parser_);
        if (err == HPE_PAUSED) {
            // Paused after each message, to note where it ended.
            offset_ += static_cast<size_t>(pos - at);
            messages_.back().end_offset = offset_;
            if (tunnel_) return true;  // the rest is the tunnel's
            at = pos;
            llhttp_resume(&parser_);
            continue;
        }
        fail(err, pos, at);
        return false;
    }
}

bool WireParser::finish() {
    if (failed_) return false;
    if (tunnel_) return true;
    llhttp_errno_t err = llhttp_finish(&parser_);
    if (err == HPE_PAUSED) {
        messages_.back().end_offset = offset_;
        return true;
    }
    // HPE_INVALID_EOF_STATE: a message cut short, which the caller judges.
    return err == HPE_OK || err == HPE_INVALID_EOF_STATE;
}

void WireParser::fail(llhttp_errno_t err, const char* pos, const char* begin) {
    failed_ = true;
    size_t at = pos ? static_cast<size_t>(pos - begin) : 0;
    error_offset_ = offset_ + at;
    const char* reason = llhttp_get_error_reason(&parser_);
    error_ = fmt::format("{} ({}) at offset {}", llhttp_errno_name(err), reason ? reason : "", error_offset_);
}

int WireParser::on_message_begin(llhttp_t* p) {
    auto& s = self(p);
    s.messages_.emplace_back();
    s.in_field_name_ = false;
    s.in_trailers_ = false;
    return 0;
}

int WireParser::on_url(llhttp_t* p, const char* at, size_t len) {
    self(p).messages_.back().target.append(at, len);
    return 0;
}

int WireParser::on_status(llhttp_t* p, const char* at, size_t len) {
    self(p).messages_.back().reason.append(at, len);
    return 0;
}

int WireParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    if (s.in_trailers_) return 0;
    auto& m = s.messages_.back();
    if (!s.in_field_name_) m.fields.emplace_back();
    s.in_field_name_ = true;
    m.fields.back().name.append(at, len);
    return 0;
}

int WireParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
    auto& s = self(p);
    if (s.in_trailers_) return 0;
    s.in_field_name_ = false;
    s.messages_.back().fields.back().value.append(at, len);
    return 0;
}

int WireParser::on_headers_complete(llhttp_t* p) {
    auto& s = self(p);
    auto& m = s.messages_.back();
    m.method = static_cast<llhttp_method_t>(p->method);
    m.status = p->status_code;
    m.version_major = p->http_major;
    m.version_minor = p->http_minor;
    m.chunked = (p->flags & F_CHUNKED) != 0;
    m.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
    m.content_length = m.has_content_length ? p->content_length : 0;
    m.keep_alive = llhttp_should_keep_alive(p) != 0;
    m.head_complete = true;
    s.in_trailers_ = true;
    if (p->type == HTTP_REQUEST) {
        // As lb does: an Upgrade request is an ordinary request (its Upgrade field is not forwarded). CONNECT
        // keeps llhttp's tunnel semantics: the stream stops being HTTP there.
        if (m.method != HTTP_CONNECT) p->upgrade = 0;
        return 0;
    }
    // RFC 9112 §6.3: 1xx, 204 and 304 responses end at their head, whatever Content-Length or
    // Transfer-Encoding say. llhttp 8.1 reads a body for them when those fields are present, so say it here.
    if (m.interim()) return s.llhttp_bodies_ ? 0 : 1;
    bool bodiless = !s.llhttp_bodies_ && (m.status == 204 || m.status == 304);
    bool head = s.answers_head_ && s.answers_head_(s.finals_begun_, m);
    ++s.finals_begun_;
    return (head || bodiless) ? 1 : 0;
}

int WireParser::on_body(llhttp_t* p, const char* at, size_t len) {
    self(p).messages_.back().body.append(at, len);
    return 0;
}

int WireParser::on_message_complete(llhttp_t* p) {
    auto& s = self(p);
    s.messages_.back().complete = true;
    if (s.stop_at_101_ && s.messages_.back().status == 101) s.tunnel_ = true;
    return HPE_PAUSED;
}

}  // namespace lb::fuzz
