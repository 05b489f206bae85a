// One shard's view of the server pool: the shared backend list, this shard's state for each backend and its own
// balancer. Used only from the owning shard's loop, so nothing here takes a lock.
//
// The pool, not the algorithm, decides eligibility (Pingora's select_with, Envoy's host sets): a backend that is
// unhealthy, draining, at its connection limit or already tried for the request is never returned, and backups
// are used only while no primary is eligible. Unhealthy, draining and wrong-tier backends go into the skip set
// before the algorithm is asked; a proposal that turns out full is added to it and the algorithm asked again, a
// bounded number of times.
//
// The pool also owns the two rules that bend health: panic mode (with no healthy backend at all, health is
// ignored) and slow start (a backend that comes back ramps its weight up). Health itself is decided elsewhere
// (health/) and handed in through set_healthy(); time is the caller's, so every rule is exact in a unit test.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "pool/admin_state.h"
#include "pool/balancer.h"
#include "pool/random_source.h"

namespace lb::pool {

struct ShardPoolOptions {
    // Seeds this shard's RandomSource. Give each shard a different value (its index will do: the source mixes
    // it), and pass the same value to make_balancer().
    uint64_t seed = 0;
    // Backend::max_connections is a total across shards; this shard enforces its share: total / shard_count,
    // plus one for the first total % shard_count shards, and never less than 1 (so with fewer connections than
    // shards the effective total is shard_count). nginx without a shared zone enforces max_conns per worker;
    // this keeps the configured number meaningful without a shared counter on the pick path.
    unsigned shard_index = 0;
    unsigned shard_count = 1;
    // Panic mode (Envoy's panic threshold at 100%): while no backend is healthy, every backend that is not
    // draining is usable, since health checks can be wrong while traffic still succeeds; without it the pool
    // answers none_healthy.
    bool panic = false;
    // Slow start: a backend that comes back (set_healthy from false to true) gets slow_start_weight() of its
    // weight over this long, advanced by advance_slow_start(). 0 = off.
    std::chrono::milliseconds slow_start{0};
};

enum class SelectStatus {
    picked,        // Selection::backend is the one to use
    all_full,      // some healthy, untried backend exists but each is at its connection limit: waiting may help
    all_tried,     // every healthy, non-draining backend was already tried for this request
    none_healthy,  // every backend is unhealthy or draining (or there are none): answer 503 at once
};

struct Selection {
    SelectStatus status = SelectStatus::none_healthy;
    BackendId backend = 0;  // meaningful only when status == picked
    bool picked() const { return status == SelectStatus::picked; }
};

class ShardPool {
  public:
    // Throws std::invalid_argument when `balancer` is null (make_balancer() with an unknown name).
    ShardPool(std::shared_ptr<const std::vector<Backend>> backends, std::unique_ptr<Balancer> balancer,
              ShardPoolOptions options = {});

    // Picks an eligible backend not in `tried`: a primary if any is eligible, else a backup. `now` is the
    // caller's monotonic clock (uv_hrtime() will do) and `hash_key` the request's consistent-hash key; both
    // reach the algorithm in PickContext. When nothing is eligible, says why.
    Selection choose(const BackendSet& tried, std::chrono::nanoseconds now, std::string_view hash_key = {});

    // Bookkeeping around a request: dispatch when it is sent to `id`, finish with what happened. Every dispatch
    // is matched by exactly one finish. The Result form carries the latency and the time, which peak_ewma
    // learns from; the Outcome form says "not measured".
    void on_dispatch(BackendId id);
    void on_finish(BackendId id, Outcome outcome);
    void on_finish(BackendId id, const Result& result);

    // The backend's health as decided by the health checks (every backend starts healthy). `now` is the
    // caller's monotonic clock, the one later passed to advance_slow_start(): a backend that comes back starts
    // its slow start then.
    void set_healthy(BackendId id, bool healthy, std::chrono::nanoseconds now = {});
    // Slow start's clock tick: moves the weight of every ramping backend to where it should be at `now`, and ends
    // the ramps whose window has passed. Returns whether any backend is still ramping (keep ticking while so).
    bool advance_slow_start(std::chrono::nanoseconds now);
    // The operator's decision (the admin API): a draining or disabled backend takes no new requests, even in panic
    // mode; its in-flight requests finish and are counted as usual. A weight override replaces the configured
    // weight for the algorithms that read PickContext::weights (slow start ramps up to it).
    void set_admin(BackendId id, const AdminOverride& admin);
    const AdminOverride& admin(BackendId id) const { return admin_[id]; }
    // set_admin() with only the state changed, for the tests of the eligibility rules.
    void set_draining_for_test(BackendId id, bool draining);

    size_t size() const { return backends_->size(); }
    const Backend& backend(BackendId id) const { return (*backends_)[id]; }
    const BackendState& state(BackendId id) const { return states_[id]; }
    const Balancer& balancer() const { return *balancer_; }
    // The weight the algorithms see for `id`: its configured weight (at least 1), lowered while it ramps.
    uint32_t weight(BackendId id) const { return weights_[id]; }
    // No backend is healthy and options.panic is on: every backend not draining is in use.
    bool panicking() const { return panicking_; }
    // Some backend is in its slow start.
    bool ramping() const { return ramping_count_ > 0; }

    // This shard's share of the backend's max_connections; 0 means unlimited.
    uint32_t connection_limit(BackendId id) const { return connection_limits_[id]; }
    bool full(BackendId id) const {
        return connection_limits_[id] != 0 && states_[id].in_flight >= connection_limits_[id];
    }
    // Would take a new request now (ignoring `tried` and backup tiers).
    bool eligible(BackendId id) const { return usable(id) && !full(id); }

  private:
    // Bounded proposals per tier before the pool excludes every full backend at once (one O(backends) pass) and
    // asks a last time. Ordinarily the first proposal is taken; this only bites with many backends at their limit.
    static constexpr int kMaxProposals = 4;

    uint32_t configured_weight(BackendId id) const { return base_weight((*backends_)[id].weight, admin_[id]); }
    bool usable(BackendId id) const { return (states_[id].healthy || panicking_) && !states_[id].draining; }
    std::optional<BackendId> choose_in_tier(const PickContext& context, const BackendSet& excluded,
                                            const BackendSet& tried, bool backup_tier);
    bool acceptable(BackendId id, const BackendSet& tried, bool backup_tier) const;
    SelectStatus why_none(const BackendSet& tried) const;
    // Recomputes panic mode, the per-tier exclusion sets, the connection limits and the weights; after any change
    // of health or drain (rare events, so an O(backends) pass is fine).
    void refresh();

    std::shared_ptr<const std::vector<Backend>> backends_;
    std::vector<BackendState> states_;
    std::vector<AdminOverride> admin_;  // per backend, as the admin API last set it
    std::unique_ptr<Balancer> balancer_;
    ShardPoolOptions options_;
    RandomSource random_;
    std::vector<uint32_t> connection_limits_;
    std::vector<uint32_t> weights_;  // PickContext::weights: Backend::weight or its slow-start share, at least 1
    // Slow start, per backend: when its ramp began (empty: not ramping) and its ramped weight then.
    std::vector<std::optional<std::chrono::nanoseconds>> ramp_started_;
    std::vector<uint32_t> ramp_weights_;
    size_t ramping_count_ = 0;
    bool panicking_ = false;
    bool has_primaries_ = false;
    bool has_backups_ = false;
    // What the algorithm must never see, per tier: unusable backends plus the other tier's.
    BackendSet excluded_from_primary_;
    BackendSet excluded_from_backup_;
    BackendSet skip_;  // scratch for choose(), a member so that its storage is reused across requests
};

}  // namespace lb::pool
