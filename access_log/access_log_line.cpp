#include "access_log/access_log_line.h"

#include <charconv>
#include <cstring>

#include "base/json_string.h"

namespace lb::access_log {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_uint(uint64_t value, std::string& out) {
    char digits[20];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    out.append(digits, end);
}

// Printable ASCII that neither format escapes (text escapes spaces too).
bool is_plain(char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

void append_hex_escape(unsigned char byte, std::string& out) {
    out += '\\';
    out += 'x';
    out += kHex[byte >> 4];
    out += kHex[byte & 0xf];
}

void append_json_or_null(std::string_view value, std::string& out) {
    if (value.empty()) {
        out += "null";
    } else {
        base::append_json_string(value, out);
    }
}

void append_seconds_or(const std::optional<uint64_t>& ns, std::string_view absent, std::string& out) {
    if (ns) {
        append_seconds(*ns, out);
    } else {
        out += absent;
    }
}

void format_json(const AccessRecord& r, std::string_view time, std::string& out) {
    out += "{\"time\":\"";
    out += time;  // digits and punctuation only
    out += "\",\"client\":";
    append_json_or_null(r.client, out);
    out += ",\"method\":";
    append_json_or_null(r.method, out);
    out += ",\"target\":";
    append_json_or_null(r.target, out);
    out += ",\"protocol\":";
    append_json_or_null(r.protocol, out);
    out += ",\"status\":";
    append_uint(r.status, out);
    out += ",\"bytes_in\":";
    append_uint(r.bytes_in, out);
    out += ",\"bytes_out\":";
    append_uint(r.bytes_out, out);
    out += ",\"request_time\":";
    append_seconds(r.request_ns, out);
    out += ",\"upstream_connect_time\":";
    append_seconds_or(r.upstream_connect_ns, "null", out);
    out += ",\"upstream_response_time\":";
    append_seconds_or(r.upstream_response_ns, "null", out);
    out += ",\"backend\":";
    append_json_or_null(r.backend, out);
    out += ",\"retries\":";
    append_uint(r.retries, out);
    out += ",\"request_id\":";
    append_json_or_null(r.request_id, out);
    out += ",\"tls\":";
    append_json_or_null(r.tls_version, out);
    out += "}\n";
}

// TIME CLIENT "METHOD TARGET PROTOCOL" STATUS BYTES_IN BYTES_OUT REQUEST_TIME CONNECT_TIME RESPONSE_TIME BACKEND
// RETRIES REQUEST_ID TLS
void format_text(const AccessRecord& r, std::string_view time, std::string& out) {
    out += time;
    out += ' ';
    append_text_field(r.client, out);
    out += " \"";
    append_text_field(r.method, out);
    out += ' ';
    append_text_field(r.target, out);
    out += ' ';
    append_text_field(r.protocol, out);
    out += "\" ";
    append_uint(r.status, out);
    out += ' ';
    append_uint(r.bytes_in, out);
    out += ' ';
    append_uint(r.bytes_out, out);
    out += ' ';
    append_seconds(r.request_ns, out);
    out += ' ';
    append_seconds_or(r.upstream_connect_ns, "-", out);
    out += ' ';
    append_seconds_or(r.upstream_response_ns, "-", out);
    out += ' ';
    append_text_field(r.backend, out);
    out += ' ';
    append_uint(r.retries, out);
    out += ' ';
    append_text_field(r.request_id, out);
    out += ' ';
    append_text_field(r.tls_version, out);
    out += '\n';
}

}  // namespace

void append_text_field(std::string_view value, std::string& out) {
    if (value.empty()) {
        out += '-';
        return;
    }
    while (!value.empty()) {
        size_t plain = 0;
        while (plain < value.size() && is_plain(value[plain]) && value[plain] != ' ') ++plain;
        out.append(value.substr(0, plain));
        value.remove_prefix(plain);
        if (value.empty()) break;
        append_hex_escape(static_cast<unsigned char>(value.front()), out);
        value.remove_prefix(1);
    }
}

void append_seconds(uint64_t ns, std::string& out) {
    uint64_t us = ns / 1'000;
    append_uint(us / 1'000'000, out);
    char fraction[8] = {'.', '0', '0', '0', '0', '0', '0'};
    uint64_t rest = us % 1'000'000;
    for (int i = 6; i >= 1; --i, rest /= 10) fraction[i] = static_cast<char>('0' + rest % 10);
    out.append(fraction, 7);
}

std::string_view Timestamp::format(const timespec& now) {
    if (now.tv_sec != second_) {
        second_ = now.tv_sec;
        tm utc{};
        gmtime_r(&now.tv_sec, &utc);
        strftime(text_, sizeof text_, "%Y-%m-%dT%H:%M:%S", &utc);  // 19 characters until year 9999
    }
    auto ms = static_cast<unsigned>(now.tv_nsec / 1'000'000);
    char* tail = text_ + 19;
    tail[0] = '.';
    tail[1] = static_cast<char>('0' + ms / 100);
    tail[2] = static_cast<char>('0' + ms / 10 % 10);
    tail[3] = static_cast<char>('0' + ms % 10);
    tail[4] = 'Z';
    return {text_, 24};
}

void format_line(Format format, const AccessRecord& record, std::string_view time, std::string& out) {
    if (format == Format::json) {
        format_json(record, time, out);
    } else {
        format_text(record, time, out);
    }
}

}  // namespace lb::access_log
