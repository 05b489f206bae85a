// Which header fields cross the proxy (RFC 9110 §7.6.1): hop-by-hop fields, and the fields a Connection header
// names, stay on their own hop. Pure functions.
#pragma once

#include <string_view>

#include "http/message_parser.h"

namespace lb::http {

// ASCII case folding only: field names and tokens are ASCII (RFC 9110 §5.1), and a locale must not change them.
// Inline because every forwarded field is compared several times per request.
inline bool equals_ignore_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]);
        unsigned char y = static_cast<unsigned char>(b[i]);
        if (x == y) continue;
        if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
    }
    return true;
}

// `s` without leading and trailing spaces and tabs (RFC 9110's OWS).
std::string_view trim_ows(std::string_view s);

// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade.
bool is_hop_by_hop(std::string_view name);

// True when any Connection field of `head` lists `name` as a token (comma-separated, case-insensitive).
bool connection_lists(const MessageHead& head, std::string_view name);

// True when the field must not be forwarded: hop-by-hop, listed in Connection, or Content-Length (the proxy
// writes its own framing fields). Connection cannot remove Host or the X-Forwarded-* fields: a hop-by-hop claim on
// them would let a client strip what the backend relies on.
bool is_dropped_when_forwarding(const MessageHead& head, std::string_view name);

// is_dropped_when_forwarding for each field of one head in turn: whether the head has a Connection field at all is
// found once, so a head without one (most) costs no second pass over its fields per field.
class ForwardingFilter {
  public:
    explicit ForwardingFilter(const MessageHead& head) : head_(head), has_connection_(head.count("connection") > 0) {}
    bool drops(std::string_view name) const;

  private:
    const MessageHead& head_;
    bool has_connection_;
};

// The protocol list of the Upgrade a request asks for (RFC 9110 §7.8), when lb forwards it as one: an HTTP/1.1
// request whose Connection lists "upgrade", with exactly one non-empty Upgrade field and no body. Empty otherwise,
// and the request goes on as a plain one with Upgrade dropped as hop-by-hop (a server may ignore an Upgrade, so the
// request keeps its meaning). An HTTP/1.0 request's Upgrade must be ignored (§7.8). A body is refused the upgrade so
// that no tunnel byte can follow a body whose end lb would have to find first: WebSocket handshakes have none.
std::string_view requested_upgrade(const MessageHead& request);

// What a request head must satisfy beyond llhttp's syntax: exactly one Host in HTTP/1.1 (at most one in 1.0), RFC
// 9112 §3.2; no CONNECT (lb tunnels only after an Upgrade). Returns ParseError::none when it may be forwarded.
ParseError validate_request_head(const MessageHead& head);

// Requests whose effects are the same when repeated (RFC 9110 §9.2.2): a body-less one cut off before any
// response byte may be sent again to another backend.
bool is_idempotent(llhttp_method_t method);

}  // namespace lb::http
