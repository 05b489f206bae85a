#include "base/json_string.h"

namespace lb::base {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Printable ASCII that JSON takes as it is.
bool is_plain(char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF), or 0 when it does not start with one.
size_t utf8_sequence_length(std::string_view s) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    auto continuation = [&](size_t i) { return i < s.size() && (byte(i) & 0xc0) == 0x80; };
    unsigned char lead = byte(0);
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf) return continuation(1) ? 2 : 0;
    if (lead >= 0xe0 && lead <= 0xef) {
        if (!continuation(1) || !continuation(2)) return 0;
        if (lead == 0xe0 && byte(1) < 0xa0) return 0;   // overlong
        if (lead == 0xed && byte(1) >= 0xa0) return 0;  // a surrogate
        return 3;
    }
    if (lead >= 0xf0 && lead <= 0xf4) {
        if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
        if (lead == 0xf0 && byte(1) < 0x90) return 0;   // overlong
        if (lead == 0xf4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;
}

}  // namespace

void append_json_string(std::string_view value, std::string& out) {
    out += '"';
    while (!value.empty()) {
        // Most of a target or an id needs no escaping: copy it a run at a time.
        size_t plain = 0;
        while (plain < value.size() && is_plain(value[plain])) ++plain;
        out.append(value.substr(0, plain));
        value.remove_prefix(plain);
        if (value.empty()) break;
        auto c = static_cast<unsigned char>(value.front());
        if (c >= 0x80) {
            size_t length = utf8_sequence_length(value);
            if (length == 0) {
                out += "\\\\x";  // "\\xHH": a backslash, then the byte's hex, in the decoded string
                out += kHex[c >> 4];
                out += kHex[c & 0xf];
                length = 1;
            } else {
                out.append(value.substr(0, length));
            }
            value.remove_prefix(length);
            continue;
        }
        value.remove_prefix(1);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xf];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

std::string json_string(std::string_view value) {
    std::string out;
    append_json_string(value, out);
    return out;
}

}  // namespace lb::base
