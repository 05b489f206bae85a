// The status page's numbers: quantiles estimated from histogram buckets the way PromQL's histogram_quantile() does,
// and a backend's responses and 5xx summed over methods and codes.
#include <catch2/catch.hpp>

#include "metrics/shard_metrics.h"
#include "metrics/snapshot.h"
#include "metrics/summary.h"

using namespace lb::metrics;

namespace {

HistogramSnapshot histogram_of(std::initializer_list<uint64_t> observations_ns) {
    Histogram live;
    for (uint64_t ns : observations_ns) live.record(ns);
    HistogramSnapshot snapshot;
    for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) snapshot.buckets[i] = live.bucket(i);
    snapshot.sum_ns = live.sum_ns();
    return snapshot;
}

}  // namespace

TEST_CASE("an empty histogram has no quantile", "[metrics][summary]") {
    CHECK_FALSE(histogram_quantile(HistogramSnapshot{}, 0.5));
    CHECK_FALSE(histogram_quantile(HistogramSnapshot{}, 0.99));
}

TEST_CASE("a quantile interpolates linearly inside the bucket its rank falls in", "[metrics][summary]") {
    // Four observations in (1 ms, 2.5 ms]: ranks 1..4 spread evenly over the bucket.
    HistogramSnapshot h = histogram_of({2'000'000, 2'000'000, 2'000'000, 2'000'000});
    CHECK(*histogram_quantile(h, 0.5) == Approx(0.00175));  // rank 2 of 4: halfway from 1 ms to 2.5 ms
    CHECK(*histogram_quantile(h, 1.0) == Approx(0.0025));   // the bucket's upper bound
    CHECK(*histogram_quantile(h, 0.0) == Approx(0.001));    // the lower bound of the first non-empty bucket
    CHECK(*histogram_quantile(h, 0.25) == Approx(0.001375));
}

TEST_CASE("the first bucket starts at zero", "[metrics][summary]") {
    HistogramSnapshot h = histogram_of({50'000, 50'000});  // both in [0, 100 µs]
    CHECK(*histogram_quantile(h, 0.5) == Approx(0.00005));
}

TEST_CASE("p50 and p99 land in different buckets when the tail is slow", "[metrics][summary]") {
    HistogramSnapshot h;
    h.buckets[HistogramBuckets::index(3'000'000)] = 98;   // (2.5 ms, 5 ms]
    h.buckets[HistogramBuckets::index(300'000'000)] = 2;  // (250 ms, 500 ms]
    // Rank 50 of 100: 50/98 of the way through (2.5, 5] ms.
    CHECK(*histogram_quantile(h, 0.5) == Approx(0.0025 + 0.0025 * 50.0 / 98.0));
    // Rank 99: the first of the two slow ones, halfway through (250, 500] ms.
    CHECK(*histogram_quantile(h, 0.99) == Approx(0.375));
}

TEST_CASE("a rank in the +Inf bucket answers the highest finite bound", "[metrics][summary]") {
    HistogramSnapshot h = histogram_of({1'000'000, 20'000'000'000});
    CHECK(*histogram_quantile(h, 0.99) == Approx(10.0));
    CHECK(*histogram_quantile(h, 0.5) == Approx(0.001));
}

TEST_CASE("q outside [0, 1] is clamped", "[metrics][summary]") {
    HistogramSnapshot h = histogram_of({2'000'000});
    CHECK(*histogram_quantile(h, 7.0) == Approx(0.0025));
    CHECK(*histogram_quantile(h, -1.0) == Approx(0.001));
}

TEST_CASE("a backend's responses and 5xx are summed over every method and code", "[metrics][summary]") {
    ShardMetrics block(1);
    auto record = [&](MethodClass method, unsigned status) { block.on_backend_response(0, method, status, 1000); };
    record(MethodClass::get, 200);
    record(MethodClass::get, 503);
    record(MethodClass::post, 500);
    record(MethodClass::other, 599);  // folded into "5xx"
    record(MethodClass::head, 404);
    record(MethodClass::delete_, 302);
    const ShardMetrics* blocks[] = {&block};
    Snapshot snapshot = merge(blocks);
    CHECK(backend_responses(snapshot.backends[0]) == 6);
    CHECK(backend_server_errors(snapshot.backends[0]) == 3);
}
