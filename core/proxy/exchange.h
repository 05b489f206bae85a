// One request on a client connection, from its first byte until its response has been handed to the client or it
// failed: its parser and head, where it was sent, what has been sent and received. A new request is a new Exchange.
// The shard recycles them (ExchangePool), so an idle keep-alive connection holds none and a busy one allocates
// nothing per request.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/config/config.h"
#include "core/proxy/outcome.h"
#include "http/message_parser.h"
#include "http/request_head.h"
#include "http/request_id.h"
#include "pool/backend.h"
#include "route/route_match.h"

namespace lb::core {

// Everything about a request except its parser, each at its starting value: a recycled exchange starts over by
// assigning a fresh one.
struct ExchangeState {
    std::optional<Outcome> refusal;  // the head was parsed but may not be forwarded (set by the session's on_head)

    // Where it goes: the route that matched (none without `routes:`), its pool, and the target as the route
    // rewrites it (empty: the request's own).
    const RouteConfig* route = nullptr;
    size_t pool = 0;
    std::string upstream_target;
    pool::BackendSet tried;  // backends whose connect failed for this request (ShardPools::mark_tried)
    pool::BackendId backend = 0;
    uint8_t attempts = 0;                // attempts after the first
    uint8_t retries = 0;                 // of those, the ones sent to a backend (lb_retries_total)
    bool dispatched = false;             // `backend` counts this request in flight
    bool fresh_connection_only = false;  // a reused connection failed: the retry must not take another

    // What has happened.
    http::BodyFraming request_framing = http::BodyFraming::none;
    http::BodyFraming response_framing = http::BodyFraming::none;
    uint64_t body_bytes = 0;  // request body bytes forwarded
    int status = 0;           // the final response's status
    bool request_complete = false;
    bool interim = false;           // the response being parsed is a 1xx
    bool response_started = false;  // the final response head went to the client: no retry, no error status now
    bool response_complete = false;
    bool bad_response = false;         // the backend answered something lb cannot forward
    bool client_keep_alive = false;    // the client connection stays open after this response
    bool upstream_keep_alive = false;  // the backend said it keeps its connection open
    bool upstream_trusted = true;      // false once the backend's framing is in doubt: never reuse the connection
    bool upgrade_requested = false;    // forwarded with its Upgrade (http::requested_upgrade): a 101 may answer it
    bool switching = false;            // the backend answered 101: what follows its head is the tunnel's

    // The id lb made for a request that came without one (request_id.enabled); a client's own is read from the
    // head when needed.
    http::RequestId generated_id{};
    bool id_generated = false;

    uint64_t started_ns = 0;     // first byte of the request (uv_hrtime), when metrics or the access log are on
    uint64_t dispatched_ns = 0;  // sent to `backend`
    uint64_t upgraded_ns = 0;    // the 101 arrived: the backend's latency ends here, not with the tunnel
    uint64_t connected_ns = 0;   // the upstream connection was ready, when the access log is on

    // For the access log: request bytes parsed (head and body as the client sent them), and response bytes handed
    // to the client connection so far.
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
};

struct Exchange : ExchangeState {
    Exchange(http::MessageSink& sink, http::HeadLimits limits) : request(HTTP_REQUEST, sink, limits) {}
    http::MessageParser request;
    route::RouteRequestStorage route_request;  // kept across recycling, so matching allocates nothing
};

// Recycled exchanges of one shard, their parsers' head storage kept.
class ExchangePool {
  public:
    explicit ExchangePool(http::HeadLimits limits, size_t max_cached = 256)
        : limits_(limits), max_cached_(max_cached) {}

    std::unique_ptr<Exchange> acquire(http::MessageSink& sink);
    void recycle(std::unique_ptr<Exchange> exchange);

  private:
    http::HeadLimits limits_;
    size_t max_cached_;
    std::vector<std::unique_ptr<Exchange>> free_;
};

}  // namespace lb::core
