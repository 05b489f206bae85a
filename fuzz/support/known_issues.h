// Bugs the fuzz targets found in lb that are not fixed yet, each with its reproducer in fuzz/regressions/.
// While one is listed as true, the oracles let exactly that case pass, so that fuzzing (and CI) goes on looking
// for other bugs instead of stopping at the known one on every run. To fix one: set it to false, make
// `scripts/fuzz 0` (which runs the regressions) pass, then delete the line and its uses.
// `LB_FUZZ_STRICT=1 scripts/fuzz 0` builds with none of them tolerated: every reproducer must then fail.
#pragma once

namespace lb::fuzz::known {

#ifdef LB_FUZZ_STRICT_ORACLES
inline constexpr bool kTolerated = false;
#else
inline constexpr bool kTolerated = true;
#endif

// An HTTP/1.0 request without Host goes upstream as HTTP/1.1 without Host (RFC 9112 §3.2 wants exactly one).
// fuzz/regressions/request_parser/http10_without_host
inline constexpr bool kHttp10ForwardedWithoutHost = kTolerated;

// A request whose Connection header names Host ("Connection: host") goes upstream without Host: lb removes
// every field Connection names (RFC 9110 §7.6.1) and writes no Host of its own, so the backend gets an
// HTTP/1.1 request it must reject, or routes it by its default virtual host instead of the one the client
// named. Keeping Host, or answering 400, would do.
// fuzz/regressions/request_parser/connection_names_host, fuzz/regressions/proxy_exchange/connection_names_host
inline constexpr bool kConnectionDropsHost = kTolerated;

// lb's own error responses (400, 502, ...) carry their text body even when they answer a HEAD request
// (RFC 9110 §9.3.2): a client reading a keep-alive stream would take the body for the next response; the
// Connection: close that comes with them limits the harm.
// fuzz/regressions/proxy_exchange/error_response_to_head
inline constexpr bool kErrorBodyAfterHead = kTolerated;

// When the client's request turns out malformed (or over a limit) after the backend's response has begun to
// reach the client (an early response while the body streams), lb writes its error response into the middle
// of that response: "...Content-Length: 100\r\n\r\nfirst part of the bodyHTTP/1.1 400 Bad Request...". The
// client takes lb's error for body bytes (or for a chunk size). Once response bytes are out, closing the
// connection is the only honest signal, as lb already does when the backend fails mid-response.
// fuzz/regressions/proxy_exchange/client_error_after_early_response,
// fuzz/regressions/proxy_exchange/client_error_inside_response_body
inline constexpr bool kErrorResponseInsideResponse = kTolerated;

// A 1xx, 204 or 304 response with Content-Length or Transfer-Encoding: llhttp 8.1 reads a body for it (RFC 9112
// §6.3 says it has none), and lb relays that body after a head that announces none. The client takes the bytes
// for the next response: a response desync a backend can cause, and a 304 with Content-Length (which RFC 9110
// §8.6 allows) stalls until the upstream timeout, then cuts the connection.
// fuzz/regressions/response_parser/no_content_with_length,
// fuzz/regressions/proxy_exchange/no_content_with_length_splits_response
inline constexpr bool kBodyOfBodilessStatusRelayed = kTolerated;

// llhttp 8.1 (strict) accepts a header line with an empty field name (": value", or ":"), in requests and
// responses, and lb forwards it as it came (RFC 9110 §5.1: a field name is a non-empty token). Backends and
// clients disagree on such a line (rejected, ignored, or glued to the previous field): a parsing discrepancy
// of the kind request smuggling is built on.
// fuzz/regressions/request_parser/empty_field_name, fuzz/regressions/response_parser/empty_field_name
inline constexpr bool kEmptyFieldNameForwarded = kTolerated;

// yaml-cpp 0.7's YAML::LoadAll, which core::load_config_string calls, never returns on a document that begins
// with ',' (the whole file ",", or ",a"): an endless loop inside yaml-cpp, at constant memory. `lb --check`
// and a start with such a file hang; a SIGHUP reload hangs lb's main loop, so the shards keep serving the old
// configuration but SIGTERM, SIGINT and later SIGHUPs are never handled (only SIGKILL stops it).
// fuzz/regressions/config_loader/leading_comma
inline constexpr bool kYamlCppLoadAllLoops = kTolerated;

}  // namespace lb::fuzz::known
