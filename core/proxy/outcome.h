// How a request, or one attempt to forward it, ended: one closed set, with the side that caused each outcome, and
// everything derived from it in the one table below: the status lb answers with, the `lb_errors_total` kind, what
// the balancer learns and what passive health checks count. Nothing else translates an outcome by hand.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "health/health_decision.h"
#include "http/parse_error.h"
#include "metrics/stats.h"
#include "pool/backend.h"

namespace lb::core {

enum class Source : uint8_t { client, lb, backend };

enum class Outcome : uint8_t {
    answered,               // the backend's response went to the client
    bad_request,            // malformed or ambiguous request (smuggling shapes included)
    client_timeout,         // header section not received within timeouts.client_header
    body_too_large,         // request body over limits.request_body_bytes
    uri_too_long,           // request target over limits.uri_bytes
    headers_too_large,      // header section (or trailers) over limits.header_bytes / header_count
    version_not_supported,  // a request line that is not HTTP/1.0 or HTTP/1.1
    client_gone,            // the client closed or stopped reading before its response was done
    connect_refused,        // an upstream connect failed (refused, unreachable)
    connect_timeout,        // an upstream connect did not complete within timeouts.connect
    upstream_reset,         // the upstream connection broke before the response was complete
    bad_response,           // the backend sent something lb cannot forward as HTTP/1.1
    upstream_timeout,       // no response (or no progress) within timeouts.upstream_response
    no_backend,             // no backend eligible (all down, or every one full and the queue full)
    queue_timeout,          // waited in the queue for a connection slot for queue.timeout
    local_resources,        // lb itself ran out of file descriptors or memory: not the backend's fault
    no_route,               // no route of `routes:` matches the request
    count
};

struct OutcomeRow {
    std::string_view name;
    Source source;
    int status;  // what lb answers with when this ends the request; 0: nothing (the backend answered, or the
                 // client is gone)
    std::string_view reason;
    std::string_view message;                       // the response body: says what happened
    std::optional<metrics::ErrorKind> error_kind;   // counted in lb_errors_total, per attempt or per request
    pool::Outcome balancer;                         // what the algorithm and pool learn
    std::optional<health::PassiveOutcome> passive;  // what a passive health check counts (none: not the backend)
};

// clang-format off
inline constexpr std::array<OutcomeRow, static_cast<size_t>(Outcome::count)> kOutcomes = {{
    {"answered", Source::backend, 0, "", "", std::nullopt, pool::Outcome::success, health::PassiveOutcome::success},
    {"bad_request", Source::client, 400, "Bad Request", "lb: the request is malformed\n",
     metrics::ErrorKind::client_parse_error, pool::Outcome::cancelled, std::nullopt},
    {"client_timeout", Source::client, 408, "Request Timeout",
     "lb: the request header section was not received in time\n", metrics::ErrorKind::client_timeout,
     pool::Outcome::cancelled, std::nullopt},
    {"body_too_large", Source::client, 413, "Content Too Large",
     "lb: the request body is larger than this server accepts\n", metrics::ErrorKind::body_limit,
     pool::Outcome::cancelled, std::nullopt},
    {"uri_too_long", Source::client, 414, "URI Too Long", "lb: the request target is too long\n",
     metrics::ErrorKind::uri_limit, pool::Outcome::cancelled, std::nullopt},
    {"headers_too_large", Source::client, 431, "Request Header Fields Too Large",
     "lb: the request header section is too large\n", metrics::ErrorKind::header_limit, pool::Outcome::cancelled,
     std::nullopt},
    {"version_not_supported", Source::client, 505, "HTTP Version Not Supported",
     "lb: only HTTP/1.0 and HTTP/1.1 are supported\n", metrics::ErrorKind::version_not_supported,
     pool::Outcome::cancelled, std::nullopt},
    {"client_gone", Source::client, 0, "", "", std::nullopt, pool::Outcome::cancelled, std::nullopt},
    {"connect_refused", Source::backend, 502, "Bad Gateway", "lb: no backend could be reached\n",
     metrics::ErrorKind::connect_refused, pool::Outcome::connect_failure, health::PassiveOutcome::connect_failure},
    {"connect_timeout", Source::backend, 502, "Bad Gateway", "lb: no backend could be reached\n",
     metrics::ErrorKind::connect_timeout, pool::Outcome::connect_failure, health::PassiveOutcome::connect_failure},
    {"upstream_reset", Source::backend, 502, "Bad Gateway", "lb: the backend closed the connection\n",
     metrics::ErrorKind::upstream_reset, pool::Outcome::reset, health::PassiveOutcome::reset},
    {"bad_response", Source::backend, 502, "Bad Gateway", "lb: the backend sent an invalid response\n",
     metrics::ErrorKind::bad_response, pool::Outcome::reset, health::PassiveOutcome::reset},
    {"upstream_timeout", Source::backend, 504, "Gateway Timeout", "lb: the backend did not respond in time\n",
     metrics::ErrorKind::upstream_timeout, pool::Outcome::timeout, health::PassiveOutcome::timeout},
    {"no_backend", Source::lb, 503, "Service Unavailable", "lb: no backend is available to serve this request\n",
     metrics::ErrorKind::no_backend, pool::Outcome::cancelled, std::nullopt},
    {"queue_timeout", Source::lb, 503, "Service Unavailable",
     "lb: every backend stayed busy for the whole queue timeout\n", metrics::ErrorKind::queue_timeout,
     pool::Outcome::cancelled, std::nullopt},
    {"local_resources", Source::lb, 503, "Service Unavailable", "lb is out of resources; try again shortly\n",
     metrics::ErrorKind::local_resources, pool::Outcome::cancelled, std::nullopt},
    {"no_route", Source::client, 404, "Not Found", "lb: no route matches this request\n",
     metrics::ErrorKind::no_route, pool::Outcome::cancelled, std::nullopt},
}};
// clang-format on

constexpr const OutcomeRow& row(Outcome outcome) { return kOutcomes[static_cast<size_t>(outcome)]; }

// The complete response lb sends for an outcome that ends a request (status line, headers, body; Connection:
// close). Static storage.
std::string_view error_response(Outcome outcome);

// The outcome of a request the parser refused.
Outcome outcome_of(http::ParseError error);

// What a passive health check counts for an attempt that ended with `outcome` (a response counts as a 5xx or
// not by its status). Nothing for outcomes that say nothing about the backend.
std::optional<health::PassiveOutcome> passive_outcome(Outcome outcome, int status);

}  // namespace lb::core
