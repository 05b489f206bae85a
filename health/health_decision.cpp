#include "health/health_decision.h"

#include <fmt/format.h>

#include <algorithm>

namespace lb::health {

std::string_view to_string(TransitionCause cause) {
    switch (cause) {
        case TransitionCause::checks:
            return "checks";
        case TransitionCause::ejection:
            return "ejection";
        case TransitionCause::ejection_ended:
            return "ejection ended";
    }
    return "?";
}

std::string_view to_string(PassiveOutcome outcome) {
    switch (outcome) {
        case PassiveOutcome::success:
            return "success";
        case PassiveOutcome::connect_failure:
            return "connect failure";
        case PassiveOutcome::timeout:
            return "timeout";
        case PassiveOutcome::reset:
            return "reset";
        case PassiveOutcome::status_5xx:
            return "5xx response";
    }
    return "?";
}

bool is_passive_failure(const PassiveHealthConfig& config, PassiveOutcome outcome) {
    switch (outcome) {
        case PassiveOutcome::connect_failure:
        case PassiveOutcome::timeout:
        case PassiveOutcome::reset:
            return true;
        case PassiveOutcome::status_5xx:
            return config.count_5xx;
        case PassiveOutcome::success:
            return false;
    }
    return false;
}

CheckOutcome judge_response(int status, Millis elapsed, const std::vector<StatusRange>& expected,
                            Millis max_response_time) {
    if (!status_expected(expected, status)) return {CheckResult::bad_status, fmt::format("status {}", status)};
    if (elapsed > max_response_time) {
        return {CheckResult::too_slow, fmt::format("response took {} ms, over max_response_time {} ms", elapsed.count(),
                                                   max_response_time.count())};
    }
    return {CheckResult::ok, fmt::format("status {}", status)};
}

CheckOutcome timed_out(Millis timeout) {
    return {CheckResult::timeout, fmt::format("timeout after {} ms", timeout.count())};
}

CheckOutcome failed(CheckResult result, std::string reason) { return {result, std::move(reason)}; }

// ---------------------------------------------------------------------------------------------------------------

RiseFall::RiseFall(uint32_t rise, uint32_t fall, InitialState initial)
    : rise_(std::max(rise, 1u)), fall_(std::max(fall, 1u)), healthy_(initial == InitialState::healthy) {}

bool RiseFall::record(bool passed) {
    bool first = !checked_;
    checked_ = true;
    if (passed == healthy_) {
        streak_ = 0;
        return false;
    }
    ++streak_;
    uint32_t needed = healthy_ ? fall_ : rise_;
    // Never checked and starting down: one pass is enough, so start-up does not wait rise × interval.
    if (first && !healthy_) needed = 1;
    if (streak_ < needed) return false;
    healthy_ = !healthy_;
    last_flip_after_ = streak_;
    streak_ = 0;
    return true;
}

// ---------------------------------------------------------------------------------------------------------------

Ejector::Ejector(const PassiveHealthConfig& config, size_t backend_count, const std::vector<size_t>& pools)
    : config_(config), backends_(backend_count), pool_of_(backend_count, 0) {
    std::vector<size_t> sizes(1, 0);
    for (size_t b = 0; b < backend_count; ++b) {
        if (b < pools.size()) pool_of_[b] = pools[b];
        if (pool_of_[b] >= sizes.size()) sizes.resize(pool_of_[b] + 1, 0);
        ++sizes[pool_of_[b]];
    }
    pool_shares_.resize(sizes.size());
    for (size_t p = 0; p < sizes.size(); ++p) {
        if (config_.max_ejected_percent > 0) {
            pool_shares_[p].max_ejected = std::max<size_t>(1, sizes[p] * config_.max_ejected_percent / 100);
        }
    }
}

Millis Ejector::ejection_time(const PassiveHealthConfig& config, uint32_t count) {
    // Compare before multiplying: base × count must not overflow on a long-failing backend.
    if (count == 0) count = 1;
    if (config.base_ejection_time.count() > 0 && config.max_ejection_time / config.base_ejection_time < count) {
        return config.max_ejection_time;
    }
    return std::min(config.base_ejection_time * count, config.max_ejection_time);
}

std::optional<Ejector::Ejection> Ejector::record(size_t backend, PassiveOutcome outcome, Millis now, bool may_eject) {
    if (config_.consecutive_failures == 0) return std::nullopt;
    State& s = backends_[backend];
    if (s.ejected) return std::nullopt;
    if (!is_passive_failure(config_, outcome)) {
        // A 5xx that does not count still proves the backend answers: it resets the run, as a success does.
        s.failures = 0;
        return std::nullopt;
    }
    if (s.failures < config_.consecutive_failures) ++s.failures;
    PoolShare& share = pool_shares_[pool_of_[backend]];
    if (s.failures < config_.consecutive_failures || share.ejected >= share.max_ejected || !may_eject) {
        return std::nullopt;
    }

    // The count decays by one per base_ejection_time spent un-ejected since the last ejection ended.
    if (s.count > 0 && config_.base_ejection_time.count() > 0) {
        auto clean = static_cast<uint64_t>(std::max<Millis::rep>(0, (now - s.returned_at).count()));
        uint64_t decay = clean / static_cast<uint64_t>(config_.base_ejection_time.count());
        s.count -= static_cast<uint32_t>(std::min<uint64_t>(s.count, decay));
    }
    ++s.count;
    Ejection ejection{ejection_time(config_, s.count), s.failures, s.count};
    s.ejected = true;
    s.duration = ejection.duration;
    s.failures = 0;
    ++share.ejected;
    return ejection;
}

void Ejector::end(size_t backend, Millis now) {
    State& s = backends_[backend];
    if (!s.ejected) return;
    s.ejected = false;
    s.returned_at = now;
    --pool_shares_[pool_of_[backend]].ejected;
}

// ---------------------------------------------------------------------------------------------------------------

HealthDecider::HealthDecider(const HealthConfig& config, const std::vector<CheckOverrides>& backends,
                             const std::vector<InitialState>& initial, const std::vector<size_t>& pools)
    : takes_new_requests_(backends.size(), 1),
      ejector_(config.passive, backends.size(), pools),
      passed_check_ends_ejection_(config.passive.passed_check_ends_ejection) {
    active_.reserve(backends.size());
    for (size_t i = 0; i < backends.size(); ++i) {
        CheckSettings settings = resolve_check(config, backends[i]);
        active_.emplace_back(settings.rise, settings.fall, i < initial.size() ? initial[i] : config.initial_state);
    }
}

std::optional<HealthDecider::Change> HealthDecider::on_check(size_t backend, const CheckOutcome& outcome, Millis now) {
    RiseFall& active = active_[backend];
    const bool flipped = active.record(outcome.passed());
    if (ejector_.ejected(backend)) {
        // The backend answers its checks again: end the ejection now rather than turn clients away until it runs
        // out. Only while the checks hold it up, since a pass towards `rise` does not make it healthy.
        if (!passed_check_ends_ejection_ || !outcome.passed() || !active.healthy()) return std::nullopt;
        Millis lasted = ejector_.ejection_duration(backend);
        ejector_.end(backend, now);
        return Change{true, TransitionCause::ejection_ended,
                      fmt::format("ejection of {} ms ended by a passed check ({})", lasted.count(), outcome.reason),
                      "active checks passing"};
    }
    if (!flipped) return std::nullopt;
    uint32_t n = active.last_flip_after();
    std::string detail = active.healthy() ? fmt::format("{} consecutive passed check{}", n, n == 1 ? "" : "s")
                                          : fmt::format("{} consecutive failed check{}", n, n == 1 ? "" : "s");
    return Change{active.healthy(), TransitionCause::checks, outcome.reason, std::move(detail)};
}

HealthDecider::PassiveDecision HealthDecider::on_passive(size_t backend, PassiveOutcome outcome, Millis now) {
    // A backend the checks hold down gets no traffic but in panic mode; what it does then says nothing new.
    if (!healthy(backend)) return {};
    std::optional<Ejector::Ejection> ejection = ejector_.record(backend, outcome, now, another_eligible(backend));
    if (!ejection) return {};
    PassiveDecision decision;
    decision.ejected_for = ejection->duration;
    decision.change = Change{false, TransitionCause::ejection,
                             fmt::format("ejected for {} ms after {} consecutive failures (last: {})",
                                         ejection->duration.count(), ejection->failures, to_string(outcome)),
                             fmt::format("ejection {}, {} of at most {} ejected", ejection->count,
                                         ejector_.ejected_count(ejector_.pool_of(backend)),
                                         ejector_.max_ejected(ejector_.pool_of(backend)))};
    return decision;
}

void HealthDecider::set_takes_new_requests(size_t backend, bool takes) {
    if (backend < takes_new_requests_.size()) takes_new_requests_[backend] = takes ? 1 : 0;
}

bool HealthDecider::another_eligible(size_t backend) const {
    const size_t pool = ejector_.pool_of(backend);
    for (size_t other = 0; other < active_.size(); ++other) {
        if (other != backend && ejector_.pool_of(other) == pool && healthy(other) && takes_new_requests_[other]) {
            return true;
        }
    }
    return false;
}

std::optional<HealthDecider::Change> HealthDecider::on_ejection_end(size_t backend, Millis now) {
    if (!ejector_.ejected(backend)) return std::nullopt;
    Millis lasted = ejector_.ejection_duration(backend);
    ejector_.end(backend, now);
    if (!active_[backend].healthy()) return std::nullopt;  // still down by its checks
    return Change{true, TransitionCause::ejection_ended, fmt::format("ejection ended after {} ms", lasted.count()),
                  "active checks passing"};
}

// ---------------------------------------------------------------------------------------------------------------

Millis jittered_interval(Millis interval, const Jitter& jitter, uint64_t random) {
    Millis spread = jitter.max_for(interval);
    if (spread.count() <= 0) return interval;
    auto width = static_cast<uint64_t>(spread.count()) * 2 + 1;
    auto offset = static_cast<Millis::rep>(random % width) - spread.count();
    return interval + Millis(offset);
}

}  // namespace lb::health
