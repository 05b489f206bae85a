// Which header fields cross the proxy (RFC 9110 §7.6.1): hop-by-hop fields, and the fields a Connection header
// names, stay on their own hop. Pure functions.
#pragma once

#include <string_view>

#include "http/message_parser.h"

namespace lb::http {

bool equals_ignore_case(std::string_view a, std::string_view b);

// `s` without leading and trailing spaces and tabs (RFC 9110's OWS).
std::string_view trim_ows(std::string_view s);

// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade.
bool is_hop_by_hop(std::string_view name);

// True when any Connection field of `head` lists `name` as a token (comma-separated, case-insensitive).
bool connection_lists(const MessageHead& head, std::string_view name);

// True when the field must not be forwarded: hop-by-hop, listed in Connection, or Content-Length (the proxy
// writes its own framing fields).
bool is_dropped_when_forwarding(const MessageHead& head, std::string_view name);

// Requests whose effects are the same when repeated (RFC 9110 §9.2.2): a body-less one cut off before any
// response byte may be sent again to another backend.
bool is_idempotent(llhttp_method_t method);

}  // namespace lb::http
