// The balancer as a whole: resolves the config's addresses, binds one SO_REUSEPORT listener per shard (or one
// Unix domain socket that every shard shares) and runs each shard on its own thread. Used by main and, in-process, by
// the integration tests.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/admin/admin_api.h"
#include "core/config/config.h"
#include "core/shard/listener.h"
#include "health/health_monitor.h"
#include "metrics/exposition.h"
#include "metrics/snapshot.h"

namespace lb::core {

class Shard;
class AdminServer;
struct BackendStatus;
struct ServerContext;

class Server final : private BackendControl {
  public:
    explicit Server(Config config);
    ~Server();  // shutdown() if still running
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds every listener and starts the shard threads; connections are accepted when it returns.
    // With a running `predecessor` (a reload), listeners on an unchanged address are taken over from it rather
    // than bound anew; the predecessor keeps serving until it is retired. Throws std::runtime_error (address in
    // use, unresolvable backend, ...), leaving the predecessor untouched.
    void start(const Server* predecessor = nullptr);
    // Starts a graceful drain on every shard and returns at once. Safe from any thread.
    void request_shutdown();
    // Hands over to a successor started from this one: closes the admin listener and every shard's listener
    // before it returns (from then on only the successor accepts), and drains like request_shutdown().
    void retire();
    // Waits for every shard to finish draining.
    void wait();
    // Any thread: the access log's file is opened again by its path before the next write (SIGUSR1, after
    // logrotate moved it). Nothing when access_log is off.
    void reopen_access_log();
    // request_shutdown() then wait().
    void shutdown();

    // The port of the first TCP listener (0 when every listener is a Unix domain socket), and of listener `l`
    // (0 for a Unix socket), as bound: with port 0 in lb.yaml the kernel picks them.
    uint16_t port() const;
    uint16_t port(size_t listener) const { return ports_[listener]; }
    // limits.client_connections as applied: each worker's share times the workers.
    uint64_t client_connection_limit() const;
    const Config& config() const;
    // The admin listener's port (0 when admin is disabled).
    uint16_t admin_port() const;
    // The Prometheus text of every shard's metrics merged, and the /status JSON. Any thread.
    std::string render_metrics() const;
    std::string render_status() const;
    size_t shard_count() const { return shards_.size(); }
    uint64_t connections_accepted(size_t shard) const;
    uint64_t idle_upstream_connections() const;
    // Any thread: memory held in read buffers and queued writes, over all shards.
    uint64_t buffer_bytes() const;
    // Null when health checks are off.
    health::HealthMonitor* health_monitor() { return health_.get(); }
    // Any thread: uv_hrtime() of the last transition the health loop broadcast (0: none yet), and when `shard`
    // last applied one (0: never). For the test that measures the broadcast's latency.
    uint64_t last_health_transition_ns_for_test() const {
        return last_transition_ns_for_test_.load(std::memory_order_acquire);
    }
    uint64_t health_applied_ns_for_test(size_t shard) const;
    // After wait(): whether every shard's loop closed with no handle left open.
    bool closed_cleanly() const;

    // Runs `task` on every shard's loop and waits until all have run it. For tests and control-plane updates
    // that must be in effect when it returns.
    void run_on_every_shard(const std::function<void(Shard&)>& task);

    // Any thread: the admin API's overrides, per backend (server_admin.cpp).
    std::vector<pool::AdminOverride> admin_overrides() const;

  private:
    void start_health_monitor(const Server* predecessor);
    // The access log's writer: the predecessor's when it writes to the same path, else a new one (which opens
    // the file, and throws std::runtime_error when it cannot).
    void start_access_log(const Server* predecessor);
    // Which of the predecessor's listeners each of ours takes over (its sockets, its ticket secret), if any.
    void match_inherited_listeners(const Server* predecessor);
    void make_ticket_secrets(const Server* predecessor);
    // For listener `listener`, one listening descriptor per shard, taken over from `predecessor` where it listens
    // on the same address. Throw std::runtime_error, with nothing left open.
    std::vector<int> open_tcp_listeners(size_t listener, const Server* predecessor);
    std::vector<int> open_unix_listeners(size_t listener, const Server* predecessor);
    void broadcast_health(const health::Transition& transition);
    // The admin API (BackendControl, on the admin thread) and its reload carry-over, in server_admin.cpp.
    void carry_over_admin(const Server* predecessor);
    std::string backends_json() const override;
    std::optional<std::string> set_admin_state(std::string_view name, pool::AdminState state) override;
    std::optional<std::string> set_weight(std::string_view name, uint32_t weight) override;
    // Sets backend `id`'s override and returns once every shard has applied it; logs one line when it changed.
    void change_admin(size_t id, const pool::AdminOverride& admin);
    std::string backend_json(size_t id) const;  // one backend's object, as /backends shows it
    // Backend `id` as /status and /backends show it.
    BackendStatus backend_status(size_t id, const metrics::Snapshot& snapshot,
                                 const std::vector<health::BackendHealth>& health) const;
    std::vector<metrics::ExtraFamily> admin_metric_families() const;

    std::unique_ptr<ServerContext> context_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::vector<std::thread> threads_;
    std::vector<std::string> backend_names_;
    double start_time_seconds_ = 0;
    // For /status: when the first generation started (a reload carries it over) and which generation this is.
    std::chrono::steady_clock::time_point process_started_;
    unsigned generation_ = 1;
    std::unique_ptr<AdminServer> admin_;
    std::unique_ptr<health::HealthMonitor> health_;
    std::atomic<uint64_t> last_transition_ns_for_test_{0};
    std::vector<uint16_t> ports_;                   // per listener, as bound
    std::vector<std::optional<size_t>> inherited_;  // per listener: the predecessor's listener taken over
    // Per listener, set for a Unix domain socket: shared with the successors that take the socket over, and
    // removed from the file system when the last generation using it lets go (retire or shutdown).
    std::vector<std::shared_ptr<UnixSocketFile>> socket_files_;
    std::atomic<bool> shutdown_requested_{false};
    mutable std::mutex admin_mutex_;
    std::vector<pool::AdminOverride> admin_overrides_;  // per backend; guarded by admin_mutex_
};

}  // namespace lb::core
