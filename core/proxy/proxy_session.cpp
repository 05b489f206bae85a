#include "core/proxy/proxy_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "base/log.h"
#include "core/proxy/upstream_connection.h"
#include "core/shard/shard.h"
#include "http/header_rules.h"
#include "net/tcp_transport.h"
#include "route/hash_key.h"

namespace lb::core {

namespace {

std::string address_text(const sockaddr_storage& peer) {
    char text[INET6_ADDRSTRLEN] = "";
    switch (peer.ss_family) {
        case AF_INET:
            uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&peer), text, sizeof text);
            return text;
        case AF_INET6:
            uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&peer), text, sizeof text);
            return text;
        case AF_UNIX:
            return "unix:";  // what nginx's $remote_addr says for a Unix-socket client
        default:
            return "unknown";
    }
}

}  // namespace

ProxySession::ProxySession(Shard& shard, size_t listener)
    : shard_(shard),
      to_client_(shard.writes()),
      to_upstream_(shard.writes()),
      listener_(static_cast<uint16_t>(listener)) {}

void ProxySession::start(Shard& shard, size_t listener, int fd, const sockaddr_storage& peer) {
    // Owned by its transport from here on: freed in on_transport_closed.
    auto* session = new ProxySession(shard, listener);
    session->client_ = shard.open_client_transport(listener, *session, fd);
    if (!session->client_) {
        delete session;  // no handle was ever opened for it
        return;
    }
    shard.add_session(session);
    shard.metrics().on_client_accepted();
    session->client_address_ = address_text(peer);
    // The first request gets the header timeout from the moment the connection opens.
    session->arm(Lane::client_header);
    session->update_client_reading();
}

size_t ProxySession::high_water() const { return shard_.config().limits.buffer_per_connection; }

uint64_t ProxySession::buffer_memory_bound(const Limits& limits) {
    uint64_t per_side = limits.buffer_per_connection + net::Buffer::kSize + net::WriteRequest::kGrowth;
    return 2 * per_side + 2 * net::Buffer::kSize;
}

void ProxySession::arm(Lane lane) {
    // A route's own `timeouts:` run on lanes of their own length.
    if (exchange_ && exchange_->route && (lane == Lane::connect || lane == Lane::upstream_response)) {
        shard_.deadlines().arm(*this, shard_.route_lane(*exchange_->route, lane));
        return;
    }
    // And a pool's own queue.timeout.
    if (exchange_ && lane == Lane::queue) {
        shard_.deadlines().arm(*this, shard_.queue_lane(exchange_->pool));
        return;
    }
    shard_.deadlines().arm(*this, lane);
}

void ProxySession::arm_between_requests() {
    if (client_->queued_bytes() > high_water()) {
        arm(Lane::client_send);  // the next request waits for the client to read
    } else {
        arm(draining_ ? Lane::drain_idle : Lane::client_keepalive);
    }
}

bool ProxySession::may_retry() const {
    // The route's `retries:`, else its pool's (which fall back to the top level's).
    const RouteConfig* route = exchange_->route;
    const unsigned retries = route && route->retries ? *route->retries : shard_.config().retries_of(exchange_->pool);
    return exchange_->attempts < retries;
}

// ---- client input ----

void ProxySession::on_transport_read(const net::BufferRef& buffer, std::string_view bytes) {
    shard_.metrics().on_client_bytes_received(bytes.size());
    if (phase_ == Phase::lingering) return;  // discarded
    if (phase_ == Phase::tunnelling) {
        relay_to_upstream(buffer, bytes);
        return;
    }
    pending_buffer_ = buffer;
    pending_ = bytes;
    // Body bytes still arriving are progress on the request: the backend may be waiting for them.
    if (phase_ == Phase::exchanging && !exchange_->request_complete) arm(Lane::upstream_response);
    parse_client_input();
}

void ProxySession::on_transport_end(int status) {
    if (phase_ == Phase::tunnelling && status == UV_EOF) {
        on_tunnel_side_ended(true);
        return;
    }
    // A client may half-close once its request is complete: its response still goes out, then the connection
    // ends. Otherwise (an error, or EOF in the middle of a request or between requests) the client is gone.
    bool awaiting_response = exchange_ && exchange_->request_complete &&
                             (phase_ == Phase::queued || phase_ == Phase::connecting || phase_ == Phase::exchanging);
    if (status == UV_EOF && awaiting_response) {
        client_eof_ = true;
        exchange_->client_keep_alive = false;
        update_client_reading();
        return;
    }
    close();
}

void ProxySession::parse_client_input() {
    parsing_ = true;
    while (!pending_.empty() && !closed()) {
        if (phase_ == Phase::idle) {
            // The next pipelined request waits until the client has taken enough of the responses before it: each
            // request makes a response, and a client that never reads would otherwise make lb hold them all.
            if (client_->queued_bytes() > high_water()) break;
            begin_request();
        } else if (phase_ == Phase::exchanging) {
            if (exchange_->request_complete) break;  // a pipelined request waits for this response
        } else if (phase_ != Phase::reading_head) {
            break;  // queued or connecting: body bytes wait for the connection; lingering or closing: nothing to do
        }
        http::FeedResult result = exchange_->request.feed(pending_);
        // A refused request counts every byte it came with.
        exchange_->bytes_in += result.status == http::FeedStatus::error ? pending_.size() : result.consumed;
        pending_.remove_prefix(result.consumed);
        if (result.status == http::FeedStatus::error) {
            fail_request(outcome_of(result.error));
            break;
        }
        if (result.status == http::FeedStatus::paused) exchange_->request.resume();
        if (exchange_->refusal) {
            fail_request(*exchange_->refusal);
            break;
        }
        if (phase_ == Phase::reading_head && exchange_->request.head_complete()) dispatch();
    }
    parsing_ = false;
    if (closed()) return;
    if (pending_.empty()) pending_buffer_.reset();
    flush_upstream();
    update_client_reading();
}

void ProxySession::begin_request() {
    exchange_ = shard_.exchanges().acquire(*this);
    phase_ = Phase::reading_head;
    ++requests_;
    arm(Lane::client_header);
    if (shard_.metrics().enabled() || shard_.access_log()) exchange_->started_ns = uv_hrtime();
}

void ProxySession::update_client_reading() {
    if (closed()) return;
    bool want = pending_.empty() && !client_eof_;
    switch (phase_) {
        case Phase::idle:
            want = want && client_->queued_bytes() <= high_water();
            break;
        case Phase::reading_head:
        case Phase::queued:
        case Phase::connecting:
            break;
        case Phase::exchanging:
            // While a body streams up, the backend's write queue decides (backpressure).
            want = want && (exchange_->request_complete || upstream_->queued_bytes() <= high_water());
            break;
        case Phase::tunnelling:
            want = want && upstream_ && upstream_->queued_bytes() <= high_water();
            break;
        case Phase::lingering:
            want = true;
            break;
        case Phase::closing_after_flush:
        case Phase::closed:
            want = false;
            break;
    }
    if (want) {
        client_->start_reading();
    } else {
        client_->stop_reading();
    }
}

http::HeadAction ProxySession::on_head(const http::MessageHead& head) {
    // First, so that even a refused request's error response carries an id.
    const RequestIdConfig& ids = shard_.config().request_id;
    if (ids.enabled && http::find_request_id(head, ids.header).empty()) {
        exchange_->generated_id = shard_.request_ids().next();
        exchange_->id_generated = true;
    }
    if (http::ParseError e = http::validate_request_head(head); e != http::ParseError::none) {
        exchange_->refusal = outcome_of(e);
        return http::HeadAction::pause;
    }
    if (!choose_route(head)) {
        exchange_->refusal = Outcome::no_route;
        return http::HeadAction::pause;
    }
    exchange_->request_framing = http::upstream_request_framing(head);
    exchange_->client_keep_alive = head.keep_alive && !draining_;
    exchange_->upgrade_requested = !http::requested_upgrade(head).empty();
    // The body in this read is parsed now, so a malformed one is refused before any backend hears of the request;
    // it waits in to_upstream_ for the connection, and further reads wait in pending_ (one buffer each at most).
    return http::HeadAction::proceed;
}

bool ProxySession::choose_route(const http::MessageHead& head) {
    const std::vector<RouteConfig>& routes = shard_.config().routes;
    if (routes.empty()) return true;  // the one pool, or `default`: pool 0
    std::optional<size_t> found = shard_.routes().find(exchange_->route_request.take(head));
    if (!found) return false;
    const RouteConfig& route = routes[*found];
    exchange_->route = &route;
    exchange_->pool = route.pool;
    if (!route.strip_prefix.empty())
        exchange_->upstream_target = route::stripped_target(head.target(), route.strip_prefix);
    return true;
}

void ProxySession::on_body(std::string_view bytes) {
    exchange_->body_bytes += bytes.size();
    if (exchange_->request_framing == http::BodyFraming::chunked) {
        // Each piece becomes one chunk: the client's chunk sizes and extensions are not passed on.
        to_upstream_.append_written([&](std::string& out) { http::write_chunk_size(bytes.size(), out); });
        to_upstream_.append_ref(pending_buffer_, bytes);
        to_upstream_.append_static(http::kChunkEnd);
    } else {
        to_upstream_.append_ref(pending_buffer_, bytes);
    }
}

void ProxySession::on_message_complete() {
    if (exchange_->request_framing == http::BodyFraming::chunked) to_upstream_.append_static(http::kLastChunk);
    exchange_->request_complete = true;
}

// ---- choosing a backend and connecting ----

void ProxySession::dispatch() {
    phase_ = Phase::connecting;
    std::string_view hash_key;
    ShardPools& pools = shard_.pools();
    if (pools.picks_by_hash_key(exchange_->pool)) {
        hash_key = route::request_hash_key(
            exchange_->request.head(), shard_.config().balancer_of(exchange_->pool).consistent_hash, client_address_);
    }
    uint64_t now = uv_hrtime();
    pool::Selection selection =
        pools.choose(exchange_->pool, exchange_->tried, std::chrono::nanoseconds(now), hash_key);
    switch (selection.status) {
        case pool::SelectStatus::picked:
            break;
        case pool::SelectStatus::all_full:
            // Like HAProxy's maxconn queue: wait for a slot rather than overload a backend, within a bound.
            if (shard_.enqueue(this)) {
                phase_ = Phase::queued;
                shard_.metrics().on_queue_wait();
                arm(Lane::queue);
                return;
            }
            fail_request(Outcome::no_backend);
            return;
        case pool::SelectStatus::all_tried:
            fail_request(Outcome::connect_refused);
            return;
        case pool::SelectStatus::none_healthy:
            fail_request(exchange_->attempts == 0 ? Outcome::no_backend : Outcome::connect_refused);
            return;
    }
    exchange_->backend = selection.backend;
    pools.on_dispatch(exchange_->backend);
    exchange_->dispatched = true;
    exchange_->dispatched_ns = now;
    if (exchange_->attempts > 0) {
        shard_.metrics().on_retry();
        ++exchange_->retries;
    }
    if (!exchange_->fresh_connection_only) {
        // A request with a body cannot be sent again once its body has streamed out, so the connection it goes on
        // is checked to be quiet first; a body-less one is resent if the connection turns out closed.
        const bool unrepeatable = exchange_->request.head().declares_body();
        if (UpstreamConnection* idle = shard_.idle_upstreams().take(exchange_->backend, unrepeatable)) {
            upstream_ = idle;
            upstream_->attach(this);
            on_upstream_ready();
            return;
        }
    }
    start_connect();
}

void ProxySession::start_connect() {
    upstream_ = UpstreamConnection::create(shard_, exchange_->backend);
    if (!upstream_) {
        shard_.note_resource_exhaustion(metrics::ResourceOp::connect, UV_ENOMEM);
        release_upstream(Outcome::local_resources, false);
        fail_request(Outcome::local_resources);
        return;
    }
    upstream_->attach(this);
    arm(Lane::connect);
    int rc = upstream_->connect(shard_.backend_address(exchange_->backend));
    if (rc == 0) return;
    if (net::is_local_resource_error(rc)) {
        // lb's own shortage (descriptors, memory, local ports): the backend is not to blame.
        shard_.note_resource_exhaustion(metrics::ResourceOp::connect, rc);
        release_upstream(Outcome::local_resources, false);
        fail_request(Outcome::local_resources);
        return;
    }
    shard_.log_backend_problem(exchange_->backend, "cannot connect", uv_strerror(rc));
    on_connect_failed(Outcome::connect_refused);
}

void ProxySession::on_upstream_connected(int status) {
    if (phase_ != Phase::connecting) return;
    if (status != 0) {
        // A TLS failure says more than its libuv code: "certificate verify failed (unable to get local issuer...)".
        std::string_view detail = upstream_->error_detail();
        shard_.log_backend_problem(exchange_->backend, "connect failed", detail.empty() ? uv_strerror(status) : detail);
        on_connect_failed(Outcome::connect_refused);
        return;
    }
    on_upstream_ready();
}

void ProxySession::on_connect_failed(Outcome outcome) {
    count_attempt_failure(outcome);
    release_upstream(outcome, false);
    shard_.pools().mark_tried(exchange_->tried, exchange_->backend);
    // A failed connect sent nothing: the request may go to another backend whatever its method.
    if (!may_retry()) {
        fail_request(outcome);
        return;
    }
    ++exchange_->attempts;
    dispatch();
}

void ProxySession::on_upstream_ready() {
    phase_ = Phase::exchanging;
    if (shard_.access_log()) exchange_->connected_ns = uv_hrtime();
    upstream_held_back_ = false;
    http::MessageParser& parser = upstream_->response_parser();
    parser.reset();
    parser.set_sink(response_sink_);
    arm(Lane::upstream_response);
    upstream_->start_reading();
    write_upstream_head();
    // From dispatch() inside parse_client_input(), its loop goes on with the body; from a connect, start it.
    if (!parsing_) parse_client_input();
}

// The one place a request head is written towards a backend, on every attempt: ahead of the body bytes parsed
// while the connection was being made.
void ProxySession::write_upstream_head() {
    const http::MessageHead& head = exchange_->request.head();
    bool keep_alive = shard_.config().upstream_keepalive_of(exchange_->pool) > 0;
    http::ForwardedFor forwarded{client_address_, "http", shard_.backend_name(exchange_->backend)};
    // The subject headers are lb's to set: a client's own never passes, on whichever listener it came (the
    // backends are the same behind every listener), and a verified certificate's subject does.
    forwarded.dropped_fields = shard_.client_subject_headers();
    if (const net::TlsServerContext* tls = shard_.tls_listener(listener_)) {
        forwarded.proto = "https";
        forwarded.client_subject_header = tls->config().client_subject_header;
        if (const net::TlsSessionInfo* info = client_->tls_info()) forwarded.client_subject = info->verified_subject;
    }
    if (exchange_->id_generated) {
        forwarded.request_id_header = shard_.config().request_id.header;
        forwarded.request_id = request_id();
    }
    forwarded.target = exchange_->upstream_target;
    if (const RouteConfig* route = exchange_->route; route && !route->request_headers.empty()) {
        forwarded.rewrite = &route->request_headers;
    }
    if (exchange_->upgrade_requested) forwarded.upgrade = http::requested_upgrade(head);
    to_upstream_.prepend_written(
        [&](std::string& out) { http::write_upstream_request_head(head, forwarded, keep_alive, out); });
}

void ProxySession::flush_upstream() {
    if (to_upstream_.empty()) return;
    if (phase_ == Phase::tunnelling) {
        if (upstream_->write(to_upstream_) != 0) close();
        return;
    }
    if (phase_ != Phase::exchanging) return;
    if (upstream_->write(to_upstream_) != 0) on_upstream_failed(Outcome::upstream_reset);
}

void ProxySession::on_upstream_written(int status) {
    if (phase_ == Phase::tunnelling) {
        if (status < 0) {
            close();
            return;
        }
        arm(Lane::tunnel);  // the client's bytes are being taken: progress
        update_client_reading();
        return;
    }
    if (phase_ != Phase::exchanging) return;
    if (status < 0) {
        on_upstream_failed(Outcome::upstream_reset);
        return;
    }
    if (!exchange_->response_started && !upstream_held_back_) arm(Lane::upstream_response);
    update_client_reading();
}

// ---- response ----

void ProxySession::on_upstream_read(const net::BufferRef& buffer, std::string_view bytes) {
    if (phase_ == Phase::tunnelling) {
        relay_to_client(buffer, bytes);
        return;
    }
    if (phase_ != Phase::exchanging) return;
    arm(Lane::upstream_response);
    http::MessageParser& parser = upstream_->response_parser();
    response_buffer_ = &buffer;
    while (!bytes.empty()) {
        http::FeedResult result = parser.feed(bytes);
        bytes.remove_prefix(result.consumed);
        if (result.status == http::FeedStatus::error || exchange_->bad_response) {
            response_buffer_ = nullptr;
            on_bad_response();
            return;
        }
        if (result.status == http::FeedStatus::paused) {
            if (exchange_->switching) {
                // The parser stopped at the end of the 101's head: the rest of this read is the tunnel's.
                response_buffer_ = nullptr;
                begin_tunnel(buffer, bytes);
                return;
            }
            parser.resume();
            if (exchange_->response_complete) break;
        }
    }
    response_buffer_ = nullptr;
    flush_client();
    if (closed()) return;
    if (exchange_->response_complete) {
        // Bytes after the response belong to nothing lb asked for: that connection cannot be trusted again.
        finish_exchange(bytes.empty());
        return;
    }
    if (client_->queued_bytes() > high_water()) {
        // The client is slower than the backend: stop reading the backend until the client catches up.
        upstream_->stop_reading();
        upstream_held_back_ = true;
        arm(Lane::client_send);
    }
}

void ProxySession::on_bad_response() {
    const char* reason = upstream_->response_parser().error_reason();
    shard_.log_backend_problem(exchange_->backend, "invalid response", exchange_->bad_response ? "" : reason);
    count_attempt_failure(Outcome::bad_response);
    if (exchange_->response_started) {
        // Part of the response is with the client already: ending the connection is the only honest signal left.
        release_upstream(Outcome::bad_response, false);
        close();
        return;
    }
    release_upstream(Outcome::bad_response, false);
    fail_request(Outcome::bad_response);
}

http::HeadAction ProxySession::on_response_head(const http::MessageHead& head) {
    const http::MessageHead& request = exchange_->request.head();
    if (head.status < 100 || head.status > 599) {
        exchange_->bad_response = true;
        return http::HeadAction::pause;
    }
    if (head.status == 101) return on_switching_protocols(head);
    if (head.status / 100 == 1) {
        // An interim response has no body (RFC 9110 §15.2): one that claims a framing would have its "body" read
        // as the final response.
        if (head.has_content_length || head.chunked) {
            exchange_->bad_response = true;
            return http::HeadAction::pause;
        }
        exchange_->interim = true;
        // Interim responses (100 Continue) go to HTTP/1.1 clients as they are; the final one follows.
        if (!request.is_http10()) {
            to_client_.append_written([&](std::string& out) {
                http::write_client_response_head(head, http::BodyFraming::none, false, true, out);
            });
        }
        return http::HeadAction::skip_body;
    }
    exchange_->response_started = true;
    exchange_->status = head.status;
    exchange_->upstream_keep_alive = head.keep_alive;
    bool no_body = http::response_has_no_body(request, head);
    // A body announced where none may follow (a 204 or 304 with a length, a HEAD answered with chunks) leaves the
    // connection's framing in doubt: what comes next may be that body. lb forwards no body, and never reuses it.
    if (no_body && (head.chunked || (head.has_content_length && head.content_length > 0))) {
        exchange_->upstream_trusted = false;
    }
    exchange_->response_framing = http::client_response_framing(request, head);
    // A response that ends before its request was fully read leaves the client connection mid-body.
    if (exchange_->response_framing == http::BodyFraming::until_close || !exchange_->request_complete || draining_ ||
        client_eof_) {
        exchange_->client_keep_alive = false;
    }
    to_client_.append_written([&](std::string& out) {
        http::write_client_response_head(head, exchange_->response_framing, request.is_http10(),
                                         exchange_->client_keep_alive, out, request_id_field(), response_rewrite());
    });
    return no_body ? http::HeadAction::skip_body : http::HeadAction::proceed;
}

void ProxySession::on_response_body(std::string_view bytes) {
    if (exchange_->response_framing == http::BodyFraming::chunked) {
        to_client_.append_written([&](std::string& out) { http::write_chunk_size(bytes.size(), out); });
        to_client_.append_ref(*response_buffer_, bytes);
        to_client_.append_static(http::kChunkEnd);
    } else {
        to_client_.append_ref(*response_buffer_, bytes);
    }
}

void ProxySession::on_response_complete() {
    if (exchange_->interim) {
        exchange_->interim = false;
        return;
    }
    if (exchange_->response_framing == http::BodyFraming::chunked) to_client_.append_static(http::kLastChunk);
    exchange_->response_complete = true;
    auto& metrics = shard_.metrics();
    if (metrics.enabled()) {
        uint64_t now = uv_hrtime();
        const char* method = llhttp_method_name(exchange_->request.head().method);
        const auto status = static_cast<unsigned>(exchange_->status);
        metrics.on_backend_response(exchange_->backend, metrics::method_class(method), status,
                                    now - exchange_->dispatched_ns);
        count_response_sent(status);
    }
    if (shard_.access_log()) log_access(static_cast<unsigned>(exchange_->status));
}

void ProxySession::on_upstream_end(int status) {
    if (phase_ == Phase::tunnelling) {
        if (status == UV_EOF) {
            on_tunnel_side_ended(false);
        } else {
            close();
        }
        return;
    }
    if (phase_ != Phase::exchanging) return;
    http::MessageParser& parser = upstream_->response_parser();
    // EOF completes a response delimited by the connection's close; anything else was cut short.
    if (status == UV_EOF && parser.head_complete() && parser.in_message() && parser.finish() &&
        exchange_->response_complete) {
        flush_client();
        if (closed()) return;  // the client went away as the last bytes were written
        finish_exchange(false);
        return;
    }
    // A TLS error after the handshake has a reason worth a line: with TLS 1.3 a backend refuses lb's client
    // certificate (or the lack of one) only once lb has finished its side of the handshake and sent the request.
    if (std::string_view detail = upstream_->error_detail(); status != UV_EOF && !detail.empty()) {
        shard_.log_backend_problem(exchange_->backend, "connection failed", detail);
    }
    on_upstream_failed(Outcome::upstream_reset);
}

void ProxySession::finish_exchange(bool nothing_after_response) {
    // The connection goes back to the pool only when the request went out whole, the response came in whole, and
    // nothing the backend sent can be mistaken for the next response.
    bool reusable = nothing_after_response && exchange_->upstream_trusted && exchange_->upstream_keep_alive &&
                    exchange_->request_complete && upstream_->queued_bytes() == 0 &&
                    shard_.config().upstream_keepalive_of(exchange_->pool) > 0;
    release_upstream(Outcome::answered, reusable);
    if (!exchange_->client_keep_alive || client_eof_) {
        // Nothing unread is left (the request was read whole, nothing pipelined after it): close as soon as the
        // response is out, without the shutdown-and-linger an error response needs.
        if (exchange_->request_complete && pending_.empty()) {
            close_when_flushed();
        } else {
            close_after_flush();
        }
        return;
    }
    start_next_request();
}

void ProxySession::start_next_request() {
    release_exchange();
    phase_ = Phase::idle;
    arm_between_requests();
    if (!pending_.empty()) {
        parse_client_input();
    } else {
        update_client_reading();
    }
}

void ProxySession::on_upstream_failed(Outcome outcome) {
    count_attempt_failure(outcome);
    if (exchange_->response_started) {
        // Part of the response is already with the client; a status can no longer be sent. Ending the
        // connection is the only honest signal left.
        shard_.log_backend_problem(exchange_->backend, "failed mid-response", "closing the client connection");
        release_upstream(outcome, false);
        close();
        return;
    }
    bool was_reused = upstream_ && upstream_->reused();
    release_upstream(outcome, false);
    // No response byte came back, so the request can be sent again if it is whole in hand (no body bytes: they
    // were streamed, not kept) and repeating it is safe: either the connection was a reused keep-alive one the
    // backend closed just as we sent (nothing was processed), or the method is idempotent. A reused connection's
    // failure is resent even with no retry left (nginx gives a cached connection's error a try of its own): it is
    // the keep-alive race, not the backend's answer, and the resend goes on a fresh connection, so once at most.
    bool resendable = exchange_->request_complete && exchange_->body_bytes == 0 && (was_reused || may_retry());
    if (resendable && (was_reused || http::is_idempotent(exchange_->request.head().method))) {
        ++exchange_->attempts;
        // A stale pooled connection says nothing against its backend: retry it on a fresh connection. A fresh
        // connection that failed does: go elsewhere.
        exchange_->fresh_connection_only = was_reused;
        if (!was_reused) shard_.pools().mark_tried(exchange_->tried, exchange_->backend);
        // The request again, as it was: its head (written on the new connection) and its empty body.
        to_upstream_.clear();
        if (exchange_->request_framing == http::BodyFraming::chunked) to_upstream_.append_static(http::kLastChunk);
        dispatch();
        return;
    }
    fail_request(outcome);
}

void ProxySession::release_upstream(Outcome outcome, bool reusable) {
    if (phase_ == Phase::queued) shard_.dequeue(this);
    if (upstream_) {
        UpstreamConnection* connection = upstream_;
        upstream_ = nullptr;
        connection->detach();
        if (reusable) {
            connection->count_exchange();
            shard_.idle_upstreams().put(connection);
        } else {
            connection->close();
        }
    }
    // After the connection is back in the pool, so that a request woken from the wait queue can reuse it.
    if (exchange_ && exchange_->dispatched) {
        exchange_->dispatched = false;
        uint64_t now = uv_hrtime();
        // A tunnel counts in flight until it ends (least-connections sees it, max_connections limits it), but the
        // backend's latency is its time to the 101, not the tunnel's length.
        uint64_t answered = exchange_->upgraded_ns != 0 ? exchange_->upgraded_ns : now;
        pool::Result result{row(outcome).balancer, std::chrono::nanoseconds(answered - exchange_->dispatched_ns),
                            std::chrono::nanoseconds(now)};
        shard_.finish_request(exchange_->backend, result, passive_outcome(outcome, exchange_->status));
    }
}

void ProxySession::release_exchange() {
    if (exchange_) shard_.exchanges().recycle(std::move(exchange_));
}

void ProxySession::on_slot_free() {
    if (phase_ != Phase::queued) return;
    dispatch();
}

// ---- client output ----

void ProxySession::flush_client() {
    if (to_client_.empty() || closed()) return;
    shard_.metrics().on_client_bytes_sent(to_client_.bytes());
    if (exchange_) exchange_->bytes_out += to_client_.bytes();
    if (client_->write(to_client_) != 0) close();
}

void ProxySession::on_transport_written(int status) {
    if (closed()) return;
    if (status < 0) {
        close();
        return;
    }
    if (phase_ == Phase::tunnelling) {
        arm(Lane::tunnel);  // the backend's bytes are being taken: progress
        update_upstream_tunnel_reading();
        return;
    }
    size_t queued = client_->queued_bytes();
    if (phase_ == Phase::closing_after_flush) {
        if (queued == 0) end_and_close();
        return;
    }
    if (queued > high_water() / 2) return;  // below the low-water mark before anything resumes
    if (phase_ == Phase::exchanging && upstream_held_back_) {
        upstream_held_back_ = false;
        upstream_->start_reading();
        arm(Lane::upstream_response);
    } else if (phase_ == Phase::idle) {
        arm(draining_ ? Lane::drain_idle : Lane::client_keepalive);
        if (!pending_.empty()) {
            parse_client_input();
            return;
        }
    }
    update_client_reading();
}

void ProxySession::close_when_flushed() {
    phase_ = Phase::closing_after_flush;
    update_client_reading();
    if (client_->queued_bytes() == 0) {
        end_and_close();  // every byte is with the kernel already: closing sends it, then FIN
    } else {
        arm(Lane::client_send);
    }
}

// ---- errors ----

void ProxySession::count_attempt_failure(Outcome outcome) {
    if (const auto& kind = row(outcome).error_kind) shard_.metrics().on_error(*kind);
}

http::AddedField ProxySession::request_id_field() const {
    const std::string_view id = request_id();
    return {id.empty() ? std::string_view{} : shard_.config().request_id.header, id};
}

const http::HeaderRewrite* ProxySession::response_rewrite() const {
    const RouteConfig* route = exchange_->route;
    return route && !route->response_headers.empty() ? &route->response_headers : nullptr;
}

std::string_view ProxySession::request_id() const {
    if (!exchange_) return {};
    if (exchange_->id_generated) return {exchange_->generated_id.data(), exchange_->generated_id.size()};
    const RequestIdConfig& ids = shard_.config().request_id;
    if (!ids.enabled || !exchange_->request.head_complete()) return {};
    return http::find_request_id(exchange_->request.head(), ids.header);
}

// A response to the request went to the client, a backend's or lb's own: counted in lb_requests_total, the request
// duration and the route's responses. The method is OTHER when lb refused the request before its head was whole.
void ProxySession::count_response_sent(unsigned status) {
    auto& metrics = shard_.metrics();
    if (!metrics.enabled()) return;
    if (exchange_ && exchange_->route) shard_.count_route_response(*exchange_->route, status);
    const bool method_known = exchange_ && exchange_->request.head_complete();
    metrics.on_response_sent(
        method_known ? metrics::RequestMethodLabel::slot(llhttp_method_name(exchange_->request.head().method))
                     : metrics::RequestMethodLabel::kOther,
        status);
    if (exchange_ && exchange_->started_ns != 0) metrics.on_request_done(status, uv_hrtime() - exchange_->started_ns);
}

void ProxySession::fail_request(Outcome outcome) {
    if (closed() || phase_ == Phase::lingering || phase_ == Phase::closing_after_flush) return;
    if (exchange_ && exchange_->response_started) {
        // An error found after the response began (a request body over its limit, say) cannot become a status:
        // writing one would put it inside the response body. The connection ends instead.
        release_upstream(Outcome::client_gone, false);
        close();
        return;
    }
    const OutcomeRow& r = row(outcome);
    // Once a second per outcome at most: a dead backend under load must not cost a line per request.
    uint64_t suppressed = 0;
    if (base::log_enabled(base::LogLevel::info) &&
        shard_.answer_log(static_cast<size_t>(outcome)).allow(uv_now(shard_.loop()), suppressed)) {
        base::log(base::LogLevel::info, "{} answered {}: {} ({} more answered so since the last report)",
                  client_address_, r.status, r.name, suppressed);
    }
    // A backend's failures were counted per attempt where they happened; the others end the request here.
    if (r.source != Source::backend) count_attempt_failure(outcome);
    release_upstream(Outcome::client_gone, false);
    count_response_sent(static_cast<unsigned>(r.status));
    to_upstream_.clear();
    to_client_.clear();
    std::string_view response = error_response(outcome);
    // An answer to HEAD has no body (RFC 9110 §9.3.2), lb's own included: its Content-Length stays, as for a GET.
    if (exchange_ && exchange_->request.is_head_request()) {
        response = response.substr(0, response.find("\r\n\r\n") + 4);
    }
    // A request refused before its head was whole has no id yet: its answer gets one all the same.
    if (exchange_ && shard_.config().request_id.enabled && request_id().empty()) {
        exchange_->generated_id = shard_.request_ids().next();
        exchange_->id_generated = true;
    }
    if (const std::string_view id = request_id(); !id.empty() && !response.empty()) {
        // The request id goes last in the head, before the blank line that ends it.
        const size_t head_end = response.find("\r\n\r\n") + 2;
        const std::string_view header = shard_.config().request_id.header;
        to_client_.append_written([&](std::string& out) {
            out.append(response.substr(0, head_end));
            out.append(header).append(": ").append(id).append("\r\n");
            out.append(response.substr(head_end));
        });
    } else {
        to_client_.append_static(response);
    }
    if (shard_.access_log()) log_access(static_cast<unsigned>(r.status));
    flush_client();
    if (!closed()) close_after_flush();
}

void ProxySession::close_after_flush() {
    phase_ = Phase::lingering;
    pending_ = {};
    pending_buffer_.reset();
    // The shutdown completes once every queued byte is out; meanwhile input is read and discarded, so unread
    // request bytes do not make the kernel answer with a reset that destroys the response before the client
    // reads it. A client that stops reading would hold the shutdown forever: the linger deadline ends it.
    arm(Lane::linger);
    if (client_->shutdown() != 0) {
        close();
        return;
    }
    update_client_reading();
}

void ProxySession::on_transport_shutdown(int status) {
    if (closed()) return;
    if (status < 0) {
        close();
        return;
    }
    if (phase_ == Phase::tunnelling) {
        client_shut_ = true;
        end_tunnel_if_done();
        return;
    }
    arm(Lane::linger);
}

// ---- timeouts ----

void ProxySession::on_header_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    // A 408 only when part of a request arrived; a connection that said nothing just closes.
    if (self.phase_ == Phase::reading_head) {
        self.fail_request(Outcome::client_timeout);
    } else {
        self.close();
    }
}

void ProxySession::on_connect_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    if (self.phase_ != Phase::connecting) return;
    self.shard_.log_backend_problem(self.exchange_->backend, "connect timed out", "");
    self.on_connect_failed(Outcome::connect_timeout);
}

void ProxySession::on_response_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    if (self.phase_ != Phase::exchanging) return;
    self.shard_.log_backend_problem(self.exchange_->backend, "did not respond in time", "");
    self.count_attempt_failure(Outcome::upstream_timeout);
    self.release_upstream(Outcome::upstream_timeout, false);
    if (self.exchange_->response_started) {
        self.close();
    } else {
        self.fail_request(Outcome::upstream_timeout);
    }
}

void ProxySession::on_queue_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    if (self.phase_ != Phase::queued) return;
    self.fail_request(Outcome::queue_timeout);
}

void ProxySession::on_client_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    // An idle connection past its keep-alive time ends cleanly; one that stalled a send or a linger does not.
    if (self.phase_ == Phase::idle) {
        self.end_and_close();
    } else {
        self.close();
    }
}

void ProxySession::on_tunnel_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    if (self.phase_ == Phase::tunnelling) self.close();  // silent for timeouts.tunnel: neither side said anything
}

void ProxySession::on_drain_idle_deadline(DeadlineHook& hook) {
    auto& self = static_cast<ProxySession&>(hook);
    if (self.phase_ != Phase::idle || !self.pending_.empty()) return;
    // A lingering close, not a plain one: a request that crosses the FIN is read and dropped, so the client sees
    // the end of the connection (which HTTP clients retry on, as after any keep-alive timeout) instead of a reset
    // that could also destroy data it has not read yet. Over TLS, close_notify goes first.
    self.close_after_flush();
}

// ---- drain and close ----

void ProxySession::begin_drain() {
    draining_ = true;
    // A response whose head has gone out promised keep-alive, and the client may send its next request as soon as
    // the response is whole: that request is answered (with Connection: close) rather than cut off.
    if (exchange_ && !exchange_->response_started) exchange_->client_keep_alive = false;
    // Closing a connection with no request in progress at once would race with a request already on its way,
    // which the client would see fail (nginx closes at once; HAProxy's idle-close-on-response waits for the next
    // request, up to hard-stop-after). A short grace catches the requests on their way; a connection still idle
    // after it is one the client is not using now, and ends as after a keep-alive timeout. A connection still
    // waiting for its first request may have been accepted just before the listener closed, with its request on
    // the way: it gets the same grace. One whose client has responses to read keeps the send deadline.
    if (phase_ == Phase::idle && pending_.empty()) arm_between_requests();
}

void ProxySession::close() { close_client(false); }

void ProxySession::end_and_close() { close_client(true); }

void ProxySession::close_client(bool clean_end) {
    if (closed()) return;
    if (phase_ == Phase::tunnelling) {
        // The request's access log line went out with its 101; the tunnel's bytes are in lb_tunnel_bytes_total.
        shard_.metrics().on_tunnel_closed();
        // The request was answered (101); whatever ends the tunnel says nothing against the backend.
        release_upstream(Outcome::answered, false);
    }
    release_upstream(Outcome::client_gone, false);
    phase_ = Phase::closed;
    pending_ = {};
    pending_buffer_.reset();
    to_client_.clear();
    to_upstream_.clear();
    shard_.remove_session(this);
    shard_.metrics().on_client_closed();
    shard_.deadlines().disarm(*this);
    // The exchange goes with the session, in on_transport_closed: a parser callback may be running right now.
    if (clean_end) {
        client_->end_and_close();
    } else {
        client_->close();
    }
}

void ProxySession::on_transport_closed() {
    release_exchange();
    delete this;
}

}  // namespace lb::core
