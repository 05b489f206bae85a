// One thread's share of the balancer: its own loop, its own SO_REUSEPORT listener, its own copy of the pool
// (balancer, per-backend state, idle upstream connections) and its own counters. Nothing on the request path
// touches another shard's memory or takes a lock; other threads reach a shard only through its uv_async inbox.
#pragma once

#include <uv.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "access_log/access_log_writer.h"
#include "base/intrusive_list.h"
#include "base/log_throttle.h"
#include "core/config/config.h"
#include "core/proxy/exchange.h"
#include "core/proxy/idle_upstreams.h"
#include "core/proxy/proxy_session.h"
#include "core/shard/acceptor.h"
#include "core/shard/listener.h"
#include "core/shard/shard_inbox.h"
#include "core/shard/shard_pools.h"
#include "core/shard/tls_counters.h"
#include "health/health_monitor.h"
#include "metrics/shard_metrics.h"
#include "net/buffers.h"
#include "net/tls_context.h"
#include "net/tls_transport.h"
#include "net/transport.h"
#include "pool/shard_pool.h"
#include "route/route_table.h"

namespace lb::core {

// What every shard shares, read-only, for the life of the server.
struct ServerContext {
    Config config;
    std::shared_ptr<const std::vector<pool::Backend>> backends;
    route::RouteTable routes;  // Config::routes' matches, in order
    std::vector<SocketAddress> backend_addresses;
    health::HealthMonitor* health = nullptr;  // passive reports go here; null when health checks are off
    std::vector<bool> initially_healthy;      // per backend, before the first health transition
    // Per backend, the admin API's overrides a reload carried over (empty: none); later changes arrive by inbox.
    std::vector<pool::AdminOverride> initial_admin;
    // Each shard's share of the process-wide limits (limits.client_connections, limits.buffer_memory).
    uint32_t client_connections_per_shard = 0;
    uint64_t buffer_memory_per_shard = 0;
    // Per listener: the session ticket secret its workers share (null for a plain listener).
    std::vector<std::shared_ptr<const net::TicketSecret>> ticket_secrets;
    // Shared by the shards, so that a backend failing for every worker is logged once a second, not once per
    // worker: per backend, and per outcome for the lines about what a client was answered.
    std::unique_ptr<base::SharedLogThrottle[]> backend_logs;
    std::unique_ptr<base::SharedLogThrottle[]> answer_logs;
    // The access log's writer thread (null when access_log is off): each shard pushes its lines to a ring of its
    // own that this writer empties. Shared with the next generation when a reload keeps the path.
    std::shared_ptr<access_log::Writer> access_log;
};

class Shard final : private Acceptor::Delegate,
                    private net::MemoryBudget::Listener,
                    private net::LaterTurn,
                    private net::HandshakeObserver {
  public:
    // `listen_fds` are bound, listening sockets, one per configured listener, that this shard takes ownership of
    // (they are closed if this throws).
    Shard(unsigned index, const ServerContext& context, std::vector<int> listen_fds);
    ~Shard();
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;

    // The thread body: runs the loop until the shard has drained, then closes it. Call once.
    void run();
    // Any thread: stop accepting, finish in-flight requests (up to the drain timeout), then stop.
    void request_drain();
    // Owner loop only: the same, at once. Closes the listener before it returns.
    void begin_drain();
    // Any thread: runs `task` on this shard's loop. False once the shard has stopped.
    bool post(ShardInbox::Task task) { return inbox_.post(std::move(task)); }

    // Owner loop only.
    uv_loop_t* loop() { return &loop_; }
    const Config& config() const { return context_.config; }
    ShardPools& pools() { return pools_; }
    const route::RouteTable& routes() const { return context_.routes; }
    IdleUpstreams& idle_upstreams() { return idle_upstreams_; }
    net::BufferPool& buffers() { return buffers_; }
    net::WritePool& writes() { return writes_; }
    net::TransportEnv& transport_env() { return transport_env_; }
    // The transport for a connection accepted on `listener` (TLS or plain), or null when it could not be set up
    // (the descriptor is closed then).
    std::unique_ptr<net::Transport> open_client_transport(size_t listener, net::TransportEvents& events, int fd);
    // The transport for a new connection to `backend` (TLS when the backend says so), or null when a TLS
    // session could not be made.
    std::unique_ptr<net::Transport> make_upstream_transport(pool::BackendId backend, net::TransportEvents& events);
    bool listener_is_tls(size_t listener) const { return tls_listeners_[listener] != nullptr; }
    const net::TlsServerContext* tls_listener(size_t listener) const { return tls_listeners_[listener].get(); }
    // Any thread: a TLS listener's handshake counts in this shard (null for a plain listener).
    const TlsListenerCounters* tls_counters(size_t listener) const { return tls_counters_[listener].get(); }
    // Every listener's client_subject_header: lb's alone to set, so dropped from what any client sends.
    const std::vector<std::string>& client_subject_headers() const { return client_subject_headers_; }
    // Any thread: the handshakes of this shard's connections to TLS backends.
    const TlsBackendCounters& tls_backend_counters() const { return *tls_backend_counters_; }
    ExchangePool& exchanges() { return exchanges_; }
    http::RequestIdGenerator& request_ids() { return request_ids_; }
    http::HeadLimits response_limits() const;
    DeadlineQueue& deadlines() { return *deadlines_; }
    // The lane for a connect or upstream_response deadline of a request on `route` (its own timeout, or the
    // fixed lane).
    uint8_t queue_lane(size_t pool) const { return pool_queue_lanes_[pool]; }
    uint8_t route_lane(const RouteConfig& route, Lane lane) const {
        const RouteLanes& lanes = route_lanes_[route_index(route)];
        return lane == Lane::connect ? lanes.connect : lanes.upstream_response;
    }
    metrics::ShardMetrics& metrics() { return metrics_; }
    // This shard's side of the access log; null when access_log is off.
    access_log::WorkerLog* access_log() { return access_log_.get(); }
    // Any thread may read it (single-writer atomics); only this shard writes it.
    const metrics::ShardMetrics& metrics() const { return metrics_; }
    const sockaddr* backend_address(pool::BackendId id) const { return context_.backend_addresses[id].get(); }
    const std::string& backend_name(pool::BackendId id) const { return pools_.backend(id).name; }
    unsigned index() const { return index_; }
    // The listening socket, for a successor to duplicate; valid until the drain begins.
    int listen_fd(size_t listener) const { return acceptors_[listener]->fd(); }
    bool draining() const { return draining_; }
    void add_session(ProxySession* session);
    void remove_session(ProxySession* session);

    // A request to `backend` finished: the pool learns the outcome, the health loop hears what passive checks
    // count (if anything), and on a later loop turn a request waiting for a connection slot may go.
    void finish_request(pool::BackendId backend, const pool::Result& result,
                        std::optional<health::PassiveOutcome> passive);
    // lb itself ran out of descriptors or memory (a libuv error): counted, and logged at most once a second.
    void note_resource_exhaustion(metrics::ResourceOp op, int uv_error);
    // A backend misbehaved on a request: logged at most once a second per backend for the whole process, with a
    // count of the rest.
    void log_backend_problem(pool::BackendId backend, std::string_view what, std::string_view detail);
    // The throttle for lines saying lb answered a client with an error for outcome number `outcome`: at most one
    // a second per outcome for the process.
    base::SharedLogThrottle& answer_log(size_t outcome) { return context_.answer_logs[outcome]; }
    // Applies a health transition decided on the health loop (through the inbox) to this shard's pool, whose
    // rules (panic mode, slow start) do the rest. Transitions older than one already applied to the backend are
    // dropped.
    void apply_health(pool::BackendId backend, bool healthy, uint64_t generation);
    // Owner loop: the admin API's decision about `backend`. Disabling closes its idle keep-alive connections.
    void apply_admin(pool::BackendId backend, const pool::AdminOverride& admin);
    // Any thread: uv_hrtime() when this shard last applied a health transition (0: never), for the test that
    // measures the broadcast's latency.
    uint64_t health_applied_ns_for_test() const { return health_applied_ns_for_test_.load(std::memory_order_acquire); }

    // The wait queue for requests that found every eligible backend at its connection limit.
    bool enqueue(ProxySession* session);  // false when the queue is full
    void dequeue(ProxySession* session);
    // Any thread: bytes held in read buffers and queued writes.
    uint64_t buffer_bytes() const { return budget_.used(); }

    // Responses sent to clients for requests a route chose, by status class (1xx to 5xx): written by this shard,
    // read by any thread at scrape time.
    void count_route_response(const RouteConfig& route, unsigned status) {
        const size_t code_class = std::min<size_t>(std::max<size_t>(status / 100, 1), 5) - 1;
        auto& count = route_responses_[route_index(route) * 5 + code_class];
        count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    uint64_t route_responses(size_t route, size_t code_class) const {
        return route_responses_[route * 5 + code_class].load(std::memory_order_relaxed);
    }

    // Any thread: counters for tests and operators (each written only by this shard).
    uint64_t connections_accepted() const { return accepted_.load(std::memory_order_relaxed); }
    uint64_t idle_upstream_connections() const { return idle_upstreams_.idle_total(); }
    // After run(): whether the loop closed with no handle left open.
    bool closed_cleanly() const { return closed_cleanly_; }

  private:
    // Acceptor::Delegate
    bool may_accept() override;
    void on_accepted(size_t listener, int fd, const sockaddr_storage& peer) override;
    void on_accept_exhausted(int error) override;
    // net::MemoryBudget::Listener
    void on_memory_relief() override;
    // net::LaterTurn
    void defer(net::Transport& transport) override;
    void cancel(net::Transport& transport) override;
    // net::HandshakeObserver (index: the listener's)
    void on_handshake(size_t listener, const net::HandshakeReport& report) override;

    // Work that must not run nested inside another connection's callback (waking a queued request, resuming
    // readers and the acceptor) runs on a later loop turn, from an idle handle.
    void run_later();
    static void on_later(uv_idle_t* idle);
    static void on_drain_timeout(uv_timer_t* timer);
    void close_handles_before_run();
    void make_tls_contexts();
    // Every handle the shard itself owns but the acceptor's (closed when the drain begins).
    void close_own_handles();
    void finish_if_drained();
    void log_panic_change(size_t pool) const;
    // Slow start's clock: ticks while the pool has a backend ramping up.
    static void on_slow_start_tick(uv_timer_t* timer);

    unsigned index_;
    const ServerContext& context_;
    uv_loop_t loop_;
    std::vector<std::unique_ptr<Acceptor>> acceptors_;  // one per listener, made once the loop exists
    ShardInbox inbox_;
    uv_idle_t later_;
    uv_timer_t drain_timer_;
    uv_timer_t slow_start_timer_;
    ShardPools pools_;
    IdleUpstreams idle_upstreams_;
    net::MemoryBudget budget_;
    net::BufferPool buffers_;
    net::WritePool writes_;
    net::MemoryWaiters memory_waiters_;
    base::IntrusiveList<net::Transport, net::LaterTag> deferred_;  // transports waiting for a later turn
    net::TransportEnv transport_env_;
    std::vector<std::unique_ptr<net::TlsServerContext>> tls_listeners_;  // per listener; null when plain
    std::vector<std::unique_ptr<TlsListenerCounters>> tls_counters_;     // per listener; null when plain
    std::unique_ptr<TlsBackendCounters> tls_backend_counters_;           // outlives the contexts reporting to it
    std::vector<std::unique_ptr<net::TlsClientContext>> tls_backends_;   // per backend; null when plain
    std::vector<std::string> client_subject_headers_;
    ExchangePool exchanges_;
    http::RequestIdGenerator request_ids_;
    std::optional<DeadlineQueue> deadlines_;  // made once the loop exists
    struct RouteLanes {
        uint8_t connect;
        uint8_t upstream_response;
    };
    std::vector<RouteLanes> route_lanes_;                       // per route
    std::unique_ptr<std::atomic<uint64_t>[]> route_responses_;  // per route, 5 status classes each
    size_t route_index(const RouteConfig& route) const {
        return static_cast<size_t>(&route - context_.config.routes.data());
    }
    metrics::ShardMetrics metrics_;
    std::unique_ptr<access_log::WorkerLog> access_log_;
    base::IntrusiveList<ProxySession> sessions_;
    // Per pool: the requests waiting for a connection slot (oldest at the back), how many of them to wake on the
    // next turn, and the lane of the pool's queue.timeout.
    std::vector<base::IntrusiveList<ProxySession, QueueTag>> queues_;
    std::vector<size_t> slots_freed_;
    std::vector<uint8_t> pool_queue_lanes_;
    bool memory_relieved_ = false;  // memory waiters and the acceptor to resume on the next turn
    base::LogThrottle resource_log_;
    std::vector<uint64_t> health_generation_;  // of the last transition applied, per backend
    bool draining_ = false;
    bool stopping_ = false;  // the last handles are closing
    bool stopped_ = false;
    bool closed_cleanly_ = false;
    std::atomic<uint64_t> accepted_{0};
    std::atomic<uint64_t> health_applied_ns_for_test_{0};
};

}  // namespace lb::core
