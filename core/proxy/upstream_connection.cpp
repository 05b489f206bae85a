#include "core/proxy/upstream_connection.h"

#include <memory>

#include "core/proxy/proxy_session.h"
#include "core/shard/shard.h"

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
    : shard_(shard), backend_(backend), response_parser_(HTTP_RESPONSE, no_session) {}

UpstreamConnection* UpstreamConnection::create(Shard& shard, pool::BackendId backend) {
    // Owned by its handles from here on: freed in on_close of the last one.
    auto* connection = new UpstreamConnection(shard, backend);
    uv_tcp_init(shard.loop(), &connection->tcp_);
    uv_timer_init(shard.loop(), &connection->idle_timer_);
    connection->tcp_.data = connection;
    connection->idle_timer_.data = connection;
    connection->connect_req_.data = connection;
    connection->open_handles_ = 2;
    shard.metrics().on_upstream_opened(backend);
    return connection;
}

int UpstreamConnection::connect(const sockaddr* address) {
    uv_tcp_nodelay(&tcp_, 1);
    return uv_tcp_connect(&connect_req_, &tcp_, address, &UpstreamConnection::on_connect);
}

void UpstreamConnection::on_connect(uv_connect_t* req, int status) {
    auto* self = static_cast<UpstreamConnection*>(req->data);
    if (status == UV_ECANCELED || self->closing_) return;  // closed while connecting: the session moved on
    if (status == 0) self->connected_ = true;
    if (self->session_) self->session_->on_upstream_connected(status);
}

void UpstreamConnection::attach(ProxySession* session) { session_ = session; }

void UpstreamConnection::detach() {
    session_ = nullptr;
    response_parser_.set_sink(no_session);
}

void UpstreamConnection::start_reading() {
    if (reading_ || closing_) return;
    if (uv_read_start(stream(), &UpstreamConnection::on_alloc, &UpstreamConnection::on_read) == 0) reading_ = true;
}

void UpstreamConnection::stop_reading() {
    if (!reading_) return;
    uv_read_stop(stream());
    reading_ = false;
}

void UpstreamConnection::park(uint64_t idle_ms) {
    parked_ = true;
    shard_.metrics().on_upstream_parked(backend_);
    uv_timer_start(&idle_timer_, &UpstreamConnection::on_idle_timeout, idle_ms, 0);
    start_reading();  // an idle backend that closes or speaks is noticed here, before the next request uses it
}

void UpstreamConnection::unpark() {
    parked_ = false;
    shard_.metrics().on_upstream_reused(backend_);
    uv_timer_stop(&idle_timer_);
    // Reading stays on: the next session takes the connection as it is (no epoll_ctl round trip).
}

void UpstreamConnection::on_idle_timeout(uv_timer_t* timer) { static_cast<UpstreamConnection*>(timer->data)->close(); }

void UpstreamConnection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<UpstreamConnection*>(handle->data);
    self->read_buffer_ = self->shard_.buffers().acquire();
    *buf = uv_buf_init(self->read_buffer_.data(), Buffer::kSize);
}

void UpstreamConnection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
    auto* self = static_cast<UpstreamConnection*>(stream->data);
    BufferRef buffer = std::move(self->read_buffer_);
    if (nread == 0) return;
    if (self->session_) {
        self->session_->on_upstream_read(nread, buffer);
        return;
    }
    // Idle: the backend closed or sent bytes nobody asked for. Either way the connection cannot be reused.
    self->close();
}

void UpstreamConnection::on_write_done(int status) {
    if (session_ && status != UV_ECANCELED) session_->on_upstream_write_done(status);
}

void UpstreamConnection::close() {
    if (closing_) return;
    closing_ = true;
    shard_.metrics().on_upstream_closed(backend_, parked_);
    if (parked_) shard_.idle_upstreams().forget(this);
    parked_ = false;
    session_ = nullptr;
    read_buffer_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &UpstreamConnection::on_close);
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_timer_), &UpstreamConnection::on_close);
}

void UpstreamConnection::on_close(uv_handle_t* handle) {
    auto* self = static_cast<UpstreamConnection*>(handle->data);
    if (--self->open_handles_ == 0) std::unique_ptr<UpstreamConnection> owned(self);
}

}  // namespace lb::core
