#include "core/shard.h"

#include <unistd.h>

#include <stdexcept>

#include "core/log.h"
#include "pool/round_robin.h"

namespace lb::core {

Shard::Shard(unsigned index, const ServerContext& context, int listen_fd)
    : index_(index),
      context_(context),
      listen_fd_(listen_fd),
      // Each shard starts its rotation at a different backend, so shards do not hit backend 0 together.
      pool_(context.backends, std::make_unique<pool::RoundRobin>(index)),
      upstream_pool_(context.backends->size(), context.config.upstream_keepalive,
                     static_cast<uint64_t>(context.config.timeouts.upstream_keepalive.count())),
      metrics_(context.backends->size()) {
    static_assert(std::is_same_v<pool::BackendId, metrics::BackendIndex>);
    if (uv_loop_init(&loop_) != 0) throw std::runtime_error("uv_loop_init failed");
    uv_tcp_init(&loop_, &listener_);
    inbox_.init(&loop_, *this);
    uv_timer_init(&loop_, &drain_timer_);
    listener_.data = this;
    drain_timer_.data = this;
    int rc = uv_tcp_open(&listener_, listen_fd_);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4096, &Shard::on_connection);
    if (rc != 0) throw std::runtime_error(fmt::format("shard {}: cannot listen: {}", index, uv_strerror(rc)));
}

Shard::~Shard() {
    if (!stopped_) {
        // run() never ran: close the handles here so the loop can be closed.
        uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
        inbox_.close();
        uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
        uv_loop_close(&loop_);
    }
}

void Shard::run() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    stopped_ = true;
    closed_cleanly_ = uv_loop_close(&loop_) == 0;
    if (!closed_cleanly_) log(LogLevel::error, "shard {}: handles still open after the drain", index_);
}

void Shard::request_drain() {
    post([](Shard& shard) { shard.begin_drain(); });
}

void Shard::on_connection(uv_stream_t* listener, int status) {
    auto* self = static_cast<Shard*>(listener->data);
    if (status < 0) {
        log(LogLevel::warn, "shard {}: accept failed: {}", self->index_, uv_strerror(status));
        return;
    }
    self->accepted_.fetch_add(1, std::memory_order_relaxed);
    ProxySession::accept(*self, listener);
}

void Shard::add_session(ProxySession* session) { sessions_.push_front(session); }

void Shard::remove_session(ProxySession* session) {
    sessions_.remove(session);
    if (draining_) finish_if_drained();
}

void Shard::begin_drain() {
    if (draining_) return;
    draining_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    uv_timer_start(&drain_timer_, &Shard::on_drain_timeout, context_.config.timeouts.drain.count(), 0);
    sessions_.for_each([](ProxySession* session) { session->begin_drain(); });
    finish_if_drained();
}

void Shard::on_drain_timeout(uv_timer_t* timer) {
    auto* self = static_cast<Shard*>(timer->data);
    log(LogLevel::warn, "shard {}: drain timeout, closing {} connections", self->index_, self->sessions_.size());
    self->sessions_.for_each([](ProxySession* session) { session->close(); });
}

void Shard::finish_if_drained() {
    if (!sessions_.empty() || stopping_) return;
    stopping_ = true;
    upstream_pool_.close_all();
    inbox_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
}

}  // namespace lb::core
