// A reload's health carry-over: what the old generation's monitor knew of its backends decides the state each
// backend of the new generation starts in. Pure code over plain data, so the rules are unit-tested
// (test/unit/test_health_decision.cpp); core calls it when it builds the new monitor's targets.
#pragma once

#include <vector>

#include "health/health_config.h"
#include "health/health_monitor.h"

namespace lb::health {

// Sets `starts_healthy` on each of `targets` from `previous` (the old monitor's snapshot), matching by name
// (host:port as written in lb.yaml):
//   - a backend the old generation knew starts as it was known, up or down: a backend known to be down gets no
//     traffic until its checks bring it back;
//   - a backend the reload adds starts down until its first check passes (which runs at once), as Envoy treats
//     hosts added to a running cluster, but only while a known backend is up to serve meanwhile; with none up,
//     it keeps config.initial_state.
// Only with active checks on (config.enabled): with passive ejection alone nothing would bring a backend up, so
// then every target keeps config.initial_state and nothing is changed.
void carry_over_health(const HealthConfig& config, const std::vector<BackendHealth>& previous,
                       std::vector<HealthTarget>& targets);

}  // namespace lb::health
