#include "core/shard/shard.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/runtime/log.h"
#include "pool/balancer.h"

namespace lb::core {

namespace {

// How long a connection closed after an error response keeps discarding input, so the client reads the
// response instead of a reset.
constexpr uint64_t kLingerMs = 2000;

// How long a drain waits for the first request of a connection that has sent nothing yet. One accepted just
// before the listener closed usually has its request on the way, and a second covers a round trip anywhere; a
// preconnected socket that stays silent does not hold the drain for the whole header timeout.
constexpr uint64_t kFirstRequestGraceMs = 1000;

DeadlineQueue::Durations lane_durations(const Config& config) {
    DeadlineQueue::Durations d{};
    auto ms = [](Millis m) { return static_cast<uint64_t>(m.count()); };
    d[static_cast<size_t>(Lane::client_header)] = ms(config.timeouts.client_header);
    d[static_cast<size_t>(Lane::client_keepalive)] = ms(config.timeouts.client_keepalive);
    d[static_cast<size_t>(Lane::connect)] = ms(config.timeouts.connect);
    d[static_cast<size_t>(Lane::upstream_response)] = ms(config.timeouts.upstream_response);
    d[static_cast<size_t>(Lane::queue)] = ms(config.queue.timeout);
    d[static_cast<size_t>(Lane::linger)] = kLingerMs;
    return d;
}

}  // namespace

Shard::Shard(unsigned index, const ServerContext& context, int listen_fd)
    : index_(index),
      context_(context),
      listen_fd_(listen_fd),
      // Each shard seeds its balancer differently (rotation start, random choices), so shards do not all hit
      // backend 0 together after a start or a change.
      pool_(context.backends, pool::make_balancer(context.config.balancer, *context.backends, index),
            pool::ShardPoolOptions{.seed = index,
                                   .shard_index = index,
                                   .shard_count = context.config.workers,
                                   .panic = context.config.health.panic,
                                   .slow_start = context.config.health.slow_start}),
      idle_upstreams_(context.backends->size(), context.config.upstream_keepalive,
                      static_cast<uint64_t>(context.config.timeouts.upstream_keepalive.count())),
      metrics_(context.backends->size(), context.config.metrics_enabled) {
    static_assert(std::is_same_v<pool::BackendId, metrics::BackendIndex>);
    if (uv_loop_init(&loop_) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error("uv_loop_init failed");
    }
    deadlines_.emplace(&loop_, lane_durations(context.config), &ProxySession::on_deadline);
    uv_tcp_init(&loop_, &listener_);
    inbox_.init(&loop_, *this);
    uv_timer_init(&loop_, &drain_timer_);
    uv_timer_init(&loop_, &first_request_grace_timer_);
    uv_timer_init(&loop_, &slow_start_timer_);
    slow_start_timer_.data = this;
    picks_by_hash_key_ = context.config.balancer.algorithm == "consistent_hash";
    size_t backends = context.backends->size();
    health_generation_.assign(backends, 0);
    for (pool::BackendId id = 0; id < backends; ++id) {
        bool healthy = id >= context.initially_healthy.size() || context.initially_healthy[id];
        pool_.set_healthy(id, healthy);
        metrics_.set_backend_up(id, healthy);
        metrics_.set_backend_weight(id, pool_.weight(id));
    }
    if (pool_.panicking()) log_panic_change();
    listener_.data = this;
    drain_timer_.data = this;
    first_request_grace_timer_.data = this;
    int rc = uv_tcp_open(&listener_, listen_fd_);
    if (rc != 0) ::close(listen_fd_);  // not the handle's yet
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 4096, &Shard::on_connection);
    if (rc != 0) {
        // No destructor runs for a constructor that throws: free the loop here.
        close_handles_before_run();
        throw std::runtime_error(fmt::format("shard {}: cannot listen: {}", index, uv_strerror(rc)));
    }
}

Shard::~Shard() {
    if (!stopped_) close_handles_before_run();
}

void Shard::close_handles_before_run() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener_), nullptr);
    inbox_.close();
    deadlines_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&first_request_grace_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&slow_start_timer_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    stopped_ = true;
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
    const auto drain_ms = static_cast<uint64_t>(context_.config.timeouts.drain.count());
    const auto header_ms = static_cast<uint64_t>(context_.config.timeouts.client_header.count());
    uv_timer_start(&drain_timer_, &Shard::on_drain_timeout, drain_ms, 0);
    uv_timer_start(&first_request_grace_timer_, &Shard::on_first_request_grace_end,
                   std::min({kFirstRequestGraceMs, header_ms, drain_ms}), 0);
    sessions_.for_each([](ProxySession* session) { session->begin_drain(); });
    finish_if_drained();
}

void Shard::on_first_request_grace_end(uv_timer_t* timer) {
    auto* self = static_cast<Shard*>(timer->data);
    // Collected first: close() unlinks the session from the list being walked.
    std::vector<ProxySession*> silent;
    self->sessions_.for_each([&](ProxySession* session) {
        if (session->awaiting_first_request()) silent.push_back(session);
    });
    for (ProxySession* session : silent) session->close();
}

void Shard::on_drain_timeout(uv_timer_t* timer) {
    auto* self = static_cast<Shard*>(timer->data);
    log(LogLevel::warn, "shard {}: drain timeout, closing {} connections", self->index_, self->sessions_.size());
    // close() unlinks the session it is called on, and may close others (a woken queued request failing): take
    // the front each time rather than walking links that can change under the walk.
    while (!self->sessions_.empty()) self->sessions_.front()->close();
}

void Shard::finish_if_drained() {
    if (!sessions_.empty() || stopping_) return;
    stopping_ = true;
    idle_upstreams_.close_all();
    inbox_.close();
    deadlines_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&first_request_grace_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&slow_start_timer_), nullptr);
}

void Shard::finish_request(pool::BackendId backend, const pool::Result& result, int status) {
    pool_.on_finish(backend, result);
    if (context_.health) {
        using health::PassiveOutcome;
        switch (result.outcome) {
            case pool::Outcome::success:
                context_.health->report_passive(backend,
                                                status >= 500 ? PassiveOutcome::status_5xx : PassiveOutcome::success);
                break;
            case pool::Outcome::connect_failure:
                context_.health->report_passive(backend, PassiveOutcome::connect_failure);
                break;
            case pool::Outcome::timeout:
                context_.health->report_passive(backend, PassiveOutcome::timeout);
                break;
            case pool::Outcome::reset:
                context_.health->report_passive(backend, PassiveOutcome::reset);
                break;
            case pool::Outcome::cancelled:
                break;  // says nothing about the backend
        }
    }
    wake_queued();
}

bool Shard::enqueue(ProxySession* session) {
    if (queue_.size() >= context_.config.queue.size) return false;
    queue_.push_back(session);
    return true;
}

void Shard::dequeue(ProxySession* session) { queue_.remove(session); }

void Shard::wake_queued() {
    // One finished request frees at most one slot: wake one waiter, the oldest.
    if (queue_.empty()) return;
    ProxySession* next = queue_.front();
    queue_.pop_front();
    next->on_slot_free();
}

void Shard::apply_health(pool::BackendId backend, bool healthy, uint64_t generation) {
    if (backend >= pool_.size() || generation < health_generation_[backend]) return;
    health_generation_[backend] = generation;
    bool was_panicking = pool_.panicking();
    pool_.set_healthy(backend, healthy, std::chrono::milliseconds(uv_now(&loop_)));
    metrics_.set_backend_up(backend, healthy);
    metrics_.set_backend_weight(backend, pool_.weight(backend));
    if (pool_.panicking() != was_panicking) log_panic_change();
    if (pool_.ramping() && !uv_is_active(reinterpret_cast<uv_handle_t*>(&slow_start_timer_))) {
        uint64_t tick = std::max<uint64_t>(50, static_cast<uint64_t>(context_.config.health.slow_start.count()) / 20);
        uv_timer_start(&slow_start_timer_, &Shard::on_slow_start_tick, tick, tick);
    }
    if (healthy) {
        // A backend came back: requests waiting for a slot may find one there.
        while (!queue_.empty() && pool_.eligible(backend)) {
            size_t before = queue_.size();
            wake_queued();
            if (queue_.size() >= before) break;
        }
    }
    health_applied_ns_for_test_.store(uv_hrtime(), std::memory_order_release);
}

void Shard::log_panic_change() const {
    if (index_ != 0) return;  // once per server, not once per shard
    if (pool_.panicking()) {
        log(LogLevel::warn, "no backend is healthy: panic mode, using all of them");
    } else {
        log(LogLevel::info, "a backend is healthy again: leaving panic mode");
    }
}

void Shard::on_slow_start_tick(uv_timer_t* timer) {
    auto* self = static_cast<Shard*>(timer->data);
    bool ramping = self->pool_.advance_slow_start(std::chrono::milliseconds(uv_now(&self->loop_)));
    for (pool::BackendId id = 0; id < self->pool_.size(); ++id) {
        self->metrics_.set_backend_weight(id, self->pool_.weight(id));
    }
    if (!ramping) uv_timer_stop(timer);
}

}  // namespace lb::core
