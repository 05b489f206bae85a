#include "core/proxy/upstream_connection.h"

#include "core/proxy/proxy_session.h"
#include "core/shard/shard.h"
#include "net/tcp_transport.h"

namespace lb::core {

namespace {

// Where a connection's response parser points while no session is attached (nothing is parsed then).
class NoSession final : public http::MessageSink {
  public:
    http::HeadAction on_head(const http::MessageHead&) override { return http::HeadAction::pause; }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}
};
NoSession no_session;

}  // namespace

UpstreamConnection::UpstreamConnection(Shard& shard, pool::BackendId backend)
    : shard_(shard), backend_(backend), response_parser_(HTTP_RESPONSE, no_session, shard.response_limits()) {}

UpstreamConnection* UpstreamConnection::create(Shard& shard, pool::BackendId backend) {
    // Owned by its transport's handles from here on: freed in on_transport_closed.
    auto* connection = new UpstreamConnection(shard, backend);
    connection->transport_ = shard.make_upstream_transport(backend, *connection);
    if (!connection->transport_) {
        delete connection;  // no handle was ever opened for it
        return nullptr;
    }
    shard.metrics().on_upstream_opened(backend);
    return connection;
}

void UpstreamConnection::attach(ProxySession* session) { session_ = session; }

void UpstreamConnection::detach() {
    session_ = nullptr;
    response_parser_.set_sink(no_session);
}

void UpstreamConnection::park() {
    parked_ = true;
    shard_.metrics().on_upstream_parked(backend_);
    shard_.deadlines().arm(*this, Lane::upstream_idle);
    transport_->start_reading();  // an idle backend that closes or speaks is noticed here
}

bool UpstreamConnection::unpark(bool check_quiet) {
    parked_ = false;
    shard_.metrics().on_upstream_reused(backend_);
    shard_.deadlines().disarm(*this);
    if (check_quiet && transport_->has_unread_input()) {
        close();
        return false;
    }
    return true;
}

void UpstreamConnection::on_idle_deadline(DeadlineHook& hook) { static_cast<UpstreamConnection&>(hook).close(); }

void UpstreamConnection::on_transport_connected(int status) {
    if (session_) session_->on_upstream_connected(status);
}

void UpstreamConnection::on_transport_read(const net::BufferRef& buffer, std::string_view bytes) {
    if (session_) {
        session_->on_upstream_read(buffer, bytes);
        return;
    }
    // Idle: the backend sent bytes nobody asked for. The connection cannot be reused.
    close();
}

void UpstreamConnection::on_transport_end(int status) {
    if (session_) {
        session_->on_upstream_end(status);
        return;
    }
    close();
}

void UpstreamConnection::on_transport_written(int status) {
    if (session_) {
        session_->on_upstream_written(status);
    } else if (status < 0) {
        close();
    }
}

void UpstreamConnection::on_transport_shutdown(int status) {
    if (session_) {
        session_->on_upstream_shutdown(status);
    } else if (status < 0) {
        close();
    }
}

void UpstreamConnection::close() {
    if (closing_) return;
    closing_ = true;
    shard_.metrics().on_upstream_closed(backend_, parked_);
    if (parked_) shard_.idle_upstreams().forget(this);
    parked_ = false;
    shard_.deadlines().disarm(*this);
    session_ = nullptr;
    transport_->close();
}

void UpstreamConnection::on_transport_closed() { delete this; }

}  // namespace lb::core
