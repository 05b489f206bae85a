#include "core/shard/acceptor.h"

#include <unistd.h>

#include <cerrno>

namespace lb::core {

namespace {

// Connections taken per readiness event before the loop serves others; the socket stays readable if more wait.
constexpr int kAcceptBatch = 64;

// How long to stop accepting after running out of descriptors (nginx waits 500 ms): long enough not to spin, short
// enough that service resumes promptly once descriptors are back. A closing connection ends the wait sooner.
constexpr uint64_t kExhaustedRetryMs = 100;

}  // namespace

Acceptor::Acceptor(uv_loop_t* loop, int listen_fd, size_t listener, Delegate& delegate)
    : delegate_(delegate), listener_(listener), fd_(listen_fd) {
    uv_poll_init_socket(loop, &poll_, fd_);
    uv_timer_init(loop, &retry_timer_);
    poll_.data = this;
    retry_timer_.data = this;
}

void Acceptor::start() {
    if (closing_ || polling_) return;
    polling_ = uv_poll_start(&poll_, UV_READABLE, &Acceptor::on_readable) == 0;
}

void Acceptor::pause() {
    if (polling_) uv_poll_stop(&poll_);
    polling_ = false;
    paused_ = true;
}

void Acceptor::resume() {
    if (!paused_ || closing_) return;
    paused_ = false;
    uv_timer_stop(&retry_timer_);
    start();
}

void Acceptor::on_readable(uv_poll_t* poll, int status, int) {
    auto* self = static_cast<Acceptor*>(poll->data);
    if (status < 0) return;
    self->accept_some();
}

void Acceptor::accept_some() {
    for (int i = 0; i < kAcceptBatch && !closing_; ++i) {
        if (!delegate_.may_accept()) {
            pause();
            return;
        }
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            delegate_.on_accepted(listener_, fd, peer);
            continue;
        }
        switch (errno) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
                continue;  // that connection is gone; others may wait
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                delegate_.on_accept_exhausted(errno);
                pause();
                uv_timer_start(&retry_timer_, &Acceptor::on_retry, kExhaustedRetryMs, 0);
                return;
            default:
                return;  // an unexpected error: wait for the next readiness rather than spin
        }
    }
}

void Acceptor::on_retry(uv_timer_t* timer) { static_cast<Acceptor*>(timer->data)->resume(); }

void Acceptor::close() {
    if (closing_) return;
    closing_ = true;
    polling_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &Acceptor::on_close);
    uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), &Acceptor::on_close);
}

void Acceptor::on_close(uv_handle_t* handle) {
    auto* self = static_cast<Acceptor*>(handle->data);
    // The socket outlives its poll handle: closing a descriptor that epoll still watches is undefined in libuv.
    if (--self->open_handles_ == 0 && self->fd_ >= 0) {
        ::close(self->fd_);
        self->fd_ = -1;
    }
}

}  // namespace lb::core
