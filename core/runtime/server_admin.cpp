// The Server's side of the admin API: the overrides it keeps per backend, how a change reaches every shard, how a
// reload carries them over, and how they show in /status, /backends and /metrics. The rules themselves are
// pool/admin_state.h's.
#include <fmt/format.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "base/log.h"
#include "core/admin/status_page.h"
#include "core/runtime/server.h"
#include "core/shard/shard.h"
#include "metrics/summary.h"

namespace lb::core {
namespace {

// Counts the shards that still have to apply a change. Each posted task holds a share; a share is released when
// the task has run or when a closing inbox drops it unrun (a shard that stopped has nothing to apply), so the
// admin thread never waits on a task that will not run.
class PendingShards {
  public:
    explicit PendingShards(size_t count) : remaining_(count) {}
    void done() {
        std::lock_guard lock(mutex_);
        if (--remaining_ == 0) all_done_.notify_all();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        all_done_.wait(lock, [&] { return remaining_ == 0; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable all_done_;
    size_t remaining_;
};

struct ShardShare {
    explicit ShardShare(std::shared_ptr<PendingShards> pending) : pending(std::move(pending)) {}
    ~ShardShare() { pending->done(); }
    ShardShare(const ShardShare&) = delete;
    ShardShare& operator=(const ShardShare&) = delete;
    std::shared_ptr<PendingShards> pending;
};

}  // namespace

void Server::carry_over_admin(const Server* predecessor) {
    const Config& config = context_->config;
    std::vector<pool::AdminOverride> overrides(config.backends.size());
    if (predecessor) {
        // By host:port, as health is: a drained backend stays drained. A weight set through the API is kept only
        // while lb.yaml still gives that backend the weight it had; an edited weight in the file wins.
        std::vector<pool::AdminOverride> previous = predecessor->admin_overrides();
        const auto& old_backends = predecessor->config().backends;
        for (size_t i = 0; i < config.backends.size(); ++i) {
            for (size_t j = 0; j < old_backends.size() && j < previous.size(); ++j) {
                if (old_backends[j].address != config.backends[i].address) continue;
                overrides[i] = previous[j];
                if (old_backends[j].weight != config.backends[i].weight) overrides[i].weight.reset();
                break;
            }
        }
    }
    context_->initial_admin = overrides;
    std::lock_guard lock(admin_mutex_);
    admin_overrides_ = std::move(overrides);
}

std::vector<pool::AdminOverride> Server::admin_overrides() const {
    std::lock_guard lock(admin_mutex_);
    return admin_overrides_;
}

std::optional<std::string> Server::set_admin_state(std::string_view name, pool::AdminState state) {
    for (size_t id = 0; id < backend_names_.size(); ++id) {
        if (backend_names_[id] != name) continue;
        pool::AdminOverride admin = admin_overrides()[id];
        admin.state = state;
        change_admin(id, admin);
        return backend_json(id);
    }
    return std::nullopt;
}

std::optional<std::string> Server::set_weight(std::string_view name, uint32_t weight) {
    for (size_t id = 0; id < backend_names_.size(); ++id) {
        if (backend_names_[id] != name) continue;
        pool::AdminOverride admin = admin_overrides()[id];
        // Back to the configured weight: no override, so that a later reload with a new weight in lb.yaml applies.
        admin.weight = weight == context_->config.backends[id].weight ? std::nullopt : std::optional(weight);
        change_admin(id, admin);
        return backend_json(id);
    }
    return std::nullopt;
}

void Server::change_admin(size_t id, const pool::AdminOverride& admin) {
    pool::AdminOverride before;
    {
        std::lock_guard lock(admin_mutex_);
        before = admin_overrides_[id];
        if (before == admin) return;
        admin_overrides_[id] = admin;
    }
    const uint32_t configured = context_->config.backends[id].weight;
    if (before.state != admin.state) {
        base::log(base::LogLevel::info, "admin API: backend {} is now {} (was {})", backend_names_[id],
                  pool::admin_state_name(admin.state), pool::admin_state_name(before.state));
        // A drained backend no longer counts as another one its pool could fall back on.
        if (health_) health_->set_takes_new_requests(id, pool::takes_new_requests(admin.state));
    }
    if (before.weight != admin.weight) {
        base::log(base::LogLevel::info, "admin API: backend {} weight {} (was {}, {} in lb.yaml)", backend_names_[id],
                  pool::base_weight(configured, admin), pool::base_weight(configured, before), configured);
    }
    // Through each shard's inbox, as health transitions are; returns once all have applied it, so the answer shows
    // the new state.
    auto pending = std::make_shared<PendingShards>(shards_.size());
    for (auto& shard : shards_) {
        auto share = std::make_shared<ShardShare>(pending);
        shard->post([id, admin, share = std::move(share)](Shard& s) {
            s.apply_admin(static_cast<pool::BackendId>(id), admin);
        });  // refused or dropped unrun: the task, and its share, are released at once
    }
    pending->wait();
}

BackendStatus Server::backend_status(size_t id, const metrics::Snapshot& snapshot,
                                     const std::vector<health::BackendHealth>& health) const {
    const auto& b = snapshot.backends[id];
    BackendStatus status;
    status.name = backend_names_[id];
    status.weight = static_cast<uint32_t>(b.weight);
    status.healthy = b.up != 0;
    status.in_flight = b.upstream_connections_active;
    status.idle_connections = b.upstream_connections_idle;
    pool::HealthView view{status.healthy, false, {}};
    if (id < health.size()) {
        status.last_check = health[id].last_reason;
        status.passive_failures = health[id].passive_failures;
        view.ejected = health[id].ejected;
        view.reason = health[id].healthy                     ? health[id].last_reason
                      : health[id].transition_reason.empty() ? health[id].last_reason
                                                             : health[id].transition_reason;
    }
    pool::AdminOverride admin = admin_overrides()[id];
    pool::ReportedState reported = pool::reported_state(admin, view);
    status.state = reported.state;
    status.why = reported.why;
    status.admin_state = pool::admin_state_name(admin.state);
    status.configured_weight = context_->config.backends[id].weight;
    status.pool = context_->config.pools[context_->config.backends[id].pool].name;
    status.requests = metrics::backend_responses(b);
    status.errors = metrics::backend_server_errors(b);
    status.latency_p50_seconds = metrics::histogram_quantile(b.response_duration_seconds, 0.5);
    status.latency_p99_seconds = metrics::histogram_quantile(b.response_duration_seconds, 0.99);
    return status;
}

std::vector<metrics::ExtraFamily> Server::admin_metric_families() const {
    // Bounded: backends x the three admin states, each 1 for the state the backend is in, else 0.
    metrics::ExtraFamily family{"lb_backend_admin_state",
                                metrics::ExtraFamily::Type::gauge,
                                "1 for the admin API state a backend is in (enabled, draining, disabled), else 0.",
                                {}};
    std::vector<pool::AdminOverride> overrides = admin_overrides();
    for (size_t id = 0; id < overrides.size() && id < backend_names_.size(); ++id) {
        std::string backend = fmt::format("backend=\"{}\"", metrics::escape_label_value(backend_names_[id]));
        for (pool::AdminState state :
             {pool::AdminState::enabled, pool::AdminState::draining, pool::AdminState::disabled}) {
            family.samples.emplace_back(fmt::format("{},state=\"{}\"", backend, pool::admin_state_name(state)),
                                        overrides[id].state == state ? 1 : 0);
        }
    }
    return {std::move(family)};
}

}  // namespace lb::core
