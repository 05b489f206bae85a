// Prometheus text exposition (format 0.0.4) of a merged Snapshot, plus the metrics about lb itself and the process.
#pragma once

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/process_stats.h"
#include "metrics/snapshot.h"
#include "metrics/stats.h"

namespace lb::metrics {

// The Content-Type the /metrics response must carry.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// A family whose label values only the caller knows (a TLS listener's address, a certificate's file): rendered
// after the list's families. Labels are given formatted and escaped (escape_label_value), values as integers.
struct ExtraFamily {
    enum class Type { counter, gauge };
    std::string name;
    Type type;
    std::string help;
    std::vector<std::pair<std::string, int64_t>> samples;  // labels ("a=\"1\",b=\"2\""), value
};

// What the exposition needs besides the counters. Views: they must stay valid for the render_prometheus() call.
// Every member has a default initializer so that designated initialization may name only some of them (GCC's
// -Wmissing-field-initializers, an error here, fires otherwise).
struct ExpositionInfo {
    std::string_view version = {};                       // lb_build_info{version="..."}
    unsigned shards = 0;                                 // lb_shards
    std::span<const std::string> backend_names = {};     // index = backend id, "host:port"; unnamed ids are not shown
    double start_time_seconds = 0;                       // lb_process_start_time_seconds: Unix time lb started at
    std::optional<ProcessStats> process = std::nullopt;  // process_* metrics; absent: not rendered (exact tests)
    std::span<const ExtraFamily> extra = {};             // rendered after the list's families
};

// Any thread; pure. One HELP and one TYPE line per family, its samples right after (the format requires a family's
// lines to be contiguous), label values escaped. Families of the list come first, in list order.
std::string render_prometheus(const Snapshot& snapshot, const ExpositionInfo& info);

// Label value escaping as the text format defines it: backslash, double quote and line feed become \\, \" and \n.
std::string escape_label_value(std::string_view value);
// HELP text escaping: backslash and line feed only (quotes are literal there).
std::string escape_help(std::string_view help);

// The families the list declares, as the exposition names them: for documentation and for tests that check naming
// conventions without parsing the output.
enum class MetricType { counter, gauge, histogram };
struct FamilyInfo {
    std::string_view name;
    MetricType type;
    std::string_view help;
    bool per_backend;  // carries a backend="host:port" label
};

// COUNTER_BY and COUNTER_BY2 expand to LB_METRICS_COUNTER when used, HISTOGRAM_BY to LB_METRICS_HISTOGRAM, so they
// follow their redefinitions below.
inline constexpr std::array kListFamilies = {
#define LB_METRICS_COUNTER(name, help) FamilyInfo{"lb_" #name, MetricType::counter, help, false},
#define LB_METRICS_GAUGE(name, merge, help) FamilyInfo{"lb_" #name, MetricType::gauge, help, false},
#define LB_METRICS_COUNTER_BY(name, Label, help) LB_METRICS_COUNTER(name, help)
#define LB_METRICS_COUNTER_BY2(name, A, B, help) LB_METRICS_COUNTER(name, help)
#define LB_METRICS_HISTOGRAM(name, help) FamilyInfo{"lb_" #name, MetricType::histogram, help, false},
#define LB_METRICS_HISTOGRAM_BY(name, Label, help) LB_METRICS_HISTOGRAM(name, help)
    LB_METRICS_GLOBAL_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                            LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_HISTOGRAM
#define LB_METRICS_COUNTER(name, help) FamilyInfo{"lb_backend_" #name, MetricType::counter, help, true},
#define LB_METRICS_GAUGE(name, merge, help) FamilyInfo{"lb_backend_" #name, MetricType::gauge, help, true},
#define LB_METRICS_HISTOGRAM(name, help) FamilyInfo{"lb_backend_" #name, MetricType::histogram, help, true},
        LB_METRICS_BACKEND_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                                 LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_COUNTER_BY
#undef LB_METRICS_COUNTER_BY2
#undef LB_METRICS_HISTOGRAM
#undef LB_METRICS_HISTOGRAM_BY
};

}  // namespace lb::metrics
