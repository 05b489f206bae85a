#include "http/request_head.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "http/header_rules.h"

namespace lb::http {

using namespace std::string_view_literals;

namespace {

// One resize and copies, not four appends: every forwarded field of every request and response comes through here.
void append_field(std::string& out, std::string_view name, std::string_view value) {
    size_t at = out.size();
    out.resize(at + name.size() + value.size() + 4);
    char* p = out.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
}

void append_number(std::string& out, uint64_t value, int base = 10) {
    char digits[24];
    auto [end, error] = std::to_chars(digits, digits + sizeof digits, value, base);
    out.append(digits, static_cast<size_t>(end - digits));
}

void append_framing(std::string& out, BodyFraming framing, uint64_t content_length) {
    if (framing == BodyFraming::content_length) {
        out.append("Content-Length: "sv);
        append_number(out, content_length);
        out.append("\r\n"sv);
    } else if (framing == BodyFraming::chunked) {
        out.append("Transfer-Encoding: chunked\r\n"sv);
    }
}

}  // namespace

BodyFraming upstream_request_framing(const MessageHead& request) {
    if (request.chunked) return BodyFraming::chunked;
    if (request.has_content_length) return BodyFraming::content_length;
    return BodyFraming::none;
}

namespace {

// Appends the non-empty elements of one X-Forwarded-For list, each followed by ", ".
void append_forwarded_elements(std::string& out, std::string_view list) {
    while (!list.empty()) {
        size_t comma = list.find(',');
        std::string_view element = trim_ows(list.substr(0, comma));
        if (!element.empty()) {
            out.append(element);
            out.append(", "sv);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

}  // namespace

void write_upstream_request_head(const MessageHead& request, const ForwardedFor& forwarded, bool keep_alive,
                                 std::string& out) {
    out.append(llhttp_method_name(request.method));
    out.push_back(' ');
    out.append(forwarded.target.empty() ? request.target() : forwarded.target);
    out.append(" HTTP/1.1\r\n"sv);

    const HeaderRewrite* rewrite = forwarded.rewrite;
    bool has_host = false;
    size_t xff_fields = 0;
    const ForwardingFilter dropped(request);
    for (size_t i = 0; i < request.field_count(); ++i) {
        auto f = request.field(i);
        if (equals_ignore_case(f.name, "x-forwarded-for")) {
            ++xff_fields;
            continue;
        }
        if (equals_ignore_case(f.name, "x-forwarded-proto")) continue;
        if (!forwarded.client_subject_header.empty() && equals_ignore_case(f.name, forwarded.client_subject_header)) {
            continue;
        }
        if (std::any_of(forwarded.dropped_fields.begin(), forwarded.dropped_fields.end(),
                        [&](const std::string& name) { return equals_ignore_case(f.name, name); })) {
            continue;
        }
        if (!forwarded.request_id.empty() && equals_ignore_case(f.name, forwarded.request_id_header)) continue;
        if (dropped.drops(f.name)) continue;
        const bool host = equals_ignore_case(f.name, "host");
        has_host = has_host || host;
        if (rewrite && rewrite->drops(f.name)) continue;
        append_field(out, f.name, f.value);
    }
    if (!has_host && !(rewrite && rewrite->drops("host"))) append_field(out, "Host", forwarded.backend_host);
    if (rewrite) rewrite->append_fields(out);

    // Several X-Forwarded-For fields form one list (RFC 9110 §5.3): join them in order, then add this client.
    out.append("X-Forwarded-For: "sv);
    for (size_t i = 0; xff_fields > 0 && i < request.field_count(); ++i) {
        auto f = request.field(i);
        if (equals_ignore_case(f.name, "x-forwarded-for")) append_forwarded_elements(out, f.value);
    }
    out.append(forwarded.client_address);
    out.append("\r\n"sv);
    append_field(out, "X-Forwarded-Proto", forwarded.proto);
    if (!forwarded.client_subject_header.empty() && !forwarded.client_subject.empty()) {
        append_field(out, forwarded.client_subject_header, forwarded.client_subject);
    }
    if (!forwarded.request_id.empty()) append_field(out, forwarded.request_id_header, forwarded.request_id);

    append_framing(out, upstream_request_framing(request), request.content_length);
    if (!forwarded.upgrade.empty()) {
        // Whether the connection is kept after a declined upgrade is the backend's to say in its response.
        append_field(out, "Upgrade", forwarded.upgrade);
        out.append("Connection: upgrade\r\n"sv);
    } else if (!keep_alive) {
        out.append("Connection: close\r\n"sv);
    }
    out.append("\r\n"sv);
}

bool response_has_no_body(const MessageHead& request, const MessageHead& response) {
    return request.method == HTTP_HEAD || response.status / 100 == 1 || response.status == 204 ||
           response.status == 304;
}

BodyFraming client_response_framing(const MessageHead& request, const MessageHead& response) {
    if (response.status / 100 == 1 || response.status == 204) return BodyFraming::none;
    if (request.method == HTTP_HEAD || response.status == 304) {
        // No body follows, but the Content-Length describes the representation a GET would have returned
        // (RFC 9110 §8.6): pass it on.
        return response.has_content_length ? BodyFraming::content_length : BodyFraming::none;
    }
    if (response.has_content_length && !response.chunked) return BodyFraming::content_length;
    return request.is_http10() ? BodyFraming::until_close : BodyFraming::chunked;
}

namespace {

// A response's end-to-end fields as the client gets them: hop-by-hop ones dropped, the route's rewrite applied, and
// `added` last, replacing any field of its name.
void append_end_to_end_fields(const MessageHead& response, AddedField added, const HeaderRewrite* rewrite,
                              std::string& out) {
    const ForwardingFilter dropped(response);
    for (size_t i = 0; i < response.field_count(); ++i) {
        auto f = response.field(i);
        if (dropped.drops(f.name)) continue;
        if (!added.name.empty() && equals_ignore_case(f.name, added.name)) continue;
        if (rewrite && rewrite->drops(f.name)) continue;
        append_field(out, f.name, f.value);
    }
    if (rewrite) rewrite->append_fields(out);
    if (!added.name.empty()) append_field(out, added.name, added.value);
}

}  // namespace

void write_client_response_head(const MessageHead& response, BodyFraming framing, bool client_http10, bool keep_alive,
                                std::string& out, AddedField added, const HeaderRewrite* rewrite) {
    out.append("HTTP/1.1 "sv);
    append_number(out, static_cast<uint64_t>(response.status));
    out.push_back(' ');
    out.append(response.reason());
    out.append("\r\n"sv);
    append_end_to_end_fields(response, added, rewrite, out);
    append_framing(out, framing, response.content_length);
    if (!keep_alive) {
        out.append("Connection: close\r\n"sv);
    } else if (client_http10) {
        out.append("Connection: keep-alive\r\n"sv);
    }
    out.append("\r\n"sv);
}

void write_switching_protocols_head(const MessageHead& response, std::string_view protocols, std::string& out,
                                    AddedField added, const HeaderRewrite* rewrite) {
    out.append("HTTP/1.1 101 "sv);
    out.append(response.reason());
    out.append("\r\n"sv);
    append_end_to_end_fields(response, added, rewrite, out);
    append_field(out, "Upgrade", protocols);
    out.append("Connection: upgrade\r\n\r\n"sv);
}

void write_chunk_size(uint64_t size, std::string& out) {
    append_number(out, size, 16);
    out.append("\r\n"sv);
}

}  // namespace lb::http
