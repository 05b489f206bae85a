// Per-shard blocks and their merge: four shard threads record concurrently while a fifth scrapes; the final merge is
// the exact sum of what each thread recorded, and every scrape saw counters that only grew. Built with
// -DLB_SANITIZE=thread this is also the proof that the single-writer scheme has no data race.
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/shard_metrics.h"
#include "metrics/snapshot.h"
#include "test/support/watchdog.h"

using namespace lb::metrics;

namespace {

constexpr size_t kShards = 4;
constexpr size_t kBackends = 3;
constexpr uint64_t kIterations = 50'000;
constexpr unsigned kStatuses[] = {200, 204, 404, 418, 500, 503, 599, 700, 101};

// What one shard thread records, kept alongside in plain numbers by the same thread: the merge must equal the sum of
// these. Histogram buckets are found with a linear search, independent of the code under test.
struct Expected {
    GlobalSnapshot global;
    std::array<BackendSnapshot, kBackends> backends{};
};

void add_observation(HistogramSnapshot& h, uint64_t ns) {
    size_t i = 0;
    while (i < HistogramBuckets::kBounds && HistogramBuckets::kUpperNs[i] < ns) ++i;
    ++h.buckets[i];
    h.sum_ns += ns;
}

// The body of one simulated shard: a varied mix of every event, deterministic per shard index.
void run_shard(ShardMetrics& m, Expected& e, unsigned shard) {
    for (uint64_t i = 0; i < kIterations; ++i) {
        m.on_client_accepted();
        ++e.global.client_connections_accepted_total;
        const uint64_t received = (i * 31 + shard) % 4096;
        const uint64_t sent = (i * 17 + shard) % 65536;
        m.on_client_bytes_received(received);
        m.on_client_bytes_sent(sent);
        e.global.client_received_bytes_total += received;
        e.global.client_sent_bytes_total += sent;

        const uint64_t duration = (i * 7919 * (shard + 1)) % 20'000'000'000;
        constexpr unsigned kClientStatuses[] = {200, 200, 304, 404, 503, 101, 599};
        const unsigned sent_status = kClientStatuses[(i + shard) % std::size(kClientStatuses)];
        const size_t client_method = (i * 3 + shard) % kLabelCount<RequestMethodLabel>;
        m.on_response_sent(client_method, sent_status);
        ++e.global.requests_total[client_method * kLabelCount<StatusLabel> + StatusLabel::slot(sent_status)];
        m.on_request_done(sent_status, duration);
        add_observation(e.global.request_duration_seconds, duration);
        add_observation(e.global.request_duration_by_code_seconds[StatusClassLabel::slot(sent_status)], duration);

        const auto kind = static_cast<ErrorKind>((i + shard) % kLabelCount<ErrorKindLabel>);
        m.on_error(kind);
        ++e.global.errors_total[static_cast<size_t>(kind)];
        if (i % 7 == 0) {
            m.on_retry();
            ++e.global.retries_total;
        }
        if (i % 11 == 0) {
            m.on_queue_wait();
            ++e.global.queue_waits_total;
        }

        const auto backend = static_cast<BackendIndex>((i + shard) % kBackends);
        BackendSnapshot& eb = e.backends[backend];
        const auto method = static_cast<MethodClass>(i % kLabelCount<MethodLabel>);
        const unsigned status = kStatuses[(i / 3) % std::size(kStatuses)];
        m.on_backend_response(backend, method, status, duration / 3);
        ++eb.requests_total[static_cast<size_t>(method) * kLabelCount<CodeLabel> + CodeLabel::slot(status)];
        add_observation(eb.response_duration_seconds, duration / 3);

        // A full connection lifecycle, so the gauges return to where they were.
        m.on_upstream_opened(backend);
        m.on_upstream_parked(backend);
        if (i % 2 == 0) {
            m.on_upstream_reused(backend);
            m.on_upstream_closed(backend, false);
        } else {
            m.on_upstream_closed(backend, true);
        }
        if (i % 1000 == 0) {
            m.on_passive_ejection(backend);
            ++eb.passive_ejections_total;
        }
        const auto result = static_cast<HealthResult>(i % kLabelCount<HealthResultLabel>);
        m.on_health_check(backend, result);
        ++eb.health_checks_total[static_cast<size_t>(result)];
        m.set_backend_weight(backend, static_cast<uint32_t>(i % 50));

        m.on_client_closed();
    }
    // What stays open at the end: shard+1 client connections, one active and one idle upstream connection to
    // backend 0. Backend 0 is up only in shard 0's view, and every shard's last weight is shard * 10.
    for (unsigned c = 0; c <= shard; ++c) m.on_client_accepted();
    e.global.client_connections_accepted_total += shard + 1;
    e.global.client_connections_active += shard + 1;
    m.on_upstream_opened(0);
    m.on_upstream_opened(0);
    m.on_upstream_parked(0);
    e.backends[0].upstream_connections_active += 1;
    e.backends[0].upstream_connections_idle += 1;
    for (BackendIndex b = 0; b < kBackends; ++b) {
        m.set_backend_up(b, b == 0 && shard == 0);
        m.set_backend_weight(b, shard * 10);
    }
}

}  // namespace

TEST_CASE("merge is the exact sum of four shards written concurrently with scrapes", "[metrics][shards]") {
    lb::test::set_watchdog_limit(std::chrono::seconds{100});  // five threads under TSan on 2 cores
    std::vector<std::unique_ptr<ShardMetrics>> shards;
    for (size_t s = 0; s < kShards; ++s) shards.push_back(std::make_unique<ShardMetrics>(kBackends));
    std::vector<const ShardMetrics*> blocks;
    for (const auto& s : shards) blocks.push_back(s.get());
    // Blocks must not share a cache line: that is the point of the per-shard layout.
    for (const ShardMetrics* block : blocks) CHECK(reinterpret_cast<uintptr_t>(block) % kCacheLine == 0);
    CHECK(reinterpret_cast<uintptr_t>(&shards[0]->backend(0)) % kCacheLine == 0);

    std::array<Expected, kShards> expected{};
    std::latch start(kShards + 1);
    std::atomic<size_t> writers_left{kShards};

    // The scraper: merges and renders as fast as it can while the shards write, checking that what it sees only grows.
    uint64_t scrapes = 0;
    bool monotonic = true;
    std::thread scraper([&] {
        const std::string names[] = {"a:1", "b:2", "c:3"};
        uint64_t last_accepted = 0;
        uint64_t last_requests = 0;
        uint64_t last_errors = 0;
        start.arrive_and_wait();
        do {
            const Snapshot snapshot = merge(blocks);
            uint64_t errors = 0;
            for (uint64_t v : snapshot.global.errors_total) errors += v;
            uint64_t requests = 0;
            for (const auto& by_code : snapshot.global.request_duration_by_code_seconds) requests += by_code.count();
            monotonic = monotonic && snapshot.global.client_connections_accepted_total >= last_accepted &&
                        requests >= last_requests && errors >= last_errors;
            last_accepted = snapshot.global.client_connections_accepted_total;
            last_requests = requests;
            last_errors = errors;
            if (scrapes % 16 == 0) {
                (void)render_prometheus(snapshot,
                                        ExpositionInfo{.version = "test", .shards = 4, .backend_names = names});
            }
            ++scrapes;
        } while (writers_left.load(std::memory_order_acquire) > 0);
    });

    std::vector<std::thread> writers;
    for (unsigned s = 0; s < kShards; ++s) {
        writers.emplace_back([&, s] {
            start.arrive_and_wait();
            run_shard(*shards[s], expected[s], s);
            writers_left.fetch_sub(1, std::memory_order_release);
        });
    }
    for (auto& w : writers) w.join();
    scraper.join();
    CHECK(scrapes > 0);
    CHECK(monotonic);

    // Expected totals: sums of what each shard recorded; gauges by their merge rule.
    Expected total;
    for (const Expected& e : expected) {
        total.global.client_connections_accepted_total += e.global.client_connections_accepted_total;
        total.global.client_connections_active += e.global.client_connections_active;
        total.global.client_received_bytes_total += e.global.client_received_bytes_total;
        total.global.client_sent_bytes_total += e.global.client_sent_bytes_total;
        total.global.retries_total += e.global.retries_total;
        total.global.queue_waits_total += e.global.queue_waits_total;
        for (size_t k = 0; k < total.global.errors_total.size(); ++k)
            total.global.errors_total[k] += e.global.errors_total[k];
        for (size_t k = 0; k < total.global.requests_total.size(); ++k)
            total.global.requests_total[k] += e.global.requests_total[k];
        for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) {
            total.global.request_duration_seconds.buckets[i] += e.global.request_duration_seconds.buckets[i];
        }
        total.global.request_duration_seconds.sum_ns += e.global.request_duration_seconds.sum_ns;
        for (size_t c = 0; c < kLabelCount<StatusClassLabel>; ++c) {
            for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) {
                total.global.request_duration_by_code_seconds[c].buckets[i] +=
                    e.global.request_duration_by_code_seconds[c].buckets[i];
            }
            total.global.request_duration_by_code_seconds[c].sum_ns +=
                e.global.request_duration_by_code_seconds[c].sum_ns;
        }
        for (size_t b = 0; b < kBackends; ++b) {
            BackendSnapshot& t = total.backends[b];
            const BackendSnapshot& s = e.backends[b];
            for (size_t k = 0; k < t.requests_total.size(); ++k) t.requests_total[k] += s.requests_total[k];
            for (size_t k = 0; k < t.health_checks_total.size(); ++k)
                t.health_checks_total[k] += s.health_checks_total[k];
            for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) {
                t.response_duration_seconds.buckets[i] += s.response_duration_seconds.buckets[i];
            }
            t.response_duration_seconds.sum_ns += s.response_duration_seconds.sum_ns;
            t.passive_ejections_total += s.passive_ejections_total;
            t.upstream_connections_active += s.upstream_connections_active;
            t.upstream_connections_idle += s.upstream_connections_idle;
        }
    }

    const Snapshot snapshot = merge(blocks);
    CHECK(snapshot.blocks == kShards);
    const GlobalSnapshot& g = snapshot.global;
    CHECK(g.client_connections_accepted_total == kShards * kIterations + 10);
    CHECK(g.client_connections_accepted_total == total.global.client_connections_accepted_total);
    CHECK(g.client_connections_active == 10);  // 1 + 2 + 3 + 4 left open
    CHECK(g.client_received_bytes_total == total.global.client_received_bytes_total);
    CHECK(g.client_sent_bytes_total == total.global.client_sent_bytes_total);
    CHECK(g.retries_total == total.global.retries_total);
    CHECK(g.queue_waits_total == total.global.queue_waits_total);
    CHECK(g.errors_total == total.global.errors_total);
    CHECK(g.requests_total == total.global.requests_total);
    CHECK(g.request_duration_seconds.buckets == total.global.request_duration_seconds.buckets);
    CHECK(g.request_duration_seconds.sum_ns == total.global.request_duration_seconds.sum_ns);
    CHECK(g.request_duration_seconds.count() == kShards * kIterations);
    uint64_t requests = 0;
    for (size_t c = 0; c < kLabelCount<StatusClassLabel>; ++c) {
        INFO("class " << StatusClassLabel::values[c]);
        CHECK(g.request_duration_by_code_seconds[c].buckets ==
              total.global.request_duration_by_code_seconds[c].buckets);
        CHECK(g.request_duration_by_code_seconds[c].sum_ns == total.global.request_duration_by_code_seconds[c].sum_ns);
        requests += g.request_duration_by_code_seconds[c].count();
    }
    CHECK(requests == kShards * kIterations);
    uint64_t responses_sent = 0;
    for (uint64_t v : g.requests_total) responses_sent += v;
    CHECK(responses_sent == kShards * kIterations);

    REQUIRE(snapshot.backends.size() == kBackends);
    uint64_t responses = 0;
    for (size_t b = 0; b < kBackends; ++b) {
        INFO("backend " << b);
        const BackendSnapshot& s = snapshot.backends[b];
        const BackendSnapshot& t = total.backends[b];
        CHECK(s.requests_total == t.requests_total);
        CHECK(s.health_checks_total == t.health_checks_total);
        CHECK(s.response_duration_seconds.buckets == t.response_duration_seconds.buckets);
        CHECK(s.response_duration_seconds.sum_ns == t.response_duration_seconds.sum_ns);
        CHECK(s.passive_ejections_total == t.passive_ejections_total);
        CHECK(s.upstream_connections_active == t.upstream_connections_active);
        CHECK(s.upstream_connections_idle == t.upstream_connections_idle);
        CHECK(s.up == (b == 0 ? 1 : 0));  // max over shards, not a sum
        CHECK(s.weight == 30);            // max of 0, 10, 20, 30
        responses += s.response_duration_seconds.count();
    }
    CHECK(responses == kShards * kIterations);
    CHECK(snapshot.backends[0].upstream_connections_active == 4);
    CHECK(snapshot.backends[0].upstream_connections_idle == 4);
    CHECK(snapshot.backends[1].upstream_connections_active == 0);

    const std::string names[] = {"a:1", "b:2", "c:3"};
    const std::string text =
        render_prometheus(snapshot, ExpositionInfo{.version = "test", .shards = 4, .backend_names = names});
    CHECK_THAT(text, Catch::Contains("\nlb_client_connections_accepted_total 200010\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_client_connections_active 10\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_request_duration_seconds_count 200000\n"));
    const auto& successes = g.request_duration_by_code_seconds[StatusClassLabel::slot(200)];
    CHECK_THAT(text, Catch::Contains("\nlb_request_duration_by_code_seconds_count{code=\"2xx\"} " +
                                     std::to_string(successes.count()) + "\n"));
    const uint64_t get_503 =
        g.requests_total[RequestMethodLabel::slot("GET") * kLabelCount<StatusLabel> + StatusLabel::slot(503)];
    REQUIRE(get_503 > 0);
    CHECK_THAT(text,
               Catch::Contains("\nlb_requests_total{method=\"GET\",code=\"503\"} " + std::to_string(get_503) + "\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_backend_up{backend=\"a:1\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_backend_up{backend=\"b:2\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_shards 4\n"));
}

TEST_CASE("a disabled block records nothing", "[metrics][shards]") {
    ShardMetrics off(2, false);
    CHECK_FALSE(off.enabled());
    off.on_client_accepted();
    off.on_client_bytes_received(10);
    off.on_client_bytes_sent(10);
    off.on_request_done(200, 1000);
    off.on_response_sent(0, 200);
    off.on_error(ErrorKind::no_backend);
    off.on_retry();
    off.on_queue_wait();
    off.on_backend_response(1, MethodClass::post, 201, 5000);
    off.on_upstream_opened(1);
    off.on_passive_ejection(1);
    off.on_health_check(1, HealthResult::timeout);
    off.set_backend_up(1, true);
    off.set_backend_weight(1, 7);

    ShardMetrics on(2);
    CHECK(on.enabled());
    on.on_client_accepted();

    const ShardMetrics* blocks[] = {&off, &on, nullptr};
    const Snapshot snapshot = merge(blocks);
    CHECK(snapshot.blocks == 2);
    CHECK(snapshot.global.client_connections_accepted_total == 1);
    CHECK(snapshot.global.client_received_bytes_total == 0);
    CHECK(snapshot.global.request_duration_seconds.count() == 0);
    CHECK(snapshot.global.request_duration_by_code_seconds[StatusClassLabel::slot(200)].count() == 0);
    CHECK(snapshot.global.requests_total[StatusLabel::slot(200)] == 0);
    CHECK(snapshot.global.errors_total[static_cast<size_t>(ErrorKind::no_backend)] == 0);
    CHECK(snapshot.backends[1].response_duration_seconds.count() == 0);
    CHECK(snapshot.backends[1].upstream_connections_active == 0);
    CHECK(snapshot.backends[1].up == 0);
    CHECK(snapshot.backends[1].weight == 0);
}

TEST_CASE("requests are keyed by method class and bounded status code", "[metrics][shards]") {
    CHECK(method_class("GET") == MethodClass::get);
    CHECK(method_class("HEAD") == MethodClass::head);
    CHECK(method_class("POST") == MethodClass::post);
    CHECK(method_class("PUT") == MethodClass::put);
    CHECK(method_class("DELETE") == MethodClass::delete_);
    CHECK(method_class("PATCH") == MethodClass::other);
    CHECK(method_class("OPTIONS") == MethodClass::other);
    CHECK(method_class("get") == MethodClass::other);  // methods are case-sensitive
    CHECK(method_class("") == MethodClass::other);

    const auto code = [](unsigned status) { return std::string(CodeLabel::values[CodeLabel::slot(status)]); };
    CHECK(code(200) == "200");
    CHECK(code(404) == "404");
    CHECK(code(503) == "503");
    CHECK(code(100) == "1xx");
    CHECK(code(226) == "2xx");
    CHECK(code(418) == "4xx");
    CHECK(code(599) == "5xx");
    CHECK(code(600) == "other");
    CHECK(code(99) == "other");
    CHECK(code(12345) == "other");

    ShardMetrics shard(1);
    shard.on_backend_response(0, method_class("GET"), 200, 1);
    shard.on_backend_response(0, method_class("GET"), 200, 1);
    shard.on_backend_response(0, method_class("PATCH"), 418, 1);
    const ShardMetrics* blocks[] = {&shard};
    const std::string names[] = {"10.0.0.1:80"};
    const std::string text = render_prometheus(merge(blocks), ExpositionInfo{.version = "t", .backend_names = names});
    CHECK_THAT(text,
               Catch::Contains("\nlb_backend_requests_total{backend=\"10.0.0.1:80\",method=\"GET\",code=\"200\"} 2\n"));
    CHECK_THAT(text, Catch::Contains(
                         "\nlb_backend_requests_total{backend=\"10.0.0.1:80\",method=\"other\",code=\"4xx\"} 1\n"));
    // Pairs never seen are not exported: 6 methods x 28 codes per backend would be mostly zeros.
    CHECK_THAT(text, !Catch::Contains("method=\"POST\""));
}
