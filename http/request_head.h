// Serialises the heads lb writes: the request head it sends a backend and the response head it sends a client.
// Pure functions over a parsed MessageHead; they append to `out`.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "http/header_rewrite.h"
#include "http/message_parser.h"

namespace lb::http {

// How a body travels on the hop being written.
enum class BodyFraming {
    none,            // no body
    content_length,  // the received Content-Length, unchanged
    chunked,         // re-chunked by lb (Transfer-Encoding: chunked)
    until_close,     // delimited by closing the connection (HTTP/1.0 clients only)
};

struct ForwardedFor {
    std::string_view client_address;  // appended to X-Forwarded-For
    std::string_view proto;           // X-Forwarded-Proto, replacing any the client sent
    std::string_view backend_host;    // Host for an HTTP/1.0 request that has none ("host:port" of the backend)
    // Fields lb alone may set (the client certificate headers of every listener): the client's are dropped.
    std::span<const std::string> dropped_fields = {};
    // A header lb sets from the TLS client certificate (empty name: none). Whatever the client sent under that
    // name is dropped; the subject is added when one verified.
    std::string_view client_subject_header = {};
    std::string_view client_subject = {};
    // A request id lb made for a request that came without one (http/request_id.h): added under
    // `request_id_header`, replacing any field of that name the client sent (an empty one). Empty: none added.
    std::string_view request_id_header = {};
    std::string_view request_id = {};
    // The route's: the target with its prefix stripped (empty: the request's own), and its header changes, made
    // after lb's own fields are decided, so a route may set Host but cannot forge X-Forwarded-For.
    std::string_view target = {};
    const HeaderRewrite* rewrite = nullptr;
    // The Upgrade to pass on (requested_upgrade()), with "Connection: upgrade" instead of lb's own keep-alive
    // choice; empty: none.
    std::string_view upgrade = {};
};

// A field lb adds to a response head, replacing any of the same name the backend sent (the request id).
struct AddedField {
    std::string_view name;  // empty: nothing added
    std::string_view value;
};

// The request line is re-written as HTTP/1.1; hop-by-hop fields and the fields Connection names are dropped;
// Host and end-to-end fields pass unchanged and in order, and a request without Host (HTTP/1.0) gets the
// backend's, as nginx does; X-Forwarded-For gets the client appended (every received field joined in order, empty
// elements dropped); X-Forwarded-Proto is set. `keep_alive=false` adds "Connection: close".
void write_upstream_request_head(const MessageHead& request, const ForwardedFor& forwarded, bool keep_alive,
                                 std::string& out);

// Request body framing towards the backend.
BodyFraming upstream_request_framing(const MessageHead& request);

// RFC 9110 §6.4.1: a response to HEAD, and a 1xx, 204 or 304 response, ends with its head whatever its header
// fields say. A backend that sends a body there anyway is not to be believed about anything after it.
bool response_has_no_body(const MessageHead& request, const MessageHead& response);

// The response framing towards the client, from what the backend sent and what the client can take.
BodyFraming client_response_framing(const MessageHead& request, const MessageHead& response);

// Status line as HTTP/1.1 with the backend's reason, hop-by-hop fields dropped, framing per `framing`, and
// "Connection: close" when the client connection ends after it ("Connection: keep-alive" for HTTP/1.0 clients
// that keep it).
void write_client_response_head(const MessageHead& response, BodyFraming framing, bool client_http10, bool keep_alive,
                                std::string& out, AddedField added = {}, const HeaderRewrite* rewrite = nullptr);

// A 101 (Switching Protocols) answering an Upgrade lb forwarded: status line, end-to-end fields, then the
// backend's Upgrade and "Connection: upgrade" (both hop-by-hop, so written by lb rather than copied). `protocols` is
// the response's Upgrade value. A route's `rewrite` applies as to any response (it cannot touch those two).
void write_switching_protocols_head(const MessageHead& response, std::string_view protocols, std::string& out,
                                    AddedField added = {}, const HeaderRewrite* rewrite = nullptr);

// The size line that opens a chunk, "1a2b\r\n".
void write_chunk_size(uint64_t size, std::string& out);
inline constexpr std::string_view kChunkEnd = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace lb::http
