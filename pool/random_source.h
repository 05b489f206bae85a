// The deterministic random source handed to algorithms through PickContext. Each ShardPool owns one, seeded
// by its caller, so a shard's choices are reproducible in tests and shards do not move in lockstep.
#pragma once

#include <cstdint>

namespace lb::pool {

// SplitMix64 (Steele, Lea and Flood): one add and a few multiply-xorshifts per draw, passes BigCrush, and any
// 64-bit seed, including 0 and small consecutive ones, gives a well-mixed stream. Not for anything secret.
class RandomSource {
  public:
    explicit RandomSource(uint64_t seed = 0) : state_(seed) {}

    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }

    // A value in [0, bound); bound must be > 0. Lemire's multiply-shift: the bias is at most bound / 2^64,
    // far below anything a load balancer could notice, and it costs no division.
    uint64_t below(uint64_t bound) {
        return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
    }

  private:
    uint64_t state_;
};

}  // namespace lb::pool
