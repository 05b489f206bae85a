// The one table of algorithms: a name and how to build it. Adding an algorithm is a file of its own plus a
// row here (HAProxy registers one lb_ops per algorithm file the same way).
#include "pool/balancer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>

#include "pool/algorithms/consistent_hash.h"
#include "pool/algorithms/least_connections.h"
#include "pool/algorithms/peak_ewma.h"
#include "pool/algorithms/random_two_choices.h"
#include "pool/algorithms/round_robin.h"
#include "pool/algorithms/weighted_round_robin.h"

namespace lb::pool {
namespace {

using MakeBalancer = std::unique_ptr<Balancer> (*)(const BalancerOptions&, std::span<const Backend>, uint64_t);

struct Algorithm {
    std::string_view name;
    MakeBalancer make;
};

// The rotating algorithms start at seed % count, so shard k (seeded k, or anything spread out) starts at a
// different backend. Random ones draw from the ShardPool's RandomSource, seeded by the same caller.
constexpr Algorithm kAlgorithms[] = {
    {"round_robin",
     [](const BalancerOptions&, std::span<const Backend> backends, uint64_t seed) -> std::unique_ptr<Balancer> {
         return std::make_unique<RoundRobin>(backends.empty() ? 0 : seed % backends.size());
     }},
    {"weighted_round_robin",
     [](const BalancerOptions&, std::span<const Backend> backends, uint64_t seed) -> std::unique_ptr<Balancer> {
         return std::make_unique<WeightedRoundRobin>(backends.size(), backends.empty() ? 0 : seed % backends.size());
     }},
    {"least_connections",
     [](const BalancerOptions&, std::span<const Backend> backends, uint64_t seed) -> std::unique_ptr<Balancer> {
         return std::make_unique<LeastConnections>(backends.empty() ? 0 : seed % backends.size());
     }},
    {"random_two_choices",
     [](const BalancerOptions&, std::span<const Backend> backends, uint64_t) -> std::unique_ptr<Balancer> {
         return std::make_unique<RandomTwoChoices>(backends);
     }},
    {"peak_ewma",
     [](const BalancerOptions& options, std::span<const Backend> backends, uint64_t) -> std::unique_ptr<Balancer> {
         return std::make_unique<PeakEwma>(backends, options.peak_ewma);
     }},
    // No seed: the table must be the same on every shard.
    {"consistent_hash",
     [](const BalancerOptions& options, std::span<const Backend> backends, uint64_t) -> std::unique_ptr<Balancer> {
         return std::make_unique<ConsistentHash>(backends, options.consistent_hash.table_size);
     }},
};

constexpr auto kNames = [] {
    std::array<std::string_view, std::size(kAlgorithms)> names{};
    for (size_t i = 0; i < names.size(); ++i) names[i] = kAlgorithms[i].name;
    return names;
}();

constexpr uint32_t kMaxTableSize = 5'000'011;  // Envoy's limit: 20 MB of table per shard is plenty

// Indexed by HashKeySource, in its declaration order.
constexpr std::array<std::string_view, 4> kKeySourceNames = {"client_ip", "header", "cookie", "path"};

}  // namespace

std::span<const std::string_view> balancer_names() { return kNames; }

std::optional<std::string> check_balancer_name(std::string_view name) {
    for (std::string_view known : kNames) {
        if (known == name) return std::nullopt;
    }
    return fmt::format("unknown load-balancing algorithm '{}'; expected one of: {}", name, fmt::join(kNames, ", "));
}

std::optional<std::string> check_balancer_options(const BalancerOptions& options) {
    if (auto error = check_balancer_name(options.algorithm)) return error;
    const PeakEwmaOptions& ewma = options.peak_ewma;
    if (ewma.decay.count() <= 0) return std::string("peak_ewma decay must be positive");
    if (ewma.default_latency.count() < 0) return std::string("peak_ewma default latency must not be negative");
    if (ewma.failure_penalty.count() < 0) return std::string("peak_ewma failure penalty must not be negative");
    const ConsistentHashOptions& hash = options.consistent_hash;
    if (hash.table_size < 3 || hash.table_size > kMaxTableSize) {
        return fmt::format("consistent_hash table size {} must be a prime between 3 and {} (default 65537)",
                           hash.table_size, kMaxTableSize);
    }
    if (!ConsistentHash::is_prime(hash.table_size)) {
        // Maglev needs a prime so that every backend's permutation visits every slot.
        return fmt::format("consistent_hash table size {} is not prime; the next prime is {}", hash.table_size,
                           ConsistentHash::next_prime(hash.table_size));
    }
    if ((hash.key_source == HashKeySource::header || hash.key_source == HashKeySource::cookie) &&
        hash.key_name.empty()) {
        return fmt::format("consistent_hash key source '{}' needs the name of the {} to hash",
                           hash_key_source_name(hash.key_source), hash_key_source_name(hash.key_source));
    }
    return std::nullopt;
}

std::string_view hash_key_source_name(HashKeySource source) { return kKeySourceNames[static_cast<size_t>(source)]; }

std::optional<HashKeySource> parse_hash_key_source(std::string_view name) {
    for (size_t i = 0; i < kKeySourceNames.size(); ++i) {
        if (kKeySourceNames[i] == name) return static_cast<HashKeySource>(i);
    }
    return std::nullopt;
}

std::unique_ptr<Balancer> make_balancer(const BalancerOptions& options, std::span<const Backend> backends,
                                        uint64_t shard_seed) {
    for (const Algorithm& algorithm : kAlgorithms) {
        if (algorithm.name == options.algorithm) return algorithm.make(options, backends, shard_seed);
    }
    return nullptr;
}

}  // namespace lb::pool
