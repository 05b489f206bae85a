// Micro-benchmarks of backend selection: one pick plus one on_result per iteration, for each algorithm and
// pool size, first on the algorithm alone and then through the ShardPool (eligibility, skip set, bookkeeping).
// Each iteration keeps 16 requests in flight, finishing the oldest, so load-aware algorithms see varied counts.
// Run from a Release build:  ./bench/pool_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <vector>

#include "pool/algorithms/consistent_hash.h"
#include "pool/balancer.h"
#include "pool/shard_pool.h"

using namespace lb::pool;

namespace {

constexpr size_t kInFlight = 16;
constexpr size_t kKeys = 4096;

std::vector<Backend> make_backends(size_t count) {
    std::vector<Backend> backends;
    for (size_t i = 0; i < count; ++i) {
        // Varied weights so the weighted paths do real work.
        backends.push_back({"10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080",
                            static_cast<uint32_t>(1 + i % 4)});
    }
    return backends;
}

std::vector<std::string> make_keys() {
    std::vector<std::string> keys;
    for (size_t i = 0; i < kKeys; ++i) keys.push_back("192.0.2." + std::to_string(i % 256) + "#" + std::to_string(i));
    return keys;
}

BalancerOptions options_for(std::string_view algorithm) {
    BalancerOptions options;
    options.algorithm = algorithm;
    return options;
}

void pick_and_result(benchmark::State& state, std::string algorithm) {
    auto backends = make_backends(static_cast<size_t>(state.range(0)));
    std::vector<BackendState> states(backends.size());
    auto keys = make_keys();
    // The compact weights array the ShardPool would pass.
    std::vector<uint32_t> weights;
    for (const Backend& backend : backends) weights.push_back(backend.weight);
    auto balancer = make_balancer(options_for(algorithm), backends, 1);
    RandomSource random(1);
    std::array<BackendId, kInFlight> ring{};
    BackendSet none;
    std::chrono::nanoseconds now{1'000'000'000};
    size_t i = 0;
    for (auto _ : state) {
        PickContext context{backends, states, now, &random, keys[i % kKeys], weights};
        BackendId id = *balancer->pick(context, none);
        ++states[id].in_flight;
        BackendId done = ring[i % kInFlight];
        ring[i % kInFlight] = id;
        if (i >= kInFlight) {
            --states[done].in_flight;
            balancer->on_result(done, Result{Outcome::success, std::chrono::microseconds(200 + done % 7 * 100), now});
        }
        now += std::chrono::microseconds(1);
        ++i;
        benchmark::DoNotOptimize(id);
    }
    state.SetItemsProcessed(state.iterations());
}

void shard_pool_choose(benchmark::State& state, std::string algorithm) {
    auto backends = std::make_shared<const std::vector<Backend>>(make_backends(static_cast<size_t>(state.range(0))));
    auto keys = make_keys();
    ShardPool pool(backends, make_balancer(options_for(algorithm), *backends, 1), {1, 0, 1});
    std::array<BackendId, kInFlight> ring{};
    BackendSet tried;
    std::chrono::nanoseconds now{1'000'000'000};
    size_t i = 0;
    for (auto _ : state) {
        Selection selection = pool.choose(tried, now, keys[i % kKeys]);
        pool.on_dispatch(selection.backend);
        BackendId done = ring[i % kInFlight];
        ring[i % kInFlight] = selection.backend;
        if (i >= kInFlight) {
            pool.on_finish(done, Result{Outcome::success, std::chrono::microseconds(200 + done % 7 * 100), now});
        }
        now += std::chrono::microseconds(1);
        ++i;
        benchmark::DoNotOptimize(selection);
    }
    state.SetItemsProcessed(state.iterations());
}

// What a snapshot change costs each shard for consistent_hash: building the Maglev table.
void maglev_build(benchmark::State& state) {
    auto backends = make_backends(static_cast<size_t>(state.range(0)));
    for (auto _ : state) {
        ConsistentHash table(backends, 65537);
        benchmark::DoNotOptimize(table.table_size());
    }
}

void register_all() {
    for (std::string_view name : balancer_names()) {
        benchmark::RegisterBenchmark(("pick_result/" + std::string(name)).c_str(), pick_and_result, std::string(name))
            ->Arg(3)
            ->Arg(64)
            ->Arg(1024);
    }
    for (std::string_view name : balancer_names()) {
        benchmark::RegisterBenchmark(("shard_pool/" + std::string(name)).c_str(), shard_pool_choose, std::string(name))
            ->Arg(3)
            ->Arg(64)
            ->Arg(1024);
    }
    benchmark::RegisterBenchmark("maglev_build/65537", maglev_build)
        ->Arg(3)
        ->Arg(64)
        ->Arg(1024)
        ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
