#include "net/tcp_transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace lb::net {

TcpTransport::TcpTransport(TransportEnv& env, TransportEvents& events) : env_(env), events_(events) {
    uv_tcp_init(env_.loop, &tcp_);
    tcp_.data = this;
}

TcpTransport::~TcpTransport() {
    if (in_flight_) env_.writes.recycle(std::move(in_flight_));
    if (backlog_) env_.writes.recycle(std::move(backlog_));
}

int TcpTransport::open(int fd) {
    int rc = uv_tcp_open(&tcp_, fd);
    if (rc != 0) {
        ::close(fd);  // not the handle's yet
        return rc;
    }
    uv_tcp_nodelay(&tcp_, 1);
    return 0;
}

int TcpTransport::connect(const sockaddr* address) {
    auto* req = new uv_connect_t;
    req->data = this;
    int rc = uv_tcp_connect(req, &tcp_, address, &TcpTransport::on_connect);
    if (rc != 0) delete req;
    return rc;
}

void TcpTransport::on_connect(uv_connect_t* req, int status) {
    auto* self = static_cast<TcpTransport*>(req->data);
    delete req;
    if (status == UV_ECANCELED || self->closing_) return;
    if (status == 0) uv_tcp_nodelay(&self->tcp_, 1);
    self->events_.on_transport_connected(status);
}

// ---- reading ----

void TcpTransport::start_reading() {
    want_reading_ = true;
    update_reading();
}

void TcpTransport::stop_reading() {
    want_reading_ = false;
    update_reading();
}

void TcpTransport::update_reading() {
    bool want = want_reading_ && !waiting_for_memory_ && !closing_;
    if (want && !reading_) {
        reading_ = uv_read_start(stream(), &TcpTransport::on_alloc, &TcpTransport::on_read) == 0;
    } else if (!want && reading_) {
        uv_read_stop(stream());
        reading_ = false;
    }
}

void TcpTransport::resume_after_memory() {
    waiting_for_memory_ = false;
    update_reading();
}

void TcpTransport::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* self = static_cast<TcpTransport*>(handle->data);
    if (self->env_.buffers.budget().exhausted()) {
        *buf = uv_buf_init(nullptr, 0);  // on_read hears UV_ENOBUFS
        return;
    }
    self->read_buffer_ = self->env_.buffers.acquire();
    *buf = uv_buf_init(self->read_buffer_.data(), Buffer::kSize);
}

void TcpTransport::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
    auto* self = static_cast<TcpTransport*>(stream->data);
    BufferRef buffer = std::move(self->read_buffer_);
    if (nread == 0) return;
    if (nread == UV_ENOBUFS) {
        // The shard's buffers are used up: wait, rather than allocate, until enough is freed.
        self->waiting_for_memory_ = true;
        self->update_reading();
        self->env_.memory_waiters.push_front(self);
        return;
    }
    if (nread < 0) {
        self->want_reading_ = false;
        self->update_reading();
        self->events_.on_transport_end(static_cast<int>(nread));
        return;
    }
    self->events_.on_transport_read(buffer, {buffer.data(), static_cast<size_t>(nread)});
}

bool TcpTransport::has_unread_input() {
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0) return true;
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

ssize_t TcpTransport::read_available(char* into, size_t size) {
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0) return 0;
    ssize_t n = ::recv(fd, into, size, MSG_DONTWAIT);
    return n < 0 ? -1 : n;
}

// ---- writing ----

int TcpTransport::write(WriteBatch& batch) {
    std::unique_ptr<WriteRequest> request = batch.take();
    if (!request) return 0;
    if (closing_) {
        env_.writes.recycle(std::move(request));
        return UV_ECANCELED;
    }
    if (!in_flight_) return send(std::move(request));
    // One write at a time: the rest gathers, compacted, behind it.
    if (!backlog_) backlog_ = env_.writes.acquire();
    backlog_->append_compacted(*request, 0);
    env_.writes.recycle(std::move(request));
    charge(*backlog_);
    recount_queued();
    return 0;
}

void TcpTransport::charge(WriteRequest& request) {
    size_t now = request.owned_heap_bytes();
    if (now > request.charged) {
        env_.writes.budget().charge(now - request.charged);
    } else {
        env_.writes.budget().release(request.charged - now);
    }
    request.charged = now;
}

int TcpTransport::send(std::unique_ptr<WriteRequest> request) {
    request->fill_bufs(0);
    // Most writes fit in the socket buffer: try them straight away, which needs no request in libuv's queue, no
    // callback and no epoll_ctl.
    int written = uv_try_write(stream(), request->bufs.data(), static_cast<unsigned>(request->bufs.size()));
    if (written < 0 && written != UV_EAGAIN) {
        env_.writes.recycle(std::move(request));
        return written;
    }
    size_t done = written > 0 ? static_cast<size_t>(written) : 0;
    if (done == request->total) {
        env_.writes.recycle(std::move(request));
        return 0;
    }
    // Keep what is left compactly: the read buffers of small pieces go back to the pool now.
    std::unique_ptr<WriteRequest> rest = env_.writes.acquire();
    rest->append_compacted(*request, done);
    env_.writes.recycle(std::move(request));
    charge(*rest);
    rest->fill_bufs(0);
    rest->owner = this;
    rest->req.data = rest.get();
    int rc = uv_write(&rest->req, stream(), rest->bufs.data(), static_cast<unsigned>(rest->bufs.size()),
                      &TcpTransport::on_write);
    if (rc != 0) {
        env_.writes.recycle(std::move(rest));
        return rc;
    }
    in_flight_ = std::move(rest);
    recount_queued();
    return 0;
}

void TcpTransport::on_write(uv_write_t* req, int status) {
    auto* request = static_cast<WriteRequest*>(req->data);
    auto* self = static_cast<TcpTransport*>(request->owner);
    // Release the buffers before anyone reacts (they may read more into them).
    self->env_.writes.recycle(std::move(self->in_flight_));
    if (status == UV_ECANCELED || self->closing_) return;
    if (status == 0 && self->backlog_) {
        status = self->send(std::move(self->backlog_));
    }
    self->recount_queued();
    if (status == 0 && self->shutdown_wanted_ && !self->in_flight_) status = self->start_shutdown();
    self->events_.on_transport_written(status);
}

void TcpTransport::recount_queued() {
    queued_ = (in_flight_ ? in_flight_->held_bytes() : 0) + (backlog_ ? backlog_->held_bytes() : 0);
}

// ---- ending ----

int TcpTransport::shutdown() {
    if (closing_) return UV_ECANCELED;
    shutdown_wanted_ = true;
    return in_flight_ ? 0 : start_shutdown();
}

int TcpTransport::start_shutdown() {
    shutdown_wanted_ = false;
    auto* req = new uv_shutdown_t;
    req->data = this;
    int rc = uv_shutdown(req, stream(), &TcpTransport::on_shutdown);
    if (rc != 0) delete req;
    return rc;
}

void TcpTransport::on_shutdown(uv_shutdown_t* req, int status) {
    auto* self = static_cast<TcpTransport*>(req->data);
    delete req;
    if (status == UV_ECANCELED || self->closing_) return;
    self->events_.on_transport_shutdown(status);
}

void TcpTransport::close() {
    if (closing_) return;
    closing_ = true;
    update_reading();
    env_.memory_waiters.remove(this);
    read_buffer_.reset();
    // Pending writes, a connect and a shutdown are cancelled (their callbacks see UV_ECANCELED) before on_close.
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &TcpTransport::on_close);
}

void TcpTransport::on_close(uv_handle_t* handle) {
    auto* self = static_cast<TcpTransport*>(handle->data);
    if (self->backlog_) self->env_.writes.recycle(std::move(self->backlog_));
    self->queued_ = 0;
    self->events_.on_transport_closed();  // may free this transport: nothing after it
}

}  // namespace lb::net
