// The selection-algorithm interface. An algorithm proposes; the ShardPool applies eligibility around it.
// No I/O, no clock, no randomness of its own: anything of that kind arrives in PickContext.
#pragma once

#include <memory>
#include <optional>
#include <span>

#include "pool/backend.h"

namespace lb::pool {

struct PickContext {
    std::span<const Backend> backends;
    std::span<const BackendState> states;
};

class Balancer {
public:
    virtual ~Balancer() = default;
    // Proposes a backend not in `skip`, or nothing when it has none left to propose.
    virtual std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) = 0;
    // Learns from what happened to a request it proposed.
    virtual void on_result(BackendId backend, Outcome outcome) {
        (void)backend;
        (void)outcome;
    }
};

}  // namespace lb::pool
