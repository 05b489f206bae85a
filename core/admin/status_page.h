// The /status page: the pool and the shards as JSON, for operators and scripts. Pure: built from plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lb::core {

struct BackendStatus {
    std::string name;
    uint32_t weight = 1;  // as the workers use it now (an override, slow start)
    bool healthy = true;
    int64_t in_flight = 0;  // active upstream connections over all shards: one per request being served
    int64_t idle_connections = 0;
    std::string last_check;  // e.g. "status 200", "connection refused"; empty when never checked
    // Consecutive failures real requests met, counted towards the next passive ejection (health.passive).
    uint32_t passive_failures = 0;
    // pool::reported_state(): "up", "down", "ejected", "draining", "disabled", and why. Empty: from `healthy`.
    std::string state;
    std::string why;
    std::string admin_state = "enabled";  // pool::admin_state_name()
    uint32_t configured_weight = 1;       // as lb.yaml says
    std::string pool = "default";         // the pool it belongs to (`pools:`)
    // Cumulative since this configuration generation started, over all shards: the status page turns them into
    // rates from one refresh to the next.
    uint64_t requests = 0;  // responses received from the backend
    uint64_t errors = 0;    // of which 5xx
    // From the merged response-time histogram (metrics/summary.h); nothing before the first response.
    std::optional<double> latency_p50_seconds;
    std::optional<double> latency_p99_seconds;
};

// One backend as /status and /backends show it: a JSON object.
std::string render_backend_json(const BackendStatus& backend);

struct ShardStatus {
    unsigned index = 0;
    int64_t active_connections = 0;
    uint64_t accepted_connections = 0;
};

struct CertificateStatus {
    std::string listener;  // "0.0.0.0:8443"
    std::string file;
    std::vector<std::string> names;
    int64_t not_after_unix = 0;
};

struct StatusInput {
    std::string version;
    std::vector<BackendStatus> backends;
    std::vector<ShardStatus> shards;
    std::vector<CertificateStatus> certificates;
    double uptime_seconds = 0;          // since the process started, across reloads
    unsigned config_generation = 1;     // 1 at start, one more at each successful reload
    std::string config_file;            // as given on the command line; empty when lb did not read a file
    bool admin_token_required = false;  // admin.token_file is set: changes need Authorization: Bearer
};

std::string render_status_json(const StatusInput& status);

}  // namespace lb::core
