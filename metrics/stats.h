// The vocabulary of lb's metrics: single-writer counters, gauges and histograms, the label sets, and the ONE list
// of every metric (LB_METRICS_GLOBAL_STATS, LB_METRICS_BACKEND_STATS). The lists expand into the per-shard live
// structs (shard_metrics.h), the plain-number snapshot structs and the merge (snapshot.h), and the exposition names,
// HELP texts and TYPEs (exposition.h), so a metric cannot exist in one place and be missing in another.
//
// Threading: every Counter/Gauge/Histogram is written by exactly one thread (the shard that owns the block) and may
// be read by any thread at any time. No locks, no read-modify-write instructions.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lb::metrics {

// Per-shard blocks are aligned to this so that two shards never write the same cache line. 64 rather than
// std::hardware_destructive_interference_size: GCC warns (-Winterference-size) when that constant appears in a header
// because its value may differ between translation units.
inline constexpr size_t kCacheLine = 64;

using BackendIndex = uint32_t;  // same value as pool::BackendId: index into the configured backend list

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free,
              "metrics rely on plain loads and stores of 64-bit atomics");

// A monotonically increasing count with one writer. The writer does load + store, both relaxed, instead of
// fetch_add: with a single writer no increment can be lost, and a plain store costs no locked instruction on the
// hot path. The atomic type is there only so that the scraper's concurrent read is not a data race (TSan agrees).
class Counter {
  public:
    void add(uint64_t n) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void inc() { add(1); }
    uint64_t load() const { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> value_{0};
};

// A value that goes up and down, one writer, same reasoning as Counter. Signed so that a shard's transient view can
// be summed with others without wrapping.
class Gauge {
  public:
    void add(int64_t delta) { value_.store(value_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed); }
    void set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
    int64_t load() const { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<int64_t> value_{0};
};

// How a gauge held by several blocks combines at scrape time. `sum` for quantities that add up across shards
// (open connections); `max` for a state that each writer holds a copy of (backend up, effective weight): summing
// those would report up=16 on 16 shards, and blocks that never set the value (left at 0) do not lower a max.
// Gauges merged with `max` must be non-negative.
enum class GaugeMerge { sum, max };

// Latency buckets in integer nanoseconds (what uv_hrtime() returns), from 100 µs to 10 s in 1-2.5-5 steps, plus +Inf.
// `le` is inclusive, as Prometheus defines it: an observation equal to a bound falls into that bound's bucket.
struct HistogramBuckets {
    static constexpr size_t kBounds = 16;
    static constexpr size_t kBuckets = kBounds + 1;  // last one is +Inf
    // clang-format off
    static constexpr std::array<uint64_t, kBounds> kUpperNs = {
        100'000,     250'000,     500'000,       1'000'000,     2'500'000,     5'000'000,
        10'000'000,  25'000'000,  50'000'000,    100'000'000,   250'000'000,   500'000'000,
        1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
    // clang-format on
    // The `le` label values, written out rather than formatted from doubles so that they never change with a
    // formatting library's choice of precision.
    static constexpr std::array<std::string_view, kBuckets> kLe = {
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
        "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};

    // Index of the bucket for an observation: the number of bounds strictly below it (0..16). A branchless binary
    // search: five dependent compares that compile to flag arithmetic (setcc/adc at -O2, no jumps), so recording
    // costs the same for every latency and never mispredicts.
    static constexpr size_t index(uint64_t ns) {
        size_t base = 0;
        base += kUpperNs[base + 8] < ns ? 8 : 0;
        base += kUpperNs[base + 4] < ns ? 4 : 0;
        base += kUpperNs[base + 2] < ns ? 2 : 0;
        base += kUpperNs[base + 1] < ns ? 1 : 0;
        return base + (kUpperNs[base] < ns ? 1 : 0);
    }
};
static_assert(HistogramBuckets::index(0) == 0 && HistogramBuckets::index(100'000) == 0 &&
              HistogramBuckets::index(100'001) == 1 && HistogramBuckets::index(10'000'000'000) == 15 &&
              HistogramBuckets::index(10'000'000'001) == 16 && HistogramBuckets::index(UINT64_MAX) == 16);

// Per-bucket counts are stored non-cumulative (one store per observation); the exposition accumulates them. There is
// no separate count: it is derived from the buckets at read time, so `_count` always equals the +Inf bucket even when
// a scrape races a recording (a separately stored count could be read one behind or ahead of the buckets).
class Histogram {
  public:
    void record(uint64_t ns) {
        buckets_[HistogramBuckets::index(ns)].inc();
        sum_ns_.add(ns);
    }
    uint64_t bucket(size_t i) const { return buckets_[i].load(); }
    uint64_t sum_ns() const { return sum_ns_.load(); }

  private:
    std::array<Counter, HistogramBuckets::kBuckets> buckets_;
    Counter sum_ns_;  // integer nanoseconds: exact, and 584 years of summed latency before it wraps
};

// ---- Label sets -------------------------------------------------------------------------------------------------
// A label set is a struct with `key` (the label name) and `values` (every value it can take, in slot order).
// Storage for a labelled metric is one counter per value, so cardinality is fixed at compile time.

// Errors, recorded where they happen. Client-side kinds count once per request; upstream-side kinds count once per
// failed attempt, so a refused connect that was retried elsewhere still shows up.
#define LB_METRICS_ERROR_KINDS(X)                                                              \
    X(client_parse_error)    /* malformed or ambiguous request: 400 */                         \
    X(header_limit)          /* header section over the byte or count limit: 431 */            \
    X(uri_limit)             /* request target over the limit: 414 */                          \
    X(body_limit)            /* request body over the limit: 413 */                            \
    X(client_timeout)        /* client did not send its header section in time: 408 */         \
    X(connect_refused)       /* upstream connect failed (refused, unreachable): one attempt */ \
    X(connect_timeout)       /* upstream connect did not complete in time: one attempt */      \
    X(upstream_timeout)      /* backend did not answer in time: 504 */                         \
    X(upstream_reset)        /* upstream connection lost before the response completed */      \
    X(no_backend)            /* no eligible backend: 503 */                                    \
    X(bad_response)          /* backend sent something lb cannot forward: 502 */               \
    X(version_not_supported) /* request line not HTTP/1.0 or 1.1: 505 */                       \
    X(queue_timeout)         /* waited queue.timeout for a connection slot: 503 */             \
    X(local_resources)       /* lb out of descriptors or memory for this request: 503 */       \
    X(no_route)              /* no route of `routes:` matches the request: 404 */

enum class ErrorKind : uint8_t {
#define LB_METRICS_X(name) name,
    LB_METRICS_ERROR_KINDS(LB_METRICS_X)
#undef LB_METRICS_X
};

struct ErrorKindLabel {
    static constexpr std::string_view key = "kind";
    static constexpr std::array values = {
#define LB_METRICS_X(name) std::string_view{#name},
        LB_METRICS_ERROR_KINDS(LB_METRICS_X)
#undef LB_METRICS_X
    };
};

// What lb itself ran out of, where: descriptors or memory on accepting a client or connecting to a backend.
#define LB_METRICS_RESOURCE_OPS(X) \
    X(accept)                      \
    X(connect)

enum class ResourceOp : uint8_t {
#define LB_METRICS_X(name) name,
    LB_METRICS_RESOURCE_OPS(LB_METRICS_X)
#undef LB_METRICS_X
};

struct ResourceOpLabel {
    static constexpr std::string_view key = "op";
    static constexpr std::array values = {
#define LB_METRICS_X(name) std::string_view{#name},
        LB_METRICS_RESOURCE_OPS(LB_METRICS_X)
#undef LB_METRICS_X
    };
};

// Results of one active health check. Which health::CheckResult counts under which is one table next to
// CheckResult's definition (health/health_decision.h).
#define LB_METRICS_HEALTH_RESULTS(X)                                                                    \
    X(success)       /* expected status received in time */                                             \
    X(bad_status)    /* a response, but not an acceptable one: unexpected status, too slow, not HTTP */ \
    X(connect_error) /* refused, unreachable, or the connection lost before a whole response */         \
    X(timeout)       /* no response within the check timeout */

enum class HealthResult : uint8_t {
#define LB_METRICS_X(name) name,
    LB_METRICS_HEALTH_RESULTS(LB_METRICS_X)
#undef LB_METRICS_X
};

struct HealthResultLabel {
    static constexpr std::string_view key = "result";
    static constexpr std::array values = {
#define LB_METRICS_X(name) std::string_view{#name},
        LB_METRICS_HEALTH_RESULTS(LB_METRICS_X)
#undef LB_METRICS_X
    };
};

// Which way tunnel bytes went, after a 101 (Switching Protocols).
struct TunnelDirectionLabel {
    static constexpr std::string_view key = "direction";
    static constexpr std::array values = {std::string_view{"client_to_backend"}, std::string_view{"backend_to_client"}};
};
enum class TunnelDirection : uint8_t { client_to_backend, backend_to_client };

// Request methods, folded into the few that dashboards split by; everything else (OPTIONS, PATCH, CONNECT,
// WebDAV...) is `other`, which keeps an attacker from minting series with invented methods.
enum class MethodClass : uint8_t { get, head, post, put, delete_, other };

struct MethodLabel {
    static constexpr std::string_view key = "method";
    static constexpr std::array values = {std::string_view{"GET"},    std::string_view{"HEAD"},
                                          std::string_view{"POST"},   std::string_view{"PUT"},
                                          std::string_view{"DELETE"}, std::string_view{"other"}};
};

// `method` is the request method as sent (llhttp_method_name() gives it); case-sensitive, as HTTP methods are.
MethodClass method_class(std::string_view method);

// Response status codes. A per-backend table of every code 100..599 would be 500 counters × 6 methods per backend
// per shard, almost all zero, so the `code` label takes the exact code only for the codes below (the ones operators
// alert on), and every other code is folded into its class, written "1xx".."5xx". Both forms match the usual
// `code=~"5.."` selector. A status outside 100..599 (llhttp accepts any three digits) is "other".
// clang-format off
#define LB_METRICS_STATUS_CODES(X) \
    X(200) X(201) X(204) X(206) X(301) X(302) X(304) X(307) X(308) X(400) X(401) X(403) X(404) X(405) X(408) \
    X(409) X(413) X(429) X(500) X(502) X(503) X(504)

struct CodeLabel {
    static constexpr std::string_view key = "code";
    static constexpr std::array values = {
#define LB_METRICS_X(code) std::string_view{#code},
        LB_METRICS_STATUS_CODES(LB_METRICS_X)
#undef LB_METRICS_X
        std::string_view{"1xx"}, std::string_view{"2xx"}, std::string_view{"3xx"}, std::string_view{"4xx"},
        std::string_view{"5xx"}, std::string_view{"other"}};
    // clang-format on
    static constexpr size_t kClassBase = values.size() - 6;  // slot of "1xx"
    static constexpr size_t kOther = values.size() - 1;

    // One table lookup per response: slot for every three-digit status.
    static constexpr std::array<uint8_t, 1000> kSlots = [] {
        std::array<uint8_t, 1000> slots{};
        for (size_t code = 0; code < slots.size(); ++code) {
            slots[code] = code >= 100 && code < 600 ? static_cast<uint8_t>(kClassBase + code / 100 - 1)
                                                    : static_cast<uint8_t>(kOther);
        }
        size_t slot = 0;
#define LB_METRICS_X(code) slots[code] = static_cast<uint8_t>(slot++);
        LB_METRICS_STATUS_CODES(LB_METRICS_X)
#undef LB_METRICS_X
        return slots;
    }();

    static constexpr size_t slot(unsigned status) { return status < kSlots.size() ? kSlots[status] : kOther; }
};
static_assert(CodeLabel::slot(200) == 0 && CodeLabel::values[CodeLabel::slot(404)] == "404" &&
              CodeLabel::values[CodeLabel::slot(418)] == "4xx" && CodeLabel::values[CodeLabel::slot(99)] == "other" &&
              CodeLabel::values[CodeLabel::slot(600)] == "other" && CodeLabel::values[CodeLabel::slot(101)] == "1xx");

// Request methods as lb_requests_total counts what clients asked: the methods of RFC 9110 and PATCH (RFC 5789) by
// name, every other token as OTHER, so that a client cannot mint series by inventing methods.
#define LB_METRICS_REQUEST_METHODS(X) X(GET) X(HEAD) X(POST) X(PUT) X(DELETE) X(CONNECT) X(OPTIONS) X(TRACE) X(PATCH)

struct RequestMethodLabel {
    static constexpr std::string_view key = "method";
    static constexpr std::array values = {
#define LB_METRICS_X(name) std::string_view{#name},
        LB_METRICS_REQUEST_METHODS(LB_METRICS_X)
#undef LB_METRICS_X
            std::string_view{"OTHER"}};
    static constexpr size_t kOther = values.size() - 1;

    // `method` as sent (llhttp_method_name() gives it), case-sensitive as methods are; "" for a request whose
    // method was never parsed (lb refused it first).
    static constexpr size_t slot(std::string_view method) {
        for (size_t i = 0; i < kOther; ++i) {
            if (values[i] == method) return i;
        }
        return kOther;
    }
};
static_assert(RequestMethodLabel::values[RequestMethodLabel::slot("PATCH")] == "PATCH" &&
              RequestMethodLabel::slot("get") == RequestMethodLabel::kOther &&
              RequestMethodLabel::slot("") == RequestMethodLabel::kOther);

// The exact three-digit status of a response lb sent to a client, "100".."599". lb sends nothing else (a backend's
// status outside that range is an invalid response, answered 502); "other" is there so that a bug cannot index past
// the array. With a method each, 5010 counters per worker, exported only once seen (COUNTER_BY2).
namespace detail {
inline constexpr size_t kFirstStatus = 100;
inline constexpr size_t kStatusCount = 500;
inline constexpr auto kStatusDigits = [] {
    std::array<std::array<char, 3>, kStatusCount> digits{};
    for (size_t i = 0; i < kStatusCount; ++i) {
        const size_t code = kFirstStatus + i;
        digits[i] = {static_cast<char>('0' + code / 100), static_cast<char>('0' + code / 10 % 10),
                     static_cast<char>('0' + code % 10)};
    }
    return digits;
}();
}  // namespace detail

struct StatusLabel {
    static constexpr std::string_view key = "code";
    static constexpr auto values = [] {
        std::array<std::string_view, detail::kStatusCount + 1> names{};
        for (size_t i = 0; i < detail::kStatusCount; ++i) names[i] = {detail::kStatusDigits[i].data(), 3};
        names[detail::kStatusCount] = "other";
        return names;
    }();
    static constexpr size_t slot(unsigned status) {
        return status >= detail::kFirstStatus && status < detail::kFirstStatus + detail::kStatusCount
                   ? status - detail::kFirstStatus
                   : detail::kStatusCount;
    }
};
static_assert(StatusLabel::values[StatusLabel::slot(100)] == "100" &&
              StatusLabel::values[StatusLabel::slot(503)] == "503" &&
              StatusLabel::values[StatusLabel::slot(599)] == "599" &&
              StatusLabel::values[StatusLabel::slot(600)] == "other" &&
              StatusLabel::values[StatusLabel::slot(99)] == "other");

// The class of a response's status, "1xx".."5xx", for the request duration histograms by code: exact codes would
// multiply their 17 buckets by hundreds. Same key as the exact code, so `code=~"5.."` selects both.
struct StatusClassLabel {
    static constexpr std::string_view key = "code";
    static constexpr std::array values = {std::string_view{"1xx"}, std::string_view{"2xx"}, std::string_view{"3xx"},
                                          std::string_view{"4xx"}, std::string_view{"5xx"}};
    // A status outside 100..599 (never sent) counts as 5xx: it would be lb's failure.
    static constexpr size_t slot(unsigned status) { return status >= 100 && status < 600 ? status / 100 - 1 : 4; }
};
static_assert(StatusClassLabel::values[StatusClassLabel::slot(204)] == "2xx" &&
              StatusClassLabel::values[StatusClassLabel::slot(503)] == "5xx");

template <class Label>
inline constexpr size_t kLabelCount = Label::values.size();

// One counter per label value.
template <class Label>
using CounterArray = std::array<Counter, kLabelCount<Label>>;
// One counter per pair of label values, row-major: index = a * kLabelCount<B> + b.
template <class A, class B>
using CounterArray2 = std::array<Counter, kLabelCount<A> * kLabelCount<B>>;
// One histogram per label value.
template <class Label>
using HistogramArray = std::array<Histogram, kLabelCount<Label>>;

// ---- THE list ---------------------------------------------------------------------------------------------------
// Every metric lb exports, declared once. Columns:
//   COUNTER(name, help)                      name ends in _total
//   GAUGE(name, merge, help)                 merge: sum | max (GaugeMerge)
//   COUNTER_BY(name, Label, help)            one series per label value, all exported (zeros included) so rate()
//                                            works from the first scrape
//   COUNTER_BY2(name, LabelA, LabelB, help)  one series per pair; only pairs seen at least once are exported
//   HISTOGRAM(name, help)                    latency in seconds (recorded in ns), name ends in _seconds
//   HISTOGRAM_BY(name, Label, help)          one histogram per label value; only values seen at least once are
//                                            exported
// The exposition name is the member name prefixed with "lb_" (global) or "lb_backend_" (per backend, with a
// backend="host:port" label first). Member names therefore carry the Prometheus unit and _total suffixes.

// Per shard, not per backend.
#define LB_METRICS_GLOBAL_STATS(COUNTER, GAUGE, COUNTER_BY, COUNTER_BY2, HISTOGRAM, HISTOGRAM_BY)                   \
    GAUGE(client_connections_active, sum, "Client connections currently open.")                                     \
    COUNTER(client_connections_accepted_total, "Client connections accepted.")                                      \
    COUNTER(client_received_bytes_total, "Bytes received from clients.")                                            \
    COUNTER(client_sent_bytes_total, "Bytes sent to clients.")                                                      \
    COUNTER_BY(errors_total, ErrorKindLabel,                                                                        \
               "Errors by kind: client-side kinds once per request, upstream-side kinds once per failed attempt.")  \
    COUNTER(retries_total, "Requests sent again, to another backend or connection, after a failed attempt.")        \
    COUNTER(queue_waits_total, "Requests that had to wait for an upstream connection slot before being sent.")      \
    COUNTER_BY(resource_exhaustion_total, ResourceOpLabel,                                                          \
               "Times lb itself ran out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), by the "   \
               "operation that failed. Never counted against a backend.")                                           \
    COUNTER(access_log_dropped_total,                                                                               \
            "Access log lines dropped because the writer thread fell behind and the worker's buffer was full.")     \
    COUNTER(accept_pauses_total,                                                                                    \
            "Times a worker stopped accepting for a while: limits.client_connections or limits.buffer_memory "      \
            "reached, or no descriptor left.")                                                                      \
    GAUGE(buffer_bytes, sum,                                                                                        \
          "Memory held in read buffers and queued writes (bounded by limits.buffer_memory); read from the "         \
          "workers' budgets at scrape time.")                                                                       \
    COUNTER_BY2(requests_total, RequestMethodLabel, StatusLabel,                                                    \
                "Responses lb sent to clients, its own errors (400, 408, 413, 414, 431, 502, 503, 504, 505) "       \
                "included, by request method and exact status code.")                                               \
    HISTOGRAM(request_duration_seconds,                                                                             \
              "Time from a request's first byte received to its response's last byte sent, as the client sees it.") \
    HISTOGRAM_BY(request_duration_by_code_seconds, StatusClassLabel,                                                \
                 "The same time as lb_request_duration_seconds, one histogram per class of the status sent.")       \
    GAUGE(tunnels_open, sum, "Upgraded connections (WebSocket...) relaying bytes both ways now.")                   \
    COUNTER(tunnels_total, "Upgraded connections opened: a backend answered 101 to an Upgrade request.")            \
    COUNTER_BY(tunnel_bytes_total, TunnelDirectionLabel, "Bytes relayed through tunnels, by direction.")

// Per shard and per backend, stored as an array indexed by backend id.
#define LB_METRICS_BACKEND_STATS(COUNTER, GAUGE, COUNTER_BY, COUNTER_BY2, HISTOGRAM, HISTOGRAM_BY)                    \
    COUNTER_BY2(requests_total, MethodLabel, CodeLabel,                                                               \
                "Responses received from the backend, by request method and status code (uncommon codes folded into " \
                "their class, e.g. 4xx).")                                                                            \
    HISTOGRAM(response_duration_seconds,                                                                              \
              "Time from dispatching a request to the backend (connect included) to the response's last byte.")       \
    GAUGE(upstream_connections_active, sum, "Upstream connections in use by a request, connecting included.")         \
    GAUGE(upstream_connections_idle, sum, "Upstream keep-alive connections parked in the idle pool.")                 \
    COUNTER(passive_ejections_total, "Times the backend was ejected because of failures seen on live traffic.")       \
    COUNTER_BY(health_checks_total, HealthResultLabel, "Active health checks by result.")                             \
    GAUGE(up, max, "1 if the backend is eligible for traffic (healthy, not ejected), else 0.")                        \
    GAUGE(weight, max, "Effective weight of the backend in the balancer.")

}  // namespace lb::metrics
