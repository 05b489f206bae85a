#include "metrics/exposition.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <vector>

namespace lb::metrics {

namespace {

// The text format escapes backslash and line feed everywhere, and double quotes in label values only.
std::string escape(std::string_view text, bool quotes) {
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) {
        if (c == '\\') {
            escaped += "\\\\";
        } else if (c == '\n') {
            escaped += "\\n";
        } else if (c == '"' && quotes) {
            escaped += "\\\"";
        } else {
            escaped += c;
        }
    }
    return escaped;
}

}  // namespace

std::string escape_label_value(std::string_view value) { return escape(value, true); }

std::string escape_help(std::string_view help) { return escape(help, false); }

namespace {

std::string_view type_name(MetricType type) {
    switch (type) {
        case MetricType::counter:
            return "counter";
        case MetricType::gauge:
            return "gauge";
        case MetricType::histogram:
            return "histogram";
    }
    return "untyped";
}

// Appends the text format line by line. Labels are passed as pre-rendered `key="escaped value"` pieces, either of
// which may be empty, so a per-backend family renders its backend label once per backend, not once per sample.
class Writer {
  public:
    explicit Writer(fmt::memory_buffer& out) : out_(out) {}

    void header(std::string_view name, MetricType type, std::string_view help) {
        fmt::format_to(fmt::appender(out_), "# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name,
                       type_name(type));
    }

    // `value` is already formatted: integers stay exact, seconds come from integer nanoseconds.
    void sample(std::string_view name, std::string_view suffix, std::string_view labels, std::string_view extra,
                std::string_view value) {
        out_.append(name);
        out_.append(suffix);
        if (!labels.empty() || !extra.empty()) {
            out_.push_back('{');
            out_.append(labels);
            if (!labels.empty() && !extra.empty()) out_.push_back(',');
            out_.append(extra);
            out_.push_back('}');
        }
        out_.push_back(' ');
        out_.append(value);
        out_.push_back('\n');
    }

    void sample(std::string_view name, std::string_view labels, std::string_view extra, uint64_t value) {
        const fmt::format_int text(value);
        sample(name, {}, labels, extra, std::string_view{text.data(), text.size()});
    }
    void sample(std::string_view name, std::string_view labels, int64_t value) {
        const fmt::format_int text(value);
        sample(name, {}, labels, {}, std::string_view{text.data(), text.size()});
    }
    void sample_double(std::string_view name, double value) { sample(name, {}, {}, {}, fmt::format("{}", value)); }

    template <class Label>
    void counters(std::string_view name, std::string_view labels, const ValueArray<Label>& values) {
        for (size_t i = 0; i < values.size(); ++i) {
            sample(name, labels, fmt::format("{}=\"{}\"", Label::key, Label::values[i]), values[i]);
        }
    }

    // Sparse: a pair appears from its first count on, and then forever (counters only grow), which Prometheus
    // handles like any series created on first use.
    template <class A, class B>
    void counters(std::string_view name, std::string_view labels, const ValueArray2<A, B>& values) {
        for (size_t a = 0; a < kLabelCount<A>; ++a) {
            for (size_t b = 0; b < kLabelCount<B>; ++b) {
                const uint64_t value = values[a * kLabelCount<B> + b];
                if (value == 0) continue;
                sample(name, labels, fmt::format("{}=\"{}\",{}=\"{}\"", A::key, A::values[a], B::key, B::values[b]),
                       value);
            }
        }
    }

    void histogram(std::string_view name, std::string_view labels, const HistogramSnapshot& histogram) {
        uint64_t cumulative = 0;
        std::string le;
        for (size_t i = 0; i < HistogramBuckets::kBuckets; ++i) {
            cumulative += histogram.buckets[i];
            le.assign("le=\"").append(HistogramBuckets::kLe[i]).append("\"");
            const fmt::format_int text(cumulative);
            sample(name, "_bucket", labels, le, std::string_view{text.data(), text.size()});
        }
        // Exact decimal seconds from integer nanoseconds, with no rounding through a double.
        sample(name, "_sum", labels, {},
               fmt::format("{}.{:09}", histogram.sum_ns / 1'000'000'000, histogram.sum_ns % 1'000'000'000));
        const fmt::format_int count(cumulative);
        sample(name, "_count", labels, {}, std::string_view{count.data(), count.size()});
    }

    // Sparse, like the pairs above: a label value appears from its first observation on.
    template <class Label>
    void histograms(std::string_view name, std::string_view labels, const HistogramSnapshotArray<Label>& values) {
        std::string with_value;
        for (size_t i = 0; i < values.size(); ++i) {
            if (values[i].count() == 0) continue;
            with_value.assign(labels);
            if (!with_value.empty()) with_value += ',';
            with_value += fmt::format("{}=\"{}\"", Label::key, Label::values[i]);
            histogram(name, with_value, values[i]);
        }
    }

  private:
    fmt::memory_buffer& out_;
};

}  // namespace

std::string render_prometheus(const Snapshot& snapshot, const ExpositionInfo& info) {
    fmt::memory_buffer out;
    Writer w(out);

    // Families from the list: global ones, then per-backend ones. Each expansion writes the header once, then the
    // samples (for every named backend, for per-backend families).
    const GlobalSnapshot& g = snapshot.global;
#define LB_METRICS_COUNTER(name, help)                \
    w.header("lb_" #name, MetricType::counter, help); \
    w.sample("lb_" #name, std::string_view{}, std::string_view{}, g.name);
#define LB_METRICS_GAUGE(name, merge, help)         \
    w.header("lb_" #name, MetricType::gauge, help); \
    w.sample("lb_" #name, std::string_view{}, g.name);
#define LB_METRICS_COUNTER_BY(name, Label, help)      \
    w.header("lb_" #name, MetricType::counter, help); \
    w.counters<Label>("lb_" #name, {}, g.name);
#define LB_METRICS_COUNTER_BY2(name, A, B, help)      \
    w.header("lb_" #name, MetricType::counter, help); \
    w.counters<A, B>("lb_" #name, {}, g.name);
#define LB_METRICS_HISTOGRAM(name, help)                \
    w.header("lb_" #name, MetricType::histogram, help); \
    w.histogram("lb_" #name, {}, g.name);
#define LB_METRICS_HISTOGRAM_BY(name, Label, help)      \
    w.header("lb_" #name, MetricType::histogram, help); \
    w.histograms<Label>("lb_" #name, {}, g.name);
    LB_METRICS_GLOBAL_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                            LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_COUNTER_BY
#undef LB_METRICS_COUNTER_BY2
#undef LB_METRICS_HISTOGRAM
#undef LB_METRICS_HISTOGRAM_BY

    // The backend label, escaped once per backend per scrape.
    const size_t backends = std::min(snapshot.backends.size(), info.backend_names.size());
    std::vector<std::string> backend_labels;
    backend_labels.reserve(backends);
    for (size_t id = 0; id < backends; ++id) {
        backend_labels.push_back(fmt::format("backend=\"{}\"", escape_label_value(info.backend_names[id])));
    }
#define LB_METRICS_FOR_BACKENDS(statement)                                 \
    for (size_t id = 0; id < backends; ++id) {                             \
        [[maybe_unused]] const BackendSnapshot& b = snapshot.backends[id]; \
        [[maybe_unused]] const std::string& labels = backend_labels[id];   \
        statement;                                                         \
    }
#define LB_METRICS_COUNTER(name, help)                        \
    w.header("lb_backend_" #name, MetricType::counter, help); \
    LB_METRICS_FOR_BACKENDS(w.sample("lb_backend_" #name, labels, std::string_view{}, b.name))
#define LB_METRICS_GAUGE(name, merge, help)                 \
    w.header("lb_backend_" #name, MetricType::gauge, help); \
    LB_METRICS_FOR_BACKENDS(w.sample("lb_backend_" #name, labels, b.name))
#define LB_METRICS_COUNTER_BY(name, Label, help)              \
    w.header("lb_backend_" #name, MetricType::counter, help); \
    LB_METRICS_FOR_BACKENDS(w.counters<Label>("lb_backend_" #name, labels, b.name))
#define LB_METRICS_COUNTER_BY2(name, A, B, help)              \
    w.header("lb_backend_" #name, MetricType::counter, help); \
    LB_METRICS_FOR_BACKENDS((w.counters<A, B>("lb_backend_" #name, labels, b.name)))
#define LB_METRICS_HISTOGRAM(name, help)                        \
    w.header("lb_backend_" #name, MetricType::histogram, help); \
    LB_METRICS_FOR_BACKENDS(w.histogram("lb_backend_" #name, labels, b.name))
#define LB_METRICS_HISTOGRAM_BY(name, Label, help)              \
    w.header("lb_backend_" #name, MetricType::histogram, help); \
    LB_METRICS_FOR_BACKENDS(w.histograms<Label>("lb_backend_" #name, labels, b.name))
    LB_METRICS_BACKEND_STATS(LB_METRICS_COUNTER, LB_METRICS_GAUGE, LB_METRICS_COUNTER_BY, LB_METRICS_COUNTER_BY2,
                             LB_METRICS_HISTOGRAM, LB_METRICS_HISTOGRAM_BY)
#undef LB_METRICS_COUNTER
#undef LB_METRICS_GAUGE
#undef LB_METRICS_COUNTER_BY
#undef LB_METRICS_COUNTER_BY2
#undef LB_METRICS_HISTOGRAM
#undef LB_METRICS_HISTOGRAM_BY
#undef LB_METRICS_FOR_BACKENDS

    for (const ExtraFamily& family : info.extra) {
        w.header(family.name, family.type == ExtraFamily::Type::counter ? MetricType::counter : MetricType::gauge,
                 family.help);
        for (const auto& [labels, value] : family.samples) w.sample(family.name, labels, value);
    }

    // About lb itself.
    w.header("lb_shards", MetricType::gauge, "Worker shards (threads with their own event loop) serving traffic.");
    w.sample("lb_shards", {}, static_cast<int64_t>(info.shards));
    w.header("lb_build_info", MetricType::gauge, "Always 1; the version of lb that is running is in its label.");
    w.sample("lb_build_info", fmt::format("version=\"{}\"", escape_label_value(info.version)), int64_t{1});
    w.header("lb_process_start_time_seconds", MetricType::gauge, "Unix time at which lb started, as lb recorded it.");
    w.sample_double("lb_process_start_time_seconds", info.start_time_seconds);

    // The standard process metrics, with the names every Prometheus client library uses, so stock dashboards work.
    if (info.process) {
        const ProcessStats& p = *info.process;
        if (p.cpu_seconds) {
            w.header("process_cpu_seconds_total", MetricType::counter,
                     "Total user and system CPU time spent in seconds.");
            w.sample_double("process_cpu_seconds_total", *p.cpu_seconds);
        }
        const auto bytes_gauge = [&](std::string_view name, std::string_view help, const std::optional<uint64_t>& v) {
            if (!v) return;
            w.header(name, MetricType::gauge, help);
            w.sample(name, {}, static_cast<int64_t>(*v));
        };
        bytes_gauge("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_memory_bytes);
        bytes_gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_memory_bytes);
        bytes_gauge("process_open_fds", "Number of open file descriptors.", p.open_fds);
        bytes_gauge("process_max_fds", "Maximum number of open file descriptors.", p.max_fds);
        if (p.start_time_seconds) {
            w.header("process_start_time_seconds", MetricType::gauge,
                     "Start time of the process since unix epoch in seconds.");
            w.sample_double("process_start_time_seconds", *p.start_time_seconds);
        }
    }
    return fmt::to_string(out);
}

}  // namespace lb::metrics
