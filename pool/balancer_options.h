// Which selection algorithm a pool uses and its tunables, as config code fills them in. Config validates a
// name with check_balancer_name() and the whole struct with check_balancer_options() while loading, so that
// make_balancer() never sees a value it cannot use.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lb::pool {

// Peak-EWMA (Finagle, Linkerd): how fast the latency estimate forgets, and what it assumes before it has
// measured anything. Defaults are Linkerd's (decay 10 s, default RTT 30 ms).
struct PeakEwmaOptions {
    std::chrono::nanoseconds decay = std::chrono::seconds(10);
    std::chrono::nanoseconds default_latency = std::chrono::milliseconds(30);
    // The latency recorded for a connect failure, timeout or reset, so that a backend failing fast does not
    // look fast. The estimate is peak-sensitive: it jumps to this at once and decays back over `decay`.
    std::chrono::nanoseconds failure_penalty = std::chrono::seconds(1);
    bool operator==(const PeakEwmaOptions&) const = default;
};

// Where core takes the consistent-hash key from for each request. The pool only ever sees the key's bytes.
enum class HashKeySource {
    client_ip,  // the client's address, without the port
    header,     // the value of request header `key_name`
    cookie,     // the value of cookie `key_name`
    path,       // the request path, without the query string
};

struct ConsistentHashOptions {
    // Maglev lookup-table size. Must be prime (each backend's slot permutation must visit every slot) and is
    // best at least 100 times the backend count: shares then stay within about 1% of the weights.
    uint32_t table_size = 65537;
    HashKeySource key_source = HashKeySource::client_ip;
    std::string key_name;  // the header or cookie name; unused for client_ip and path
    bool operator==(const ConsistentHashOptions&) const = default;
};

struct BalancerOptions {
    std::string algorithm = "round_robin";  // one of balancer_names()
    PeakEwmaOptions peak_ewma;
    ConsistentHashOptions consistent_hash;
    // Comparable, so that PoolConfig's defaulted == is defined (clang reported it deleted without these).
    bool operator==(const BalancerOptions&) const = default;
};

// Every algorithm name make_balancer() accepts, in the order of its table.
std::span<const std::string_view> balancer_names();

// Empty when `name` is an algorithm; otherwise a message naming the valid ones, for a config error.
std::optional<std::string> check_balancer_name(std::string_view name);

// Empty when make_balancer() can use `options`; otherwise what is wrong: an unknown algorithm, a table size
// that is not a prime in [3, 5000011] (Envoy's limit), a non-positive decay, a negative latency, or a header
// or cookie key without a name.
std::optional<std::string> check_balancer_options(const BalancerOptions& options);

// "client_ip", "header", "cookie", "path".
std::string_view hash_key_source_name(HashKeySource source);
std::optional<HashKeySource> parse_hash_key_source(std::string_view name);

}  // namespace lb::pool
