#include "core/admin/status_page.h"

#include <fmt/format.h>

#include <iterator>

#include "base/json_string.h"

namespace lb::core {

using base::json_string;

namespace {

// Seconds to the microsecond, or null.
std::string json_seconds(std::optional<double> seconds) {
    return seconds ? fmt::format("{:.6f}", *seconds) : std::string("null");
}

}  // namespace

std::string render_backend_json(const BackendStatus& b) {
    std::string state = b.state.empty() ? (b.healthy ? "up" : "down") : b.state;
    return fmt::format(
        "{{\"name\":{},\"state\":{},\"why\":{},\"admin_state\":{},\"weight\":{},\"configured_weight\":{},"
        "\"in_flight\":{},\"idle_connections\":{},\"last_check\":{},\"requests\":{},\"errors\":{},"
        "\"latency_p50_seconds\":{},\"latency_p99_seconds\":{},\"pool\":{},\"passive_failures\":{}}}",
        json_string(b.name), json_string(state), b.why.empty() ? "null" : json_string(b.why),
        json_string(b.admin_state), b.weight, b.configured_weight, b.in_flight, b.idle_connections,
        b.last_check.empty() ? "null" : json_string(b.last_check), b.requests, b.errors,
        json_seconds(b.latency_p50_seconds), json_seconds(b.latency_p99_seconds), json_string(b.pool),
        b.passive_failures);
}

std::string render_status_json(const StatusInput& status) {
    std::string out = fmt::format("{{\"version\":{},\"backends\":[", json_string(status.version));
    for (size_t i = 0; i < status.backends.size(); ++i) {
        out += i ? "," : "";
        out += render_backend_json(status.backends[i]);
    }
    out += "],\"shards\":[";
    for (size_t i = 0; i < status.shards.size(); ++i) {
        const auto& s = status.shards[i];
        fmt::format_to(std::back_inserter(out),
                       "{}{{\"index\":{},\"active_connections\":{},\"accepted_connections\":{}}}", i ? "," : "",
                       s.index, s.active_connections, s.accepted_connections);
    }
    out += "],\"certificates\":[";
    for (size_t i = 0; i < status.certificates.size(); ++i) {
        const auto& c = status.certificates[i];
        std::string names;
        for (size_t n = 0; n < c.names.size(); ++n) names += (n ? "," : "") + json_string(c.names[n]);
        fmt::format_to(std::back_inserter(out),
                       "{}{{\"listener\":{},\"file\":{},\"names\":[{}],\"not_after_unix\":{}}}", i ? "," : "",
                       json_string(c.listener), json_string(c.file), names, c.not_after_unix);
    }
    fmt::format_to(std::back_inserter(out),
                   "],\"uptime_seconds\":{:.3f},\"config_generation\":{},\"config_file\":{},"
                   "\"admin_token_required\":{}}}\n",
                   status.uptime_seconds, status.config_generation, json_string(status.config_file),
                   status.admin_token_required);
    return out;
}

}  // namespace lb::core
