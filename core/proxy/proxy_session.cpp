#include "core/proxy/proxy_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <memory>

#include "core/proxy/upstream_connection.h"
#include "core/runtime/log.h"
#include "core/shard/shard.h"
#include "http/error_response.h"
#include "http/header_rules.h"
#include "metrics/stats.h"
#include "route/hash_key.h"

namespace lb::core {

namespace {

// Above this many bytes queued towards one side, stop reading from the other until it drains.
constexpr size_t kWriteHighWater = 256 * 1024;

http::HeadLimits head_limits(const Config& config) {
    return {config.limits.header_bytes, config.limits.header_count, config.limits.uri_bytes};
}

std::string peer_address(uv_tcp_t* tcp) {
    sockaddr_storage address{};
    int length = sizeof address;
    if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "unknown";
    char text[INET6_ADDRSTRLEN] = "";
    if (address.ss_family == AF_INET6) {
        uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&address), text, sizeof text);
    } else {
        uv_ip4_name(reinterpret_cast<sockaddr_in*>(&address), text, sizeof text);
    }
    return text;
}

}  // namespace

ProxySession::ProxySession(Shard& shard) : shard_(shard) {}

ProxySession::Exchange& ProxySession::exchange() {
    if (!exchange_) exchange_ = std::make_unique<Exchange>(*this, shard_.writes(), head_limits(shard_.config()));
    return *exchange_;
}

void ProxySession::accept(Shard& shard, uv_stream_t* listener) {
    // Owned by its two handles from here on: freed in on_close of the last one.
    auto* session = new ProxySession(shard);
    uv_tcp_init(shard.loop(), &session->client_);
    session->client_.data = session;
    session->open_handles_ = 1;
    shard.add_session(session);
    shard.metrics().on_client_accepted();
    if (uv_accept(listener, session->client()) != 0) {
        session->close();
        return;
    }
    uv_tcp_nodelay(&session->client_, 1);
    session->client_address_ = peer_address(&session->client_);
    // The first request gets the header timeout from the moment the connection opens.
    session->arm_timer(Lane::client_header);
    session->update_client_reading();
}

// ---- client input ----

void ProxySession::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<ProxySession*>(handle->data);
    self->client_read_buffer_ = self->shard_.buffers().acquire();
    *buf = uv_buf_init(self->client_read_buffer_.data(), Buffer::kSize);
}

void ProxySession::on_client_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
    auto* self = static_cast<ProxySession*>(stream->data);
    BufferRef buffer = std::move(self->client_read_buffer_);
    if (nread == 0) return;
    if (nread < 0) {
        // A client may half-close once its request is complete: its response still goes out, then the
        // connection ends. Otherwise (an error, or EOF in the middle of a request) the client is gone.
        bool awaiting_response =
            self->request_complete_ &&
            (self->phase_ == Phase::exchanging || self->phase_ == Phase::connecting || self->phase_ == Phase::queued);
        if (nread == UV_EOF && awaiting_response) {
            self->client_eof_ = true;
            self->client_keep_alive_ = false;
            self->update_client_reading();
            return;
        }
        self->close();
        return;
    }
    self->shard_.metrics().on_client_bytes_received(static_cast<uint64_t>(nread));
    if (self->phase_ == Phase::lingering) return;  // discard
    self->pending_buffer_ = std::move(buffer);
    self->pending_ = {self->pending_buffer_.data(), static_cast<size_t>(nread)};
    if (self->phase_ == Phase::exchanging) {
        self->arm_timer(Lane::upstream_response);
    }
    self->parse_client_input();
}

void ProxySession::parse_client_input() {
    while (!pending_.empty() && !closing_) {
        // One request at a time: a pipelined request waits in pending_ until the current response is done,
        // and body bytes wait until an upstream connection is ready.
        if (phase_ == Phase::queued || phase_ == Phase::connecting || phase_ == Phase::lingering ||
            phase_ == Phase::closing) {
            break;
        }
        if (phase_ == Phase::exchanging && request_complete_) break;
        if (phase_ == Phase::idle) {
            phase_ = Phase::reading_head;
            awaiting_first_request_ = false;
            arm_timer(Lane::client_header);
            exchange();
            if (shard_.metrics().enabled()) exchange_->request_started_ns = uv_hrtime();
        }
        exchange_->current_client_buffer = pending_buffer_;
        http::FeedResult result = exchange_->request_parser.feed(pending_);
        pending_.remove_prefix(result.consumed);
        if (result.status == http::FeedStatus::error) {
            fail_request(request_error_ != http::ProxyError::none ? request_error_ : result.error);
            return;
        }
        if (result.status == http::FeedStatus::paused) exchange_->request_parser.resume();
        if (closing_) return;
        if (request_error_ != http::ProxyError::none) {
            fail_request(request_error_);
            return;
        }
        if (head_ready_) {
            head_ready_ = false;
            dispatch();
            if (closing_) return;
        }
    }
    if (exchange_) exchange_->current_client_buffer.reset();
    if (pending_.empty()) pending_buffer_.reset();
    flush_upstream();
    update_client_reading();
}

void ProxySession::update_client_reading() {
    if (closing_) return;
    // Reading stays on while there is room: starting and stopping it costs an epoll_ctl each. Bytes that
    // cannot be parsed yet (a pipelined request, a body before the backend connection is ready) wait in
    // pending_, and reading stops until they are consumed: at most one read buffer is held per client.
    bool want = pending_.empty() && !client_eof_;
    switch (phase_) {
        case Phase::idle:
        case Phase::reading_head:
        case Phase::lingering:
        case Phase::queued:
        case Phase::connecting:
            break;
        case Phase::exchanging:
            // While a body streams up, the backend's write queue decides (backpressure).
            want = want && (request_complete_ || (upstream_ && upstream_->write_queue_size() < kWriteHighWater));
            break;
        case Phase::closing:
            want = false;
            break;
    }
    if (want && !client_reading_) {
        client_reading_ = uv_read_start(client(), &ProxySession::on_alloc, &ProxySession::on_client_read) == 0;
    } else if (!want && client_reading_) {
        uv_read_stop(client());
        client_reading_ = false;
    }
}

http::HeadAction ProxySession::on_head(const http::MessageHead& head) {
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is rejected.
    size_t hosts = head.count("host");
    if (hosts > 1 || (hosts == 0 && !head.is_http10())) {
        request_error_ = http::ProxyError::bad_request;
        return http::HeadAction::pause;
    }
    uint64_t body_limit = shard_.config().limits.request_body_bytes;
    if (body_limit != 0 && head.has_content_length && head.content_length > body_limit) {
        request_error_ = http::ProxyError::body_too_large;
        return http::HeadAction::pause;
    }
    request_framing_ = http::upstream_request_framing(head);
    client_keep_alive_ = head.keep_alive && !draining_;
    request_complete_ = false;
    request_body_bytes_ = 0;
    exchange_->to_upstream.append_written([&](std::string& out) {
        http::write_upstream_request_head(head, {client_address_, "http"}, shard_.config().upstream_keepalive > 0, out);
    });
    head_ready_ = true;
    return http::HeadAction::proceed;
}

void ProxySession::on_body(std::string_view bytes) {
    if (request_error_ != http::ProxyError::none) return;
    request_body_bytes_ += bytes.size();
    uint64_t body_limit = shard_.config().limits.request_body_bytes;
    if (body_limit != 0 && request_body_bytes_ > body_limit) {
        // Only a chunked body can get here (a Content-Length over the limit was refused at the head).
        request_error_ = http::ProxyError::body_too_large;
        return;
    }
    if (request_framing_ == http::BodyFraming::chunked) {
        // Each piece becomes one chunk: the client's chunk sizes and extensions are not passed on.
        exchange_->to_upstream.append_written([&](std::string& out) { http::write_chunk_size(bytes.size(), out); });
        exchange_->to_upstream.append_ref(exchange_->current_client_buffer, bytes);
        exchange_->to_upstream.append_static(http::kChunkEnd);
    } else {
        exchange_->to_upstream.append_ref(exchange_->current_client_buffer, bytes);
    }
}

void ProxySession::on_message_complete() {
    if (request_framing_ == http::BodyFraming::chunked) exchange_->to_upstream.append_static(http::kLastChunk);
    request_complete_ = true;
}

// ---- choosing a backend and connecting ----

void ProxySession::dispatch() {
    phase_ = Phase::connecting;
    auto& pool = shard_.pool();
    const Config& config = shard_.config();
    std::string_view hash_key;
    if (shard_.picks_by_hash_key()) {
        hash_key =
            route::request_hash_key(exchange_->request_parser.head(), config.balancer.consistent_hash, client_address_);
    }
    uint64_t now = uv_hrtime();
    pool::Selection selection = pool.choose(exchange_->tried, std::chrono::nanoseconds(now), hash_key);
    switch (selection.status) {
        case pool::SelectStatus::picked:
            break;
        case pool::SelectStatus::all_full:
            // Like HAProxy's maxconn queue: wait for a slot rather than overload a backend, within a bound.
            if (shard_.enqueue(this)) {
                phase_ = Phase::queued;
                queued_ = true;
                shard_.metrics().on_queue_wait();
                arm_timer(Lane::queue);
                return;
            }
            fail_request(http::ProxyError::no_backend);
            return;
        case pool::SelectStatus::all_tried:
            fail_request(http::ProxyError::upstream_unreachable);
            return;
        case pool::SelectStatus::none_healthy:
            fail_request(attempts_ == 0 ? http::ProxyError::no_backend : http::ProxyError::upstream_unreachable);
            return;
    }
    backend_ = selection.backend;
    pool.on_dispatch(backend_);
    dispatched_ = true;
    if (attempts_ > 0) shard_.metrics().on_retry();
    exchange_->dispatched_ns = now;
    if (!fresh_connection_only_) {
        if (UpstreamConnection* idle = shard_.idle_upstreams().take(backend_)) {
            upstream_ = idle;
            upstream_->attach(this);
            on_upstream_ready();
            return;
        }
    }
    start_connect(backend_);
}

void ProxySession::start_connect(pool::BackendId backend) {
    upstream_ = UpstreamConnection::create(shard_, backend);
    upstream_->attach(this);
    if (upstream_->connect(shard_.backend_address(backend)) != 0) {
        on_connect_failed();
        return;
    }
    arm_timer(Lane::connect);
}

void ProxySession::on_upstream_connected(int status) {
    if (status != 0) {
        log(LogLevel::warn, "connect to backend {} failed: {}", shard_.backend_name(backend_), uv_strerror(status));
        on_connect_failed();
        return;
    }
    on_upstream_ready();
}

void ProxySession::on_connect_failed() {
    shard_.metrics().on_error(phase_timed_out_ ? metrics::ErrorKind::connect_timeout
                                               : metrics::ErrorKind::connect_refused);
    phase_timed_out_ = false;
    release_upstream(pool::Outcome::connect_failure, false);
    exchange_->tried.insert(backend_);
    // A failed connect sent nothing: the request may go to another backend whatever its method.
    if (++attempts_ > shard_.config().retries) {
        fail_request(http::ProxyError::upstream_unreachable);
        return;
    }
    dispatch();
}

void ProxySession::on_upstream_ready() {
    phase_ = Phase::exchanging;
    upstream_->response_parser().reset();
    upstream_->response_parser().set_sink(exchange_->response_sink);
    response_started_ = false;
    response_complete_ = false;
    interim_response_ = false;
    bad_response_ = false;
    arm_timer(Lane::upstream_response);
    upstream_->start_reading();
    // Body bytes that arrived with the head are already in exchange_->to_upstream; parse whatever else is pending.
    parse_client_input();
}

void ProxySession::flush_upstream() {
    if (!exchange_ || exchange_->to_upstream.empty() || !upstream_ || phase_ != Phase::exchanging) return;
    if (upstream_->write(exchange_->to_upstream) != 0) on_upstream_failed(pool::Outcome::reset);
}

void ProxySession::on_upstream_write_done(int status) {
    if (closing_ || !upstream_) return;
    if (status < 0) {
        on_upstream_failed(pool::Outcome::reset);
        return;
    }
    if (!response_started_) arm_timer(Lane::upstream_response);
    update_client_reading();
}

// ---- response ----

void ProxySession::on_upstream_read(ssize_t nread, const BufferRef& buffer) {
    if (closing_ || !upstream_) return;
    if (nread < 0) {
        // EOF completes a response delimited by the connection's close; anything else was cut short.
        if (nread == UV_EOF && upstream_->response_parser().head_complete() &&
            upstream_->response_parser().in_message()) {
            exchange_->current_upstream_buffer.reset();
            if (upstream_->response_parser().finish() && response_complete_) {
                flush_client();
                if (closing_) return;  // the client went away as the last bytes were written
                finish_exchange(false);
                return;
            }
        }
        on_upstream_failed(pool::Outcome::reset);
        return;
    }
    arm_timer(Lane::upstream_response);
    exchange_->current_upstream_buffer = buffer;
    std::string_view bytes(buffer.data(), static_cast<size_t>(nread));
    while (!bytes.empty()) {
        http::FeedResult result = upstream_->response_parser().feed(bytes);
        bytes.remove_prefix(result.consumed);
        if (result.status == http::FeedStatus::error || bad_response_) {
            exchange_->current_upstream_buffer.reset();
            log(LogLevel::warn, "invalid response from backend {}: {}", shard_.backend_name(backend_),
                upstream_->response_parser().error_reason());
            if (response_started_) {
                close();
            } else {
                release_upstream(pool::Outcome::reset, false);
                fail_request(http::ProxyError::bad_response);
            }
            return;
        }
        if (result.status == http::FeedStatus::paused) {
            upstream_->response_parser().resume();
            if (response_complete_) break;
        }
    }
    exchange_->current_upstream_buffer.reset();
    flush_client();
    if (closing_) return;
    if (response_complete_) {
        // Bytes after the response belong to nothing we asked for: that connection cannot be trusted again.
        finish_exchange(bytes.empty());
        return;
    }
    if (client_.write_queue_size > kWriteHighWater) upstream_->stop_reading();
}

http::HeadAction ProxySession::on_response_head(const http::MessageHead& head) {
    const http::MessageHead& request = exchange_->request_parser.head();
    if (head.status / 100 == 1) {
        if (head.status == 101) {
            bad_response_ = true;  // never asked for: Upgrade is not forwarded
            return http::HeadAction::pause;
        }
        // Interim responses (100 Continue) go to HTTP/1.1 clients as they are; the final one follows.
        interim_response_ = true;
        if (!request.is_http10()) {
            exchange_->to_client.append_written([&](std::string& out) {
                http::write_client_response_head(head, http::BodyFraming::none, false, true, out);
            });
        }
        return http::HeadAction::proceed;
    }
    response_started_ = true;
    response_framing_ = http::client_response_framing(request, head);
    upstream_keep_alive_ = head.keep_alive;
    // A response that ends before its request was fully read leaves the client connection mid-body.
    if (response_framing_ == http::BodyFraming::until_close || !request_complete_ || draining_) {
        client_keep_alive_ = false;
    }
    exchange_->to_client.append_written([&](std::string& out) {
        http::write_client_response_head(head, response_framing_, request.is_http10(), client_keep_alive_, out);
    });
    return request.method == HTTP_HEAD ? http::HeadAction::skip_body : http::HeadAction::proceed;
}

void ProxySession::on_response_body(std::string_view bytes) {
    if (response_framing_ == http::BodyFraming::chunked) {
        exchange_->to_client.append_written([&](std::string& out) { http::write_chunk_size(bytes.size(), out); });
        exchange_->to_client.append_ref(exchange_->current_upstream_buffer, bytes);
        exchange_->to_client.append_static(http::kChunkEnd);
    } else {
        exchange_->to_client.append_ref(exchange_->current_upstream_buffer, bytes);
    }
}

void ProxySession::on_response_complete() {
    if (interim_response_) {
        interim_response_ = false;
        return;
    }
    if (response_framing_ == http::BodyFraming::chunked) exchange_->to_client.append_static(http::kLastChunk);
    response_complete_ = true;
    auto& metrics = shard_.metrics();
    if (metrics.enabled()) {
        uint64_t now = uv_hrtime();
        metrics.on_backend_response(
            backend_, metrics::method_class(llhttp_method_name(exchange_->request_parser.head().method)),
            static_cast<unsigned>(upstream_->response_parser().head().status), now - exchange_->dispatched_ns);
        metrics.on_request_done(now - exchange_->request_started_ns);
    }
}

void ProxySession::finish_exchange(bool upstream_reusable) {
    bool reusable =
        upstream_reusable && upstream_keep_alive_ && request_complete_ && shard_.config().upstream_keepalive > 0;
    release_upstream(pool::Outcome::success, reusable, upstream_->response_parser().head().status);
    if (!client_keep_alive_) {
        // Nothing unread is left (the request was read whole, nothing pipelined after it): close as soon as
        // the response is out, without the shutdown-and-linger an error response needs.
        if (request_complete_ && pending_.empty()) {
            close_when_flushed();
        } else {
            close_after_flush();
        }
        return;
    }
    start_next_request();
}

void ProxySession::start_next_request() {
    if (closing_) return;
    phase_ = Phase::idle;
    attempts_ = 0;
    fresh_connection_only_ = false;
    request_error_ = http::ProxyError::none;
    arm_timer(Lane::client_keepalive);
    if (pending_.empty()) {
        // Nothing pipelined: the connection goes idle and gives its exchange back. No callback of the exchange's
        // parser is running here (this is reached from the backend's read callback, after its parse).
        exchange_.reset();
        update_client_reading();
        return;
    }
    exchange_->tried.clear();
    parse_client_input();
}

void ProxySession::on_upstream_failed(pool::Outcome outcome) {
    if (outcome == pool::Outcome::reset) shard_.metrics().on_error(metrics::ErrorKind::upstream_reset);
    if (response_started_) {
        // Part of the response is already with the client; a status can no longer be sent. Ending the
        // connection is the only honest signal left.
        log(LogLevel::warn, "backend {} failed mid-response; closing the client connection",
            shard_.backend_name(backend_));
        close();
        return;
    }
    bool was_reused = upstream_ && upstream_->reused();
    release_upstream(outcome, false);
    // No response byte came back, so the request can be sent again if it is whole in hand (no body bytes: they
    // were streamed, not kept) and repeating it is safe: either the connection was a reused keep-alive one the
    // backend closed just as we sent (nothing was processed), or the method is idempotent.
    bool resendable = request_complete_ && request_body_bytes_ == 0 && attempts_ <= shard_.config().retries;
    if (resendable && (was_reused || http::is_idempotent(exchange_->request_parser.head().method))) {
        ++attempts_;
        // A stale pooled connection says nothing against its backend: retry it on a fresh connection. A fresh
        // connection that failed does: go elsewhere.
        fresh_connection_only_ = was_reused;
        if (!was_reused) exchange_->tried.insert(backend_);
        exchange_->to_upstream.clear();
        // The request head is still parsed and whole (the next request is not read before this one ends).
        exchange_->to_upstream.append_written([&](std::string& out) {
            http::write_upstream_request_head(exchange_->request_parser.head(), {client_address_, "http"},
                                              shard_.config().upstream_keepalive > 0, out);
        });
        if (request_framing_ == http::BodyFraming::chunked) exchange_->to_upstream.append_static(http::kLastChunk);
        dispatch();
        return;
    }
    fail_request(outcome == pool::Outcome::timeout ? http::ProxyError::upstream_timeout
                                                   : http::ProxyError::upstream_unreachable);
}

void ProxySession::release_upstream(pool::Outcome outcome, bool reusable, int status) {
    if (queued_) {
        shard_.dequeue(this);
        queued_ = false;
    }
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
    if (dispatched_) {
        dispatched_ = false;
        uint64_t now = uv_hrtime();
        pool::Result result{outcome, std::chrono::nanoseconds(now - exchange_->dispatched_ns),
                            std::chrono::nanoseconds(now)};
        shard_.finish_request(backend_, result, status);
    }
}

void ProxySession::on_slot_free() {
    queued_ = false;
    if (closing_ || phase_ != Phase::queued) return;
    dispatch();
}

// ---- client output ----

void ProxySession::flush_client() {
    if (!exchange_ || exchange_->to_client.empty() || closing_) return;
    shard_.metrics().on_client_bytes_sent(exchange_->to_client.bytes());
    if (exchange_->to_client.flush(client(), this) != 0) close();
}

void ProxySession::close_when_flushed() {
    phase_ = Phase::closing;
    update_client_reading();
    if (client_.write_queue_size == 0) {
        close();  // every byte is with the kernel already: closing sends it, then FIN
    } else {
        close_when_flushed_ = true;
    }
}

void ProxySession::on_write_done(int status) {
    if (closing_) return;
    if (status < 0) {
        close();
        return;
    }
    if (close_when_flushed_) {
        if (client_.write_queue_size == 0) close();
        return;
    }
    if (upstream_ && phase_ == Phase::exchanging && client_.write_queue_size <= kWriteHighWater / 2) {
        upstream_->start_reading();
    }
}

void ProxySession::fail_request(http::ProxyError error) {
    log(LogLevel::info, "{} answered {}: {}", client_address_, http::status_for(error), http::to_string(error));
    record_error(error);
    release_upstream(pool::Outcome::cancelled, false);
    exchange();
    exchange_->to_upstream.clear();
    exchange_->to_client.clear();
    exchange_->to_client.append_static(http::error_response(error));
    flush_client();
    close_after_flush();
}

void ProxySession::record_error(http::ProxyError error) {
    auto& metrics = shard_.metrics();
    if (!metrics.enabled()) return;
    switch (error) {
        case http::ProxyError::bad_request:
            metrics.on_error(metrics::ErrorKind::client_parse_error);
            break;
        case http::ProxyError::headers_too_large:
            metrics.on_error(metrics::ErrorKind::header_limit);
            break;
        case http::ProxyError::uri_too_long:
            metrics.on_error(metrics::ErrorKind::uri_limit);
            break;
        case http::ProxyError::body_too_large:
            metrics.on_error(metrics::ErrorKind::body_limit);
            break;
        case http::ProxyError::client_timeout:
            metrics.on_error(metrics::ErrorKind::client_timeout);
            break;
        case http::ProxyError::upstream_timeout:
            metrics.on_error(metrics::ErrorKind::upstream_timeout);
            break;
        case http::ProxyError::no_backend:
            metrics.on_error(metrics::ErrorKind::no_backend);
            break;
        case http::ProxyError::bad_response:
            metrics.on_error(metrics::ErrorKind::bad_response);
            break;
        // Counted per failed attempt (connect_refused, connect_timeout, upstream_reset) where it happened.
        case http::ProxyError::upstream_unreachable:
        case http::ProxyError::none:
            break;
    }
    if (exchange_ && exchange_->request_started_ns != 0)
        metrics.on_request_done(uv_hrtime() - exchange_->request_started_ns);
}

void ProxySession::close_after_flush() {
    if (closing_ || phase_ == Phase::lingering || phase_ == Phase::closing) return;
    phase_ = Phase::closing;
    // A client that stops reading would hold the shutdown (and this session) forever behind unsent bytes.
    arm_timer(Lane::linger);
    update_client_reading();
    pending_ = {};
    pending_buffer_.reset();
    exchange().shutdown_req.data = this;
    // The shutdown completes once every queued write is out; then we linger.
    if (uv_shutdown(&exchange_->shutdown_req, client(), &ProxySession::on_shutdown) != 0) close();
}

void ProxySession::on_shutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<ProxySession*>(req->data);
    if (self->closing_) return;
    if (status < 0) {
        self->close();
        return;
    }
    // Keep reading (and discarding) until the client closes, so unread request bytes do not make the
    // kernel answer with a reset that destroys the response before the client reads it.
    self->phase_ = Phase::lingering;
    self->arm_timer(Lane::linger);
    self->update_client_reading();
}

// ---- timers, drain, close ----

void ProxySession::arm_timer(Lane lane) { shard_.deadlines().arm(*this, lane); }

void ProxySession::on_deadline(DeadlineHook& hook) {
    auto* self = static_cast<ProxySession*>(&hook);
    switch (self->phase_) {
        case Phase::idle:
        case Phase::lingering:
        case Phase::closing:
            self->close();
            break;
        case Phase::reading_head:
            self->fail_request(http::ProxyError::client_timeout);
            break;
        case Phase::queued:
            log(LogLevel::warn, "no connection slot freed within the queue timeout");
            self->fail_request(http::ProxyError::no_backend);
            break;
        case Phase::connecting:
            log(LogLevel::warn, "connect to backend {} timed out", self->shard_.backend_name(self->backend_));
            self->phase_timed_out_ = true;
            self->on_connect_failed();
            break;
        case Phase::exchanging:
            log(LogLevel::warn, "backend {} did not respond in time", self->shard_.backend_name(self->backend_));
            if (self->response_started_) {
                self->close();
            } else {
                self->release_upstream(pool::Outcome::timeout, false);
                self->fail_request(http::ProxyError::upstream_timeout);
            }
            break;
    }
}

void ProxySession::begin_drain() {
    draining_ = true;
    client_keep_alive_ = false;
    // A connection still waiting for its first request may have been accepted just before the listener closed
    // (a reload or a shutdown racing a connect), with its request on the way: the shard gives it a short grace
    // to arrive, then serves it with Connection: close. A connection idle between requests is closed at once,
    // which HTTP/1.1 clients expect of keep-alive.
    if (phase_ == Phase::idle && !awaiting_first_request_) close();
}

void ProxySession::close() {
    if (closing_) return;
    closing_ = true;
    phase_ = Phase::closing;
    release_upstream(pool::Outcome::cancelled, false);
    pending_ = {};
    pending_buffer_.reset();
    client_read_buffer_.reset();
    // The exchange itself goes with the session, in on_close: a parser callback may be running right now.
    if (exchange_) {
        exchange_->to_client.clear();
        exchange_->to_upstream.clear();
    }
    shard_.remove_session(this);
    shard_.metrics().on_client_closed();
    shard_.deadlines().disarm(*this);
    uv_close(reinterpret_cast<uv_handle_t*>(&client_), &ProxySession::on_close);
}

void ProxySession::on_close(uv_handle_t* handle) {
    auto* self = static_cast<ProxySession*>(handle->data);
    if (--self->open_handles_ == 0) std::unique_ptr<ProxySession> owned(self);
}

}  // namespace lb::core
