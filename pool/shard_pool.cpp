#include "pool/shard_pool.h"

#include <algorithm>
#include <stdexcept>
#include <string_view>

#include "pool/slow_start.h"

namespace lb::pool {
namespace {

uint32_t share_of_limit(uint32_t total, const ShardPoolOptions& options) {
    if (total == 0) return 0;
    unsigned count = std::max(options.shard_count, 1u);
    uint32_t share = total / count + (options.shard_index % count < total % count ? 1 : 0);
    // A share of 0 would read as "unlimited"; 1 keeps every shard able to reach the backend.
    return std::max<uint32_t>(share, 1);
}

}  // namespace

ShardPool::ShardPool(std::shared_ptr<const std::vector<Backend>> backends, std::unique_ptr<Balancer> balancer,
                     ShardPoolOptions options)
    : backends_(std::move(backends)),
      states_(backends_->size()),
      admin_(backends_->size()),
      balancer_(std::move(balancer)),
      options_(options),
      random_(options.seed) {
    // make_balancer() returns none for an unknown name; config validation should have caught that.
    if (!balancer_) throw std::invalid_argument("ShardPool needs a balancer");
    refresh();
}

Selection ShardPool::choose(const BackendSet& tried, std::chrono::nanoseconds now, std::string_view hash_key) {
    PickContext context{*backends_, states_, now, &random_, hash_key, weights_};
    if (has_primaries_) {
        if (auto id = choose_in_tier(context, excluded_from_primary_, tried, false)) {
            return {SelectStatus::picked, *id};
        }
    }
    if (has_backups_) {
        if (auto id = choose_in_tier(context, excluded_from_backup_, tried, true)) return {SelectStatus::picked, *id};
    }
    return {why_none(tried), 0};
}

std::optional<BackendId> ShardPool::choose_in_tier(const PickContext& context, const BackendSet& excluded,
                                                   const BackendSet& tried, bool backup_tier) {
    skip_ = excluded;
    // Ids beyond this snapshot (a caller that kept `tried` across a rebuild) would break the count below.
    tried.for_each([this](BackendId id) {
        if (id < backends_->size()) skip_.insert(id);
    });
    // Everything skipped: say so without asking, which would cost some algorithms a full scan.
    if (skip_.size() >= backends_->size()) return std::nullopt;
    // The skip set already holds everything but full backends, so a refusal here means "full". Each refused
    // proposal is skipped next time, so the loop cannot propose the same backend twice.
    for (int proposal = 0; proposal < kMaxProposals; ++proposal) {
        auto id = balancer_->pick(context, skip_);
        if (!id) return std::nullopt;
        if (acceptable(*id, tried, backup_tier)) return id;
        skip_.insert(*id);
    }
    for (BackendId id = 0; id < backends_->size(); ++id) {
        if (!skip_.contains(id) && !acceptable(id, tried, backup_tier)) skip_.insert(id);
    }
    auto id = balancer_->pick(context, skip_);
    if (id && acceptable(*id, tried, backup_tier)) return id;
    return std::nullopt;
}

bool ShardPool::acceptable(BackendId id, const BackendSet& tried, bool backup_tier) const {
    // Checks what the skip set should already have excluded too: an algorithm that ignored it must not be able
    // to send a request to an unhealthy backend.
    return id < backends_->size() && (*backends_)[id].backup == backup_tier && eligible(id) && !tried.contains(id);
}

SelectStatus ShardPool::why_none(const BackendSet& tried) const {
    bool any_usable = false;
    for (BackendId id = 0; id < backends_->size(); ++id) {
        if (!usable(id)) continue;
        any_usable = true;
        // Usable and untried, yet not chosen: it is full.
        if (!tried.contains(id)) return SelectStatus::all_full;
    }
    return any_usable ? SelectStatus::all_tried : SelectStatus::none_healthy;
}

void ShardPool::on_dispatch(BackendId id) {
    if (id < states_.size()) ++states_[id].in_flight;
}

void ShardPool::on_finish(BackendId id, Outcome outcome) { on_finish(id, Result{outcome, std::nullopt, {}}); }

void ShardPool::on_finish(BackendId id, const Result& result) {
    if (id >= states_.size()) return;
    // Never below zero, even if a caller finishes twice: a wrapped count would mark the backend full forever.
    if (states_[id].in_flight > 0) --states_[id].in_flight;
    balancer_->on_result(id, result);
}

void ShardPool::set_healthy(BackendId id, bool healthy, std::chrono::nanoseconds now) {
    if (id >= states_.size() || states_[id].healthy == healthy) return;
    states_[id].healthy = healthy;
    if (healthy && options_.slow_start.count() > 0) {
        // A ramp cut short by another failure starts over: the backend is as cold as the first time.
        if (!ramp_started_[id]) ++ramping_count_;
        ramp_started_[id] = now;
        ramp_weights_[id] = slow_start_weight(configured_weight(id), std::chrono::milliseconds{0}, options_.slow_start);
    }
    refresh();
}

bool ShardPool::advance_slow_start(std::chrono::nanoseconds now) {
    if (ramping_count_ == 0) return false;
    for (BackendId id = 0; id < backends_->size(); ++id) {
        if (!ramp_started_[id]) continue;
        auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - *ramp_started_[id]);
        if (elapsed >= options_.slow_start) {
            ramp_started_[id].reset();
            --ramping_count_;
            weights_[id] = configured_weight(id);
            continue;
        }
        ramp_weights_[id] = slow_start_weight(configured_weight(id), elapsed, options_.slow_start);
        weights_[id] = ramp_weights_[id];
    }
    return ramping_count_ > 0;
}

void ShardPool::set_admin(BackendId id, const AdminOverride& admin) {
    if (id >= states_.size() || admin_[id] == admin) return;
    admin_[id] = admin;
    states_[id].draining = !takes_new_requests(admin.state);
    refresh();
}

void ShardPool::set_draining_for_test(BackendId id, bool draining) {
    AdminOverride admin = id < admin_.size() ? admin_[id] : AdminOverride{};
    admin.state = draining ? AdminState::draining : AdminState::enabled;
    set_admin(id, admin);
}

void ShardPool::refresh() {
    size_t n = backends_->size();
    connection_limits_.resize(n);
    weights_.resize(n);
    ramp_started_.resize(n);
    ramp_weights_.resize(n);
    bool any_healthy = false;
    for (const BackendState& state : states_) any_healthy = any_healthy || state.healthy;
    panicking_ = options_.panic && n > 0 && !any_healthy;
    has_primaries_ = has_backups_ = false;
    excluded_from_primary_.clear();
    excluded_from_backup_.clear();
    for (BackendId id = 0; id < n; ++id) {
        const Backend& backend = (*backends_)[id];
        connection_limits_[id] = share_of_limit(backend.max_connections, options_);
        weights_[id] = ramp_started_[id] ? std::max<uint32_t>(ramp_weights_[id], 1) : configured_weight(id);
        (backend.backup ? has_backups_ : has_primaries_) = true;
        if (backend.backup || !usable(id)) excluded_from_primary_.insert(id);
        if (!backend.backup || !usable(id)) excluded_from_backup_.insert(id);
    }
}

}  // namespace lb::pool
