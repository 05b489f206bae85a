// lb.yaml, loaded into typed structs. Loading validates everything up front: a Config that exists is usable.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "access_log/access_log_config.h"
#include "health/health_config.h"
#include "http/header_rewrite.h"
#include "net/tls_config.h"
#include "pool/balancer_options.h"
#include "route/route_match.h"

namespace lb::core {

using Millis = std::chrono::milliseconds;

struct HostPort {
    std::string host;  // a literal IPv4/IPv6 address or a name, resolved when the balancer starts
    uint16_t port = 0;
    bool operator==(const HostPort&) const = default;
};

// Where lb accepts clients: a TCP host:port, or a Unix domain socket ("unix:/run/lb.sock" in lb.yaml), for
// clients on the same machine such as another proxy in front, or a test driver that needs no port.
struct ListenAddress {
    HostPort tcp;           // unused when unix_path is set
    std::string unix_path;  // the socket file's path, as written after "unix:"

    bool is_unix() const { return !unix_path.empty(); }
    // "0.0.0.0:8080", "[::1]:8080" or "unix:/run/lb.sock": as lb.yaml spells it.
    std::string to_string() const;
    bool operator==(const ListenAddress&) const = default;
};

// One address lb accepts clients on; with a `tls:` section, an HTTPS listener.
struct ListenerConfig {
    ListenAddress address;
    std::optional<net::TlsListenerConfig> tls = std::nullopt;
    bool operator==(const ListenerConfig&) const = default;
};

struct BackendConfig {
    std::string address;  // "host:port" as written, used as the backend's name in logs and metrics
    HostPort endpoint;
    uint32_t weight = 1;
    // Takes traffic only while no primary backend is eligible (nginx and HAProxy `backup`).
    bool backup = false;
    // Most requests in flight to it across all shards; 0 = unlimited (pool::Backend::max_connections).
    uint32_t max_connections = 0;
    // Its own `health:` keys (path, interval, timeout, rise, fall, port, host); unset ones take `health:`'s.
    health::CheckOverrides health;
    // TLS to it (its own `tls:`, or `upstream.tls`); health checks use the same.
    net::TlsUpstreamConfig tls;
    size_t pool = 0;  // index into Config::pools
};

// The per-shard wait queue for requests that find every eligible backend at its max_connections.
struct QueueConfig {
    uint32_t size = 1024;   // requests waiting per shard; 0 = no queue: 503 at once
    Millis timeout{5'000};  // longest wait in the queue, then 503
    bool operator==(const QueueConfig&) const = default;
};

// Defaults follow what nginx, HAProxy and Envoy operators are used to; lb.yaml documents each.
struct Timeouts {
    Millis connect{5'000};              // TCP connect to a backend (Envoy: 5 s)
    Millis client_header{10'000};       // whole request header section, from its first byte (HAProxy http-request)
    Millis client_keepalive{60'000};    // idle client connection between requests (nginx keepalive_timeout ~75 s)
    Millis client_send{60'000};         // a client that takes no byte of a waiting response for this long is
                                        // closed (nginx send_timeout)
    Millis upstream_response{60'000};   // waiting for the backend's response, and between its reads (nginx 60 s)
    Millis upstream_keepalive{60'000};  // idle pooled upstream connection (nginx upstream keepalive_timeout 60 s)
    Millis drain{30'000};               // graceful shutdown: in-flight requests get this long to finish
    // While a generation drains, a client connection with no request in progress (idle between requests, or yet to
    // send its first) is kept this long for the request that may be on its way, which is answered with
    // Connection: close; then it gets a lingering close. Capped by drain.
    Millis drain_idle_grace{1'000};
    // An upgraded connection (WebSocket...) with no byte relayed either way for this long is closed (HAProxy
    // timeout tunnel, nginx proxy_read_timeout for WebSockets). A drain ends tunnels at its own deadline.
    Millis tunnel{3'600'000};
};

struct Limits {
    uint64_t header_bytes = 64 * 1024;         // request line + header section (Envoy: 60 KiB)
    uint32_t header_count = 100;               // header fields per request (Envoy: 100)
    uint64_t uri_bytes = 8 * 1024;             // request target (nginx: 8 KiB lines)
    uint64_t request_body_bytes = 1ULL << 30;  // 1 GiB; 0 means unlimited
    // Client connections open at once, for the whole process, split evenly across workers (nginx
    // worker_connections, HAProxy maxconn). 0 = auto: half the open-file limit, less a reserve, since every
    // client connection may hold an upstream one too.
    uint32_t client_connections = 0;
    // Bytes that may wait to be written towards one side of a connection before lb stops reading the other side
    // (Envoy's per_connection_buffer_limit_bytes). The memory bound of a connection is derived from it.
    uint64_t buffer_per_connection = 256 * 1024;
    // Read buffers and queued writes of the whole process, split across workers; a worker that reaches its share
    // stops reading and accepting until enough is freed, instead of allocating more.
    uint64_t buffer_memory = 1ULL << 30;
};

// The admin listener: /metrics and /status, kept off the traffic port and on loopback by default.
// `request_id:` the header that carries a request's id: passed on when the client sent one, made by lb when not,
// and in either case sent to the backend and returned to the client.
struct RequestIdConfig {
    bool enabled = true;
    std::string header = "X-Request-Id";
};

struct AdminConfig {
    bool enabled = true;
    HostPort listen{"127.0.0.1", 9090};
    // `token_file`: when set, every POST (the admin API's changes) needs `Authorization: Bearer <token>`. The
    // token is the file's content without its trailing white space, read when the config loads (and reloads).
    std::string token_file;
    std::string token;
};

inline constexpr unsigned kUnlimited = std::numeric_limits<unsigned>::max();

// A set of backends balanced together: `pools:` names them; the top-level `backends:` is the pool "default".
// Its backends are a slice of Config::backends, so every per-backend table (health, metrics, the admin API) keeps
// one index space across pools.
struct PoolConfig {
    std::string name;
    size_t first_backend = 0;
    size_t backend_count = 0;
    // Its own `algorithm:` (and options) and `retries:`; unset: the top level's (Config::balancer_of, retries_of).
    std::optional<pool::BalancerOptions> balancer = std::nullopt;
    std::optional<unsigned> retries = std::nullopt;
    // Its own `queue:` and `upstream: {keepalive}` (its `upstream.tls` is folded into its backends at load).
    std::optional<QueueConfig> queue = std::nullopt;
    std::optional<unsigned> upstream_keepalive = std::nullopt;
    bool operator==(const PoolConfig&) const = default;
};

// One entry of `routes:`: the first whose `match` holds chooses the pool and what is done to the request.
struct RouteConfig {
    // Its `name:`, else "routes[N]": the `route` label of lb_route_responses_total.
    std::string name;
    route::RouteMatch match;
    size_t pool = 0;  // index into Config::pools
    http::HeaderRewrite request_headers;
    http::HeaderRewrite response_headers;
    std::string strip_prefix;  // taken off the path before the request goes to the backend
    // Its own `retries:` and `timeouts: {connect, upstream_response}`, else the pool's and the top level's.
    std::optional<unsigned> retries;
    std::optional<Millis> connect_timeout;
    std::optional<Millis> upstream_response_timeout;
    int line = 0;  // where it is in lb.yaml (1-based), for messages about it
    int column = 0;
    bool operator==(const RouteConfig&) const = default;
};

// Something about a config that loads and is worth telling its operator (a certificate that expires soon): `lb
// --check` prints each one, lb logs each one when it starts and when it reloads. Not an error: the config is used.
struct ConfigWarning {
    std::string file;
    int line = 0;
    int column = 0;
    std::string message;
    // "file:line:column: message", as errors read.
    std::string to_string() const;
};

struct Config {
    std::string source;  // the file it came from, for messages
    // `listen:` one address or a list of them; each gets its socket in every worker.
    std::vector<ListenerConfig> listeners{ListenerConfig{ListenAddress{{"0.0.0.0", 8080}, {}}}};
    unsigned workers = 0;  // 0 = "auto": one per core
    // Every backend of every pool, pool by pool in the order `backends:` then `pools:` list them.
    std::vector<BackendConfig> backends;
    std::vector<PoolConfig> pools;    // at least one
    std::vector<RouteConfig> routes;  // empty: every request goes to the first pool
    Timeouts timeouts;
    Limits limits;
    unsigned retries = 2;  // further attempts after the first, each on an untried backend
    // Idle connections kept per backend, per shard: kUnlimited keeps every one (as HAProxy and Envoy do) until
    // timeouts.upstream_keepalive; 0 turns keep-alive to backends off.
    unsigned upstream_keepalive = kUnlimited;
    pool::BalancerOptions balancer;  // `algorithm:` plus the `peak_ewma:` and `consistent_hash:` sections
    QueueConfig queue;
    health::HealthConfig health;
    AdminConfig admin;
    RequestIdConfig request_id;
    bool metrics_enabled = true;             // off only to measure what recording costs
    access_log::AccessLogConfig access_log;  // `access_log:` off unless the section is there
    std::vector<ConfigWarning> warnings;     // in the order the loader found them

    const pool::BalancerOptions& balancer_of(size_t pool) const {
        return pools[pool].balancer ? *pools[pool].balancer : balancer;
    }
    unsigned retries_of(size_t pool) const { return pools[pool].retries.value_or(retries); }
    const QueueConfig& queue_of(size_t pool) const { return pools[pool].queue ? *pools[pool].queue : queue; }
    unsigned upstream_keepalive_of(size_t pool) const {
        return pools[pool].upstream_keepalive.value_or(upstream_keepalive);
    }
    // A Config built in code (tests) may leave `pools` empty: every backend is then in the pool "default".
    void add_default_pool_if_none() {
        if (pools.empty()) pools.push_back({"default", 0, backends.size()});
    }
};

// A config problem: where it is and what was expected. what() is "file:line:column: message".
class ConfigError : public std::runtime_error {
  public:
    ConfigError(std::string file, int line, int column, const std::string& message);
    const std::string& file() const { return file_; }
    int line() const { return line_; }
    int column() const { return column_; }

  private:
    std::string file_;
    int line_;
    int column_;
};

// Reads and validates a config file. Throws ConfigError (with file, line and column) on any problem:
// unreadable file, YAML syntax, unknown key, wrong type, out-of-range value, no backends. The files a `tls:`
// section names are read and checked too (net/tls_files.h): unreadable or wrong files, a key that does not match
// its certificate, an expired certificate, cipher lists OpenSSL rejects. A certificate that expires within 30
// days loads, with a warning in Config::warnings.
Config load_config_file(const std::string& path);

// Same, from text; `source` names it in messages.
Config load_config_string(const std::string& yaml, const std::string& source = "<string>");

// Parses "250ms", "5s", "2m", "1h"; a bare integer is seconds. Throws std::invalid_argument.
Millis parse_duration(const std::string& text);

// Parses "512", "64KiB", "1MiB", "1GiB" (also KB/MB/GB as powers of 1000). Throws std::invalid_argument.
uint64_t parse_size(const std::string& text);

// Parses "host:port", "[v6]:port"; throws std::invalid_argument.
HostPort parse_host_port(const std::string& text);

// Parses a listen address: "host:port" (port 0 allowed: the kernel picks one) or "unix:PATH". Throws
// std::invalid_argument.
ListenAddress parse_listen_address(const std::string& text);

}  // namespace lb::core
