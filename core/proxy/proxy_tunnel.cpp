// ProxySession's tunnel phase, after a 101 (Switching Protocols): kept apart from the HTTP exchange it follows.
// The contract is in proxy_session.h.
#include "core/proxy/proxy_session.h"
#include "core/proxy/upstream_connection.h"
#include "core/shard/shard.h"
#include "http/header_rules.h"

namespace lb::core {

http::HeadAction ProxySession::on_switching_protocols(const http::MessageHead& head) {
    // Only an upgrade the client asked for and lb forwarded (a 101 out of the blue would turn an HTTP connection
    // into something the client never agreed to), naming its protocol (RFC 9110 §15.2.2), without framing (§8.6:
    // never a Content-Length in a 1xx), and after the whole request: tunnel bytes must not mix with its body.
    std::string_view protocols;
    if (!exchange_->upgrade_requested || !head.find("upgrade", protocols) || http::trim_ows(protocols).empty() ||
        head.has_content_length || head.chunked || !exchange_->request_complete) {
        exchange_->bad_response = true;
        return http::HeadAction::pause;
    }
    exchange_->switching = true;
    return http::HeadAction::pause;  // the parser stops here for good: llhttp never sees a tunnel byte
}

void ProxySession::begin_tunnel(const net::BufferRef& buffer, std::string_view rest) {
    const http::MessageHead& response = upstream_->response_parser().head();
    std::string_view protocols;
    response.find("upgrade", protocols);
    phase_ = Phase::tunnelling;
    exchange_->response_started = true;
    exchange_->status = 101;
    exchange_->upstream_trusted = false;  // the connection now speaks another protocol: never back to the pool
    const uint64_t now = uv_hrtime();
    exchange_->upgraded_ns = now;
    to_client_.append_written([&](std::string& out) {
        http::write_switching_protocols_head(response, http::trim_ows(protocols), out, request_id_field(),
                                             response_rewrite());
    });
    auto& metrics = shard_.metrics();
    if (metrics.enabled()) {
        const char* method = llhttp_method_name(exchange_->request.head().method);
        metrics.on_backend_response(exchange_->backend, metrics::method_class(method), 101,
                                    now - exchange_->dispatched_ns);
        count_response_sent(101);
    }
    metrics.on_tunnel_opened();
    // The upgraded request's access log line, as lb_requests_total counts its 101: the head is in to_client_ (its
    // bytes count as sent), the tunnel's bytes are not part of the request.
    if (shard_.access_log()) log_access(101);

    // In order: what the backend sent after its 101 in the same read, and what the client sent after its request
    // head (held in pending_ while the response was awaited) are the tunnel's first bytes.
    if (!rest.empty()) {
        metrics.on_tunnel_bytes(metrics::TunnelDirection::backend_to_client, rest.size());
        to_client_.append_ref(buffer, rest);
    }
    if (!pending_.empty()) {
        metrics.on_tunnel_bytes(metrics::TunnelDirection::client_to_backend, pending_.size());
        to_upstream_.append_ref(pending_buffer_, pending_);
        pending_ = {};
    }
    pending_buffer_.reset();
    arm(Lane::tunnel);
    flush_client();
    if (closed()) return;
    flush_upstream();
    if (closed()) return;
    // A client that half-closed after its request: that direction is over already.
    if (client_eof_ && upstream_->shutdown() != 0) {
        close();
        return;
    }
    update_client_reading();
    update_upstream_tunnel_reading();
}

void ProxySession::relay_to_upstream(const net::BufferRef& buffer, std::string_view bytes) {
    shard_.metrics().on_tunnel_bytes(metrics::TunnelDirection::client_to_backend, bytes.size());
    arm(Lane::tunnel);
    to_upstream_.append_ref(buffer, bytes);
    flush_upstream();
    if (closed()) return;
    update_client_reading();  // stops reading the client while the backend has too much to take
}

void ProxySession::relay_to_client(const net::BufferRef& buffer, std::string_view bytes) {
    shard_.metrics().on_tunnel_bytes(metrics::TunnelDirection::backend_to_client, bytes.size());
    arm(Lane::tunnel);
    to_client_.append_ref(buffer, bytes);
    flush_client();
    if (closed()) return;
    update_upstream_tunnel_reading();
}

void ProxySession::update_upstream_tunnel_reading() {
    if (!upstream_) return;
    // Like the client side: the backend is read only while the client has at most the high-water mark to take.
    if (!upstream_eof_ && client_->queued_bytes() <= high_water()) {
        upstream_->start_reading();
    } else {
        upstream_->stop_reading();
    }
}

void ProxySession::on_tunnel_side_ended(bool client_side) {
    // A FIN passes on as a shutdown towards the other side, sent once what is queued for that side is out; the
    // other direction carries on (a WebSocket close handshake, say, or a request-then-response protocol).
    int rc = 0;
    if (client_side) {
        client_eof_ = true;
        rc = upstream_->shutdown();
    } else {
        upstream_eof_ = true;
        rc = client_->shutdown();
    }
    if (rc != 0) {
        close();
        return;
    }
    end_tunnel_if_done();
}

void ProxySession::on_upstream_shutdown(int status) {
    if (phase_ != Phase::tunnelling) return;
    if (status < 0) {
        close();
        return;
    }
    upstream_shut_ = true;
    end_tunnel_if_done();
}

void ProxySession::end_tunnel_if_done() {
    if (client_eof_ && upstream_eof_ && client_shut_ && upstream_shut_) close();
}

}  // namespace lb::core
