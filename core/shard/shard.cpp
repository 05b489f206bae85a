#include "core/shard/shard.h"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "base/log.h"
#include "pool/balancer.h"

namespace lb::core {

namespace {

// How long a connection closed after an error response keeps discarding input, so the client reads the
// response instead of a reset.
constexpr uint64_t kLingerMs = 2000;

DeadlineQueue::Lanes deadline_lanes(const Config& config) {
    auto ms = [](Millis m) { return static_cast<uint64_t>(m.count()); };
    DeadlineQueue::Lanes lanes{};
    auto set = [&](Lane lane, uint64_t duration_ms, DeadlineQueue::Fire fire) {
        lanes[static_cast<size_t>(lane)] = {duration_ms, fire};
    };
    set(Lane::client_header, ms(config.timeouts.client_header), &ProxySession::on_header_deadline);
    set(Lane::client_keepalive, ms(config.timeouts.client_keepalive), &ProxySession::on_client_deadline);
    set(Lane::client_send, ms(config.timeouts.client_send), &ProxySession::on_client_deadline);
    set(Lane::connect, ms(config.timeouts.connect), &ProxySession::on_connect_deadline);
    set(Lane::upstream_response, ms(config.timeouts.upstream_response), &ProxySession::on_response_deadline);
    set(Lane::queue, ms(config.queue.timeout), &ProxySession::on_queue_deadline);
    set(Lane::linger, kLingerMs, &ProxySession::on_client_deadline);
    set(Lane::upstream_idle, ms(config.timeouts.upstream_keepalive), &UpstreamConnection::on_idle_deadline);
    set(Lane::drain_idle, ms(std::min(config.timeouts.drain_idle_grace, config.timeouts.drain)),
        &ProxySession::on_drain_idle_deadline);
    set(Lane::tunnel, ms(config.timeouts.tunnel), &ProxySession::on_tunnel_deadline);
    return lanes;
}

// Each shard its own sequence of request ids from a random seed, so that ids repeat neither across shards nor
// across restarts or lb instances. Should getrandom() fail, the clock, the process and the shard tell them apart.
uint64_t request_id_seed(unsigned index) {
    uint64_t seed = 0;
    if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
        seed = uv_hrtime() ^ (static_cast<uint64_t>(::getpid()) << 32) ^ (static_cast<uint64_t>(index) << 56);
    }
    return seed;
}

// Idle connections kept per backend: its pool's upstream.keepalive, else the top level's.
std::vector<size_t> idle_limits(const Config& config) {
    std::vector<size_t> limits;
    for (const BackendConfig& backend : config.backends) {
        const unsigned keep =
            config.pools.empty() ? config.upstream_keepalive : config.upstream_keepalive_of(backend.pool);
        limits.push_back(keep == kUnlimited ? SIZE_MAX : keep);
    }
    return limits;
}

http::HeadLimits request_limits(const Config& config) {
    return {config.limits.header_bytes, config.limits.header_count, config.limits.uri_bytes,
            config.limits.request_body_bytes};
}

}  // namespace

Shard::Shard(unsigned index, const ServerContext& context, std::vector<int> listen_fds)
    : index_(index),
      context_(context),
      pools_(context.config, *context.backends, index),
      idle_upstreams_(idle_limits(context.config)),
      budget_(context.buffer_memory_per_shard != 0 ? context.buffer_memory_per_shard : SIZE_MAX),
      buffers_(budget_),
      writes_(budget_),
      transport_env_{&loop_, buffers_, writes_, memory_waiters_, static_cast<net::LaterTurn&>(*this)},
      exchanges_(request_limits(context.config)),
      request_ids_(request_id_seed(index)),
      metrics_(context.backends->size(), context.config.metrics_enabled) {
    static_assert(std::is_same_v<pool::BackendId, metrics::BackendIndex>);
    if (uv_loop_init(&loop_) != 0) {
        for (int fd : listen_fds) ::close(fd);
        throw std::runtime_error("uv_loop_init failed");
    }
    budget_.set_listener(static_cast<net::MemoryBudget::Listener*>(this));
    try {
        make_tls_contexts();
    } catch (...) {
        for (int fd : listen_fds) ::close(fd);
        uv_loop_close(&loop_);
        throw;
    }
    deadlines_.emplace(&loop_, deadline_lanes(context.config));
    route_responses_ = std::make_unique<std::atomic<uint64_t>[]>(context.config.routes.size() * 5);
    // A pool's own queue.timeout gets a lane of its own length.
    queues_.resize(context.config.pools.size());
    slots_freed_.assign(context.config.pools.size(), 0);
    for (size_t p = 0; p < context.config.pools.size(); ++p) {
        pool_queue_lanes_.push_back(deadlines_->add_lane(
            {static_cast<uint64_t>(context.config.queue_of(p).timeout.count()), &ProxySession::on_queue_deadline}));
    }
    // A route's own timeouts get lanes of their own; routes with the same length share one.
    for (const RouteConfig& route : context.config.routes) {
        auto lane = [&](const std::optional<Millis>& own, Lane base, DeadlineQueue::Fire fire) {
            return own ? deadlines_->add_lane({static_cast<uint64_t>(own->count()), fire}) : static_cast<uint8_t>(base);
        };
        route_lanes_.push_back(
            {lane(route.connect_timeout, Lane::connect, &ProxySession::on_connect_deadline),
             lane(route.upstream_response_timeout, Lane::upstream_response, &ProxySession::on_response_deadline)});
    }
    if (context.access_log) {
        access_log_ = std::make_unique<access_log::WorkerLog>(context.access_log, context.config.access_log.format);
    }
    for (size_t l = 0; l < listen_fds.size(); ++l) {
        acceptors_.push_back(
            std::make_unique<Acceptor>(&loop_, listen_fds[l], l, static_cast<Acceptor::Delegate&>(*this)));
    }
    inbox_.init(&loop_, *this);
    uv_idle_init(&loop_, &later_);
    later_.data = this;
    uv_timer_init(&loop_, &drain_timer_);
    uv_timer_init(&loop_, &slow_start_timer_);
    slow_start_timer_.data = this;
    size_t backends = context.backends->size();
    health_generation_.assign(backends, 0);
    for (pool::BackendId id = 0; id < backends; ++id) {
        bool healthy = id >= context.initially_healthy.size() || context.initially_healthy[id];
        pools_.set_healthy(id, healthy);
        if (id < context.initial_admin.size()) pools_.set_admin(id, context.initial_admin[id]);
        metrics_.set_backend_up(id, healthy);
        metrics_.set_backend_weight(id, pools_.weight(id));
    }
    for (size_t p = 0; p < pools_.count(); ++p) {
        if (pools_.panicking(p)) log_panic_change(p);
    }
    drain_timer_.data = this;
    for (auto& acceptor : acceptors_) acceptor->start();
}

Shard::~Shard() {
    if (!stopped_) close_handles_before_run();
}

void Shard::close_handles_before_run() {
    for (auto& acceptor : acceptors_) acceptor->close();
    close_own_handles();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    stopped_ = true;
}

void Shard::run() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    stopped_ = true;
    closed_cleanly_ = uv_loop_close(&loop_) == 0;
    if (!closed_cleanly_) base::log(base::LogLevel::error, "shard {}: handles still open after the drain", index_);
}

void Shard::request_drain() {
    post([](Shard& shard) { shard.begin_drain(); });
}

http::HeadLimits Shard::response_limits() const {
    // A backend's head and trailers get the same bounds as a client's; its body is not limited.
    return {context_.config.limits.header_bytes, context_.config.limits.header_count, 0, 0};
}

bool Shard::may_accept() {
    bool room = context_.client_connections_per_shard == 0 || sessions_.size() < context_.client_connections_per_shard;
    if (room && !budget_.exhausted()) return true;
    metrics_.on_accept_paused();
    return false;
}

void Shard::on_accepted(size_t listener, int fd, const sockaddr_storage& peer) {
    accepted_.fetch_add(1, std::memory_order_relaxed);
    ProxySession::start(*this, listener, fd, peer);
}

void Shard::on_accept_exhausted(int error) {
    metrics_.on_accept_paused();
    note_resource_exhaustion(metrics::ResourceOp::accept, uv_translate_sys_error(error));
}

void Shard::note_resource_exhaustion(metrics::ResourceOp op, int uv_error) {
    metrics_.on_resource_exhaustion(op);
    uint64_t suppressed = 0;
    if (!resource_log_.allow(uv_now(&loop_), suppressed)) return;
    base::log(base::LogLevel::error,
              "shard {}: {} failed: {} ({} more since the last report); raise the open-file limit (LimitNOFILE) or "
              "lower limits.client_connections",
              index_, op == metrics::ResourceOp::accept ? "accepting a client" : "connecting to a backend",
              uv_strerror(uv_error), suppressed);
}

void Shard::log_backend_problem(pool::BackendId backend, std::string_view what, std::string_view detail) {
    uint64_t suppressed = 0;
    if (!context_.backend_logs[backend].allow(uv_now(&loop_), suppressed)) return;
    base::log(base::LogLevel::warn, "backend {} {}{}{} ({} more problems with it since the last report)",
              backend_name(backend), what, detail.empty() ? "" : ": ", detail, suppressed);
}

void Shard::add_session(ProxySession* session) { sessions_.push_front(session); }

void Shard::remove_session(ProxySession* session) {
    sessions_.remove(session);
    if (draining_) {
        finish_if_drained();
    } else if (std::any_of(acceptors_.begin(), acceptors_.end(), [](const auto& a) { return a->paused(); })) {
        run_later();  // a connection slot (and a descriptor) came free
    }
}

void Shard::make_tls_contexts() {
    // Each worker builds its own contexts from the same files: its own session cache, no shared lock. A
    // certificate that fails to load fails the start (or the reload, which keeps the running generation).
    const Config& config = context_.config;
    auto* observer = static_cast<net::HandshakeObserver*>(this);
    for (size_t l = 0; l < config.listeners.size(); ++l) {
        const auto& tls = config.listeners[l].tls;
        tls_listeners_.push_back(
            tls ? std::make_unique<net::TlsServerContext>(*tls, context_.ticket_secrets[l], observer, l) : nullptr);
        tls_counters_.push_back(tls ? std::make_unique<TlsListenerCounters>() : nullptr);
        if (tls && !tls->client_subject_header.empty()) client_subject_headers_.push_back(tls->client_subject_header);
    }
    tls_backend_counters_ = std::make_unique<TlsBackendCounters>(config.backends.size());
    for (size_t b = 0; b < config.backends.size(); ++b) {
        const BackendConfig& backend = config.backends[b];
        tls_backends_.push_back(backend.tls.enabled
                                    ? std::make_unique<net::TlsClientContext>(backend.tls, backend.endpoint.host,
                                                                              tls_backend_counters_.get(), b)
                                    : nullptr);
    }
}

std::unique_ptr<net::Transport> Shard::open_client_transport(size_t listener, net::TransportEvents& events, int fd) {
    if (const auto& tls = tls_listeners_[listener]) {
        SSL* ssl = tls->new_session();
        if (!ssl) {
            ::close(fd);
            return nullptr;
        }
        auto transport =
            std::make_unique<net::TlsTransport>(transport_env_, events, ssl, net::TlsTransport::Role::server, tls.get(),
                                                [](const void* context, const net::HandshakeReport& report) {
                                                    static_cast<const net::TlsServerContext*>(context)->report(report);
                                                });
        if (transport->open(fd) != 0) return nullptr;
        return transport;
    }
    auto transport = std::make_unique<net::TcpTransport>(transport_env_, events);
    if (transport->open(fd) != 0) return nullptr;
    return transport;
}

std::unique_ptr<net::Transport> Shard::make_upstream_transport(pool::BackendId backend, net::TransportEvents& events) {
    if (const auto& tls = tls_backends_[backend]) {
        SSL* ssl = tls->new_session();
        if (!ssl) return nullptr;
        return std::make_unique<net::TlsTransport>(transport_env_, events, ssl, net::TlsTransport::Role::client,
                                                   tls.get(), [](const void* context, const net::HandshakeReport& r) {
                                                       static_cast<const net::TlsClientContext*>(context)->report(r);
                                                   });
    }
    return std::make_unique<net::TcpTransport>(transport_env_, events);
}

void Shard::on_handshake(size_t listener, const net::HandshakeReport& report) {
    tls_counters_[listener]->record(report);
}

void Shard::defer(net::Transport& transport) {
    if (static_cast<base::IntrusiveList<net::Transport, net::LaterTag>::Hook&>(transport).linked()) return;
    deferred_.push_front(&transport);
    run_later();
}

void Shard::cancel(net::Transport& transport) { deferred_.remove(&transport); }

void Shard::on_memory_relief() {
    memory_relieved_ = true;
    run_later();
}

void Shard::run_later() {
    if (!stopping_) uv_idle_start(&later_, &Shard::on_later);
}

void Shard::on_later(uv_idle_t* idle) {
    auto* self = static_cast<Shard*>(idle->data);
    uv_idle_stop(idle);
    // One finished request frees at most one slot in its pool: wake that many of the pool's waiters, the oldest
    // first. A waiter that still finds every backend full waits again.
    for (size_t pool = 0; pool < self->queues_.size(); ++pool) {
        auto& queue = self->queues_[pool];
        for (size_t& freed = self->slots_freed_[pool]; freed > 0 && !queue.empty(); --freed) {
            queue.pop_back()->on_slot_free();
        }
        self->slots_freed_[pool] = 0;
    }
    // Transports holding input their owners asked for again.
    while (net::Transport* transport = self->deferred_.pop_back()) transport->on_later_turn();
    if (self->memory_relieved_) {
        self->memory_relieved_ = false;
        while (net::Transport* waiter = self->memory_waiters_.pop_front()) waiter->resume_after_memory();
    }
    if (!self->draining_) {
        for (auto& acceptor : self->acceptors_) acceptor->resume();
    }
}

void Shard::begin_drain() {
    if (draining_) return;
    draining_ = true;
    for (auto& acceptor : acceptors_) acceptor->close();
    const auto drain_ms = static_cast<uint64_t>(context_.config.timeouts.drain.count());
    uv_timer_start(&drain_timer_, &Shard::on_drain_timeout, drain_ms, 0);
    sessions_.for_each([](ProxySession* session) { session->begin_drain(); });
    finish_if_drained();
}

void Shard::on_drain_timeout(uv_timer_t* timer) {
    auto* self = static_cast<Shard*>(timer->data);
    base::log(base::LogLevel::warn, "shard {}: drain timeout, closing {} connections", self->index_,
              self->sessions_.size());
    // close() unlinks the session it is called on, and may close others (a woken queued request failing): take
    // the front each time rather than walking links that can change under the walk.
    while (!self->sessions_.empty()) self->sessions_.front()->close();
}

void Shard::finish_if_drained() {
    if (!sessions_.empty() || stopping_) return;
    stopping_ = true;
    idle_upstreams_.close_all();
    close_own_handles();
}

void Shard::close_own_handles() {
    uv_close(reinterpret_cast<uv_handle_t*>(&later_), nullptr);
    inbox_.close();
    deadlines_->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&slow_start_timer_), nullptr);
}

void Shard::finish_request(pool::BackendId backend, const pool::Result& result,
                           std::optional<health::PassiveOutcome> passive) {
    pools_.on_finish(backend, result);
    if (context_.health && passive) context_.health->report_passive(backend, *passive);
    if (const size_t pool = pools_.pool_of(backend); !queues_[pool].empty()) {
        ++slots_freed_[pool];
        run_later();
    }
}

// A list per pool, oldest at the back, bounded by the pool's queue.size.
bool Shard::enqueue(ProxySession* session) {
    const size_t pool = session->queued_pool();
    if (queues_[pool].size() >= context_.config.queue_of(pool).size) return false;
    queues_[pool].push_front(session);
    return true;
}

void Shard::dequeue(ProxySession* session) {
    queues_[session->queued_pool()].remove(session);  // nothing when it is no longer queued
}

void Shard::apply_health(pool::BackendId backend, bool healthy, uint64_t generation) {
    if (backend >= pools_.backend_count() || generation < health_generation_[backend]) return;
    health_generation_[backend] = generation;
    const size_t pool = pools_.pool_of(backend);
    bool was_panicking = pools_.panicking(pool);
    pools_.set_healthy(backend, healthy, std::chrono::milliseconds(uv_now(&loop_)));
    metrics_.set_backend_up(backend, healthy);
    metrics_.set_backend_weight(backend, pools_.weight(backend));
    if (pools_.panicking(pool) != was_panicking) log_panic_change(pool);
    if (pools_.ramping() && !uv_is_active(reinterpret_cast<uv_handle_t*>(&slow_start_timer_))) {
        uint64_t tick = std::max<uint64_t>(50, static_cast<uint64_t>(context_.config.health.slow_start.count()) / 20);
        uv_timer_start(&slow_start_timer_, &Shard::on_slow_start_tick, tick, tick);
    }
    if (healthy && !queues_[pool].empty()) {
        // A backend came back: requests waiting for a slot in its pool may find one there.
        slots_freed_[pool] = queues_[pool].size();
        run_later();
    }
    health_applied_ns_for_test_.store(uv_hrtime(), std::memory_order_release);
}

void Shard::apply_admin(pool::BackendId backend, const pool::AdminOverride& admin) {
    if (backend >= pools_.backend_count()) return;
    pools_.set_admin(backend, admin);
    metrics_.set_backend_weight(backend, pools_.weight(backend));
    if (admin.state == pool::AdminState::disabled) idle_upstreams_.close_backend(backend);
    if (const size_t pool = pools_.pool_of(backend); pool::takes_new_requests(admin.state) && !queues_[pool].empty()) {
        // Requests waiting for a slot in its pool may find one on the backend that is back or weighs more.
        slots_freed_[pool] = queues_[pool].size();
        run_later();
    }
}

void Shard::log_panic_change(size_t pool) const {
    if (index_ != 0) return;  // once per server, not once per shard
    // Named only among several pools, so that a config without `pools:` logs as it always did.
    const std::string where = pools_.count() > 1 ? fmt::format(" in pool '{}'", pools_.name(pool)) : std::string();
    if (pools_.panicking(pool)) {
        base::log(base::LogLevel::warn, "no backend is healthy{}: panic mode, using all of them", where);
    } else {
        base::log(base::LogLevel::info, "a backend is healthy again{}: leaving panic mode", where);
    }
}

void Shard::on_slow_start_tick(uv_timer_t* timer) {
    auto* self = static_cast<Shard*>(timer->data);
    bool ramping = self->pools_.advance_slow_start(std::chrono::milliseconds(uv_now(&self->loop_)));
    for (pool::BackendId id = 0; id < self->pools_.backend_count(); ++id) {
        self->metrics_.set_backend_weight(id, self->pools_.weight(id));
    }
    if (!ramping) uv_timer_stop(timer);
}

}  // namespace lb::core
