// Plain rotation over the backends, skipping those the caller excludes. Ignores weights.
#pragma once

#include "pool/balancer.h"

namespace lb::pool {

class RoundRobin final : public Balancer {
  public:
    // `start` is where the rotation begins: each shard starts at a different backend so that shards do not all
    // hit backend 0 together.
    explicit RoundRobin(size_t start = 0) : cursor_(start) {}
    std::optional<BackendId> pick(const PickContext& context, const BackendSet& skip) override;

  private:
    size_t cursor_;
};

}  // namespace lb::pool
