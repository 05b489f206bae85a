// Histogram bucketing and its exposition: the branchless bucket search agrees with a plain linear search at every
// bound, buckets come out cumulative, _count equals the number of observations and _sum is exact.
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/shard_metrics.h"
#include "metrics/snapshot.h"

using namespace lb::metrics;

namespace {

// The obvious implementation, to check the clever one against.
size_t reference_index(uint64_t ns) {
    size_t i = 0;
    while (i < HistogramBuckets::kBounds && HistogramBuckets::kUpperNs[i] < ns) ++i;
    return i;
}

struct Sample {
    std::string le;
    uint64_t value;
};

// The `name_bucket{...le="X"} V` lines of one family, in output order.
std::vector<Sample> bucket_lines(const std::string& text, const std::string& name) {
    std::vector<Sample> samples;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind(name + "_bucket{", 0) != 0) continue;
        const size_t le = line.find("le=\"");
        const size_t le_end = line.find('"', le + 4);
        samples.push_back({line.substr(le + 4, le_end - le - 4), std::stoull(line.substr(line.rfind(' ') + 1))});
    }
    return samples;
}

std::string line_value(const std::string& text, const std::string& prefix) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind(prefix + " ", 0) == 0) return line.substr(prefix.size() + 1);
    }
    FAIL("no line starting with " << prefix);
    return {};
}

}  // namespace

TEST_CASE("bucket index matches a linear search at and around every bound", "[metrics][histogram]") {
    std::vector<uint64_t> values = {0, 1, std::numeric_limits<uint64_t>::max()};
    for (uint64_t bound : HistogramBuckets::kUpperNs) {
        values.insert(values.end(), {bound - 1, bound, bound + 1});
    }
    for (uint64_t v = 0; v < 20'000'000'000; v = v * 3 + 7) values.push_back(v);
    for (uint64_t v : values) {
        INFO("ns = " << v);
        CHECK(HistogramBuckets::index(v) == reference_index(v));
    }
    // `le` is inclusive: an observation equal to a bound belongs to that bound's bucket.
    for (size_t i = 0; i < HistogramBuckets::kBounds; ++i) {
        CHECK(HistogramBuckets::index(HistogramBuckets::kUpperNs[i]) == i);
        CHECK(HistogramBuckets::index(HistogramBuckets::kUpperNs[i] + 1) == i + 1);
    }
}

TEST_CASE("le labels say the same as the nanosecond bounds", "[metrics][histogram]") {
    for (size_t i = 0; i < HistogramBuckets::kBounds; ++i) {
        const double seconds = std::stod(std::string(HistogramBuckets::kLe[i]));
        CHECK(static_cast<uint64_t>(seconds * 1e9 + 0.5) == HistogramBuckets::kUpperNs[i]);
        if (i > 0) CHECK(HistogramBuckets::kUpperNs[i - 1] < HistogramBuckets::kUpperNs[i]);
    }
    CHECK(HistogramBuckets::kLe.back() == "+Inf");
}

TEST_CASE("exposition renders cumulative buckets, exact _sum and _count", "[metrics][histogram]") {
    ShardMetrics shard(1);
    // One observation exactly on every bound, one beyond the last, and a few more in the first bucket.
    uint64_t sum_ns = 0;
    uint64_t observations = 0;
    for (uint64_t bound : HistogramBuckets::kUpperNs) {
        shard.on_request_done(200, bound);
        sum_ns += bound;
        ++observations;
    }
    shard.on_request_done(200, 60'000'000'000);
    sum_ns += 60'000'000'000;
    ++observations;
    for (uint64_t ns : {uint64_t{0}, uint64_t{1}, uint64_t{99'999}}) {
        shard.on_request_done(200, ns);
        sum_ns += ns;
        ++observations;
    }

    const ShardMetrics* blocks[] = {&shard};
    const Snapshot snapshot = merge(blocks);
    CHECK(snapshot.global.request_duration_seconds.count() == observations);
    CHECK(snapshot.global.request_duration_seconds.sum_ns == sum_ns);
    CHECK(snapshot.global.request_duration_seconds.buckets[0] == 4);  // 100 µs itself and the three below it
    // All were 200s: the 2xx histogram holds the same.
    const HistogramSnapshot& ok = snapshot.global.request_duration_by_code_seconds[StatusClassLabel::slot(200)];
    CHECK(ok.buckets == snapshot.global.request_duration_seconds.buckets);
    CHECK(ok.sum_ns == sum_ns);  // 100 µs itself and the three below it

    const std::string names[] = {"a:1"};
    const std::string text = render_prometheus(snapshot, ExpositionInfo{.version = "test", .backend_names = names});
    const auto buckets = bucket_lines(text, "lb_request_duration_seconds");
    REQUIRE(buckets.size() == HistogramBuckets::kBuckets);
    for (size_t i = 0; i < buckets.size(); ++i) {
        INFO("bucket " << i);
        CHECK(buckets[i].le == HistogramBuckets::kLe[i]);
        // Cumulative: bucket i holds everything <= its bound: 4 in the first, then one more per bound.
        const uint64_t expected = i < HistogramBuckets::kBounds ? 4 + i : observations;
        CHECK(buckets[i].value == expected);
    }
    CHECK(line_value(text, "lb_request_duration_seconds_count") == std::to_string(observations));
    // The bounds add up to 19.44435 s, plus 60 s, plus 100 000 ns from the small ones (0 + 1 + 99 999 ns).
    CHECK(line_value(text, "lb_request_duration_seconds_sum") == "79.444450000");
}

TEST_CASE("per-backend histogram counts every response and nothing else", "[metrics][histogram]") {
    ShardMetrics a(2);
    ShardMetrics b(2);
    for (uint64_t i = 0; i < 1000; ++i) {
        (i % 2 ? a : b).on_backend_response(1, MethodClass::get, 200, i * 1'000'000);
    }
    const ShardMetrics* blocks[] = {&a, &b};
    const Snapshot snapshot = merge(blocks);
    CHECK(snapshot.backends[0].response_duration_seconds.count() == 0);
    CHECK(snapshot.backends[1].response_duration_seconds.count() == 1000);
    CHECK(snapshot.backends[1].response_duration_seconds.sum_ns == 999ull * 1000 / 2 * 1'000'000);

    const std::string names[] = {"a:1", "b:2"};
    const std::string text = render_prometheus(snapshot, ExpositionInfo{.version = "test", .backend_names = names});
    CHECK(line_value(text, "lb_backend_response_duration_seconds_count{backend=\"b:2\"}") == "1000");
    CHECK(line_value(text, "lb_backend_response_duration_seconds_count{backend=\"a:1\"}") == "0");
    // 0..999 ms: 0 and 1 ms fall in le=0.001 (inclusive), 2 ms in le=0.0025.
    CHECK(line_value(text, "lb_backend_response_duration_seconds_bucket{backend=\"b:2\",le=\"0.001\"}") == "2");
    CHECK(line_value(text, "lb_backend_response_duration_seconds_bucket{backend=\"b:2\",le=\"0.0025\"}") == "3");
    CHECK(line_value(text, "lb_backend_response_duration_seconds_bucket{backend=\"b:2\",le=\"+Inf\"}") == "1000");
}
