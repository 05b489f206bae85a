// Config loading: the shipped lb.yaml, defaults, the scalar parsers, and that every error says exactly where it is.
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config/config.h"
#include "test/support/config_error.h"

using Catch::Matchers::Contains;
using lb::core::Config;
using lb::core::ConfigError;
using lb::core::HostPort;
using lb::core::load_config_file;
using lb::core::load_config_string;
using lb::core::Millis;
using lb::core::parse_duration;
using lb::core::parse_host_port;
using lb::core::parse_size;
using lb::test::config_error_of;
using namespace std::chrono_literals;

namespace {

constexpr const char* kOneBackend = "backends: [127.0.0.1:9001]\n";

// A private directory for file tests, removed with everything in it.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "lb-test-config-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::string write(const std::string& name, const std::string& content) const {
        std::string file = (path_ / name).string();
        std::ofstream(file) << content;
        return file;
    }
    std::string path(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

}  // namespace

#ifdef LB_SOURCE_DIR
TEST_CASE("the shipped lb.yaml loads and runs the three demo backends", "[config]") {
    std::string path = LB_SOURCE_DIR "/lb.yaml";
    Config config = load_config_file(path);
    CHECK(config.source == path);
    CHECK(config.listeners[0].address.tcp.host == "0.0.0.0");
    CHECK(config.listeners[0].address.tcp.port == 8080);
    CHECK(config.workers == 0);
    REQUIRE(config.backends.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
        CHECK(config.backends[i].address == "127.0.0.1:" + std::to_string(9001 + i));
        CHECK(config.backends[i].endpoint.host == "127.0.0.1");
        CHECK(config.backends[i].endpoint.port == 9001 + i);
        CHECK(config.backends[i].weight == 1);
    }

    // lb.yaml documents the defaults by writing them out: they must be the same values.
    Config defaults;
    CHECK(config.timeouts.connect == defaults.timeouts.connect);
    CHECK(config.timeouts.client_header == defaults.timeouts.client_header);
    CHECK(config.timeouts.client_keepalive == defaults.timeouts.client_keepalive);
    CHECK(config.timeouts.upstream_response == defaults.timeouts.upstream_response);
    CHECK(config.timeouts.upstream_keepalive == defaults.timeouts.upstream_keepalive);
    CHECK(config.timeouts.drain == defaults.timeouts.drain);
    CHECK(config.timeouts.drain_idle_grace == defaults.timeouts.drain_idle_grace);
    CHECK(config.limits.header_bytes == defaults.limits.header_bytes);
    CHECK(config.limits.header_count == defaults.limits.header_count);
    CHECK(config.limits.uri_bytes == defaults.limits.uri_bytes);
    CHECK(config.limits.request_body_bytes == defaults.limits.request_body_bytes);
    CHECK(config.retries == defaults.retries);
    CHECK(config.upstream_keepalive == defaults.upstream_keepalive);
    CHECK(config.balancer.algorithm == defaults.balancer.algorithm);
    CHECK(config.queue.size == defaults.queue.size);
    CHECK(config.queue.timeout == defaults.queue.timeout);
    CHECK(config.health == defaults.health);
    CHECK(config.admin.enabled == defaults.admin.enabled);
    CHECK(config.admin.listen.host == defaults.admin.listen.host);
    CHECK(config.admin.listen.port == defaults.admin.listen.port);
    CHECK(config.metrics_enabled == defaults.metrics_enabled);
    for (const auto& backend : config.backends) {
        CHECK_FALSE(backend.backup);
        CHECK(backend.max_connections == 0);
        CHECK(backend.health == lb::health::CheckOverrides{});
    }
}
#endif

TEST_CASE("keys left out take the documented defaults", "[config]") {
    Config config = load_config_string(kOneBackend, "min.yaml");
    CHECK(config.source == "min.yaml");
    CHECK(config.listeners[0].address.tcp.host == "0.0.0.0");
    CHECK(config.listeners[0].address.tcp.port == 8080);
    CHECK(config.workers == 0);
    REQUIRE(config.backends.size() == 1);
    CHECK(config.backends[0].address == "127.0.0.1:9001");
    CHECK(config.backends[0].weight == 1);
    CHECK(config.timeouts.connect == 5s);
    CHECK(config.timeouts.client_header == 10s);
    CHECK(config.timeouts.client_keepalive == 60s);
    CHECK(config.timeouts.upstream_response == 60s);
    CHECK(config.timeouts.upstream_keepalive == 60s);
    CHECK(config.timeouts.drain == 30s);
    CHECK(config.timeouts.drain_idle_grace == 1s);
    CHECK(config.timeouts.tunnel == 1h);
    CHECK(config.limits.header_bytes == 64 * 1024);
    CHECK(config.limits.header_count == 100);
    CHECK(config.limits.uri_bytes == 8 * 1024);
    CHECK(config.limits.request_body_bytes == 1ULL << 30);
    CHECK(config.retries == 2);
    CHECK(config.upstream_keepalive == lb::core::kUnlimited);
    CHECK(config.limits.client_connections == 0);  // auto
    CHECK(config.limits.buffer_per_connection == 256 * 1024);
    CHECK(config.limits.buffer_memory == 1ULL << 30);
    CHECK(config.timeouts.client_send == 60s);
    CHECK(config.metrics_enabled);
    CHECK(load_config_string("backends: [127.0.0.1:9001]\nupstream: {keepalive: unlimited}\nlimits: "
                             "{client_connections: auto}\n")
              .upstream_keepalive == lb::core::kUnlimited);
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  buffer_per_connection: 1KiB\n") ==
          "t.yaml:3:26: 'limits.buffer_per_connection' must be between 16KiB and 64MiB, got '1KiB'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  client_connections: lots\n") ==
          "t.yaml:3:23: 'limits.client_connections' must be an integer between 1 and 10000000, or 'auto', got "
          "'lots'");
}

TEST_CASE("sections written with no keys keep their defaults", "[config]") {
    Config config = load_config_string("backends: [127.0.0.1:9001]\ntimeouts:\nlimits:\nupstream:\n");
    CHECK(config.timeouts.connect == 5s);
    CHECK(config.limits.header_count == 100);
    CHECK(config.upstream_keepalive == lb::core::kUnlimited);
    CHECK(config.limits.client_connections == 0);  // auto
    CHECK(load_config_string("backends: [127.0.0.1:9001]\nupstream: {keepalive: unlimited}\nlimits: "
                             "{client_connections: auto}\n")
              .upstream_keepalive == lb::core::kUnlimited);
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  buffer_per_connection: 1KiB\n") ==
          "t.yaml:3:26: 'limits.buffer_per_connection' must be between 16KiB and 64MiB, got '1KiB'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  client_connections: lots\n") ==
          "t.yaml:3:23: 'limits.client_connections' must be an integer between 1 and 10000000, or 'auto', got "
          "'lots'");
}

TEST_CASE("every key is read", "[config]") {
    Config config = load_config_string(R"(
listen: "[::1]:0"
workers: 4
backends:
  - 10.0.0.1:80
  - address: backend.example:8080
    weight: 5
  - address: "[2001:db8::1]:443"
timeouts:
  connect: 250ms
  client_header: 2
  client_keepalive: 2m
  client_send: 15s
  upstream_response: 1h
  upstream_keepalive: 90s
  drain: 24h
  drain_idle_grace: 300ms
  tunnel: 10m
limits:
  header_bytes: 1MiB
  header_count: 10000
  uri_bytes: 256
  request_body_bytes: 0
  client_connections: 5000
  buffer_per_connection: 64KiB
  buffer_memory: 256MiB
retries: 0
upstream:
  keepalive: 0
metrics:
  enabled: false
)");
    CHECK(config.listeners[0].address.tcp.host == "::1");
    CHECK(config.listeners[0].address.tcp.port == 0);
    CHECK(config.workers == 4);
    REQUIRE(config.backends.size() == 3);
    CHECK(config.backends[0].address == "10.0.0.1:80");
    CHECK(config.backends[0].weight == 1);
    CHECK(config.backends[1].address == "backend.example:8080");
    CHECK(config.backends[1].endpoint.host == "backend.example");
    CHECK(config.backends[1].endpoint.port == 8080);
    CHECK(config.backends[1].weight == 5);
    CHECK(config.backends[2].address == "[2001:db8::1]:443");
    CHECK(config.backends[2].endpoint.host == "2001:db8::1");
    CHECK(config.timeouts.connect == 250ms);
    CHECK(config.timeouts.client_header == 2s);
    CHECK(config.timeouts.client_keepalive == 2min);
    CHECK(config.timeouts.client_send == 15s);
    CHECK(config.timeouts.upstream_response == 1h);
    CHECK(config.timeouts.upstream_keepalive == 90s);
    CHECK(config.timeouts.drain == 24h);
    CHECK(config.timeouts.drain_idle_grace == 300ms);
    CHECK(config.timeouts.tunnel == 10min);
    CHECK(config.limits.header_bytes == 1024 * 1024);
    CHECK(config.limits.header_count == 10000);
    CHECK(config.limits.uri_bytes == 256);
    CHECK(config.limits.request_body_bytes == 0);
    CHECK(config.limits.client_connections == 5000);
    CHECK(config.limits.buffer_per_connection == 64 * 1024);
    CHECK(config.limits.buffer_memory == 256 * 1024 * 1024);
    CHECK(config.retries == 0);
    CHECK(config.upstream_keepalive == 0);
    CHECK_FALSE(config.metrics_enabled);  // bench/run --metrics-cost depends on it
}

TEST_CASE("metrics.enabled takes a boolean", "[config]") {
    CHECK(load_config_string("backends: [127.0.0.1:9001]\nmetrics:\n  enabled: true\n").metrics_enabled);
    CHECK_FALSE(load_config_string("backends: [127.0.0.1:9001]\nmetrics: {enabled: false}\n").metrics_enabled);
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nmetrics:\n  enabled: sometimes\n") ==
          "t.yaml:3:12: 'metrics.enabled' must be true or false, got 'sometimes'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nmetrics:\n  enable: false\n") ==
          "t.yaml:3:3: unknown key 'enable' in 'metrics' (expected one of: enabled)");
}

TEST_CASE("parse_duration", "[config]") {
    CHECK(parse_duration("250ms") == 250ms);
    CHECK(parse_duration("5s") == 5s);
    CHECK(parse_duration("2m") == 2min);
    CHECK(parse_duration("1h") == 1h);
    CHECK(parse_duration("30") == 30s);
    CHECK(parse_duration("0") == 0ms);  // parses; the loader's range check rejects it for timeouts

    CHECK_THROWS_WITH(parse_duration(""), "invalid duration '': it is empty");
    CHECK_THROWS_WITH(parse_duration("-5s"), "invalid duration '-5s': it must not be negative");
    CHECK_THROWS_WITH(parse_duration("5x"), "invalid duration '5x': unknown unit 'x' (expected ms, s, m or h)");
    CHECK_THROWS_WITH(parse_duration("5 s"), Contains("unknown unit ' s'"));
    CHECK_THROWS_WITH(parse_duration("5S"), Contains("unknown unit 'S'"));
    CHECK_THROWS_WITH(parse_duration("s"), Contains("expected a whole number followed by ms, s, m or h"));
    CHECK_THROWS_WITH(parse_duration("1.5s"), Contains("fractions are not supported"));
    CHECK_THROWS_WITH(parse_duration("99999999999999999999"), Contains("too large"));
    CHECK_THROWS_WITH(parse_duration("9999999999999999h"), Contains("too large"));
    CHECK_THROWS_AS(parse_duration("1h30m"), std::invalid_argument);
}

TEST_CASE("parse_size", "[config]") {
    CHECK(parse_size("512") == 512);
    CHECK(parse_size("512B") == 512);
    CHECK(parse_size("64KiB") == 64 * 1024);
    CHECK(parse_size("1MiB") == 1024 * 1024);
    CHECK(parse_size("1GiB") == 1ULL << 30);
    CHECK(parse_size("2KB") == 2000);
    CHECK(parse_size("3MB") == 3'000'000);
    CHECK(parse_size("1GB") == 1'000'000'000);
    CHECK(parse_size("0") == 0);
    CHECK(parse_size("17179869183GiB") == 17179869183ULL << 30);  // 2^64 - 2^30: the largest GiB multiple

    CHECK_THROWS_WITH(parse_size("-1"), "invalid size '-1': it must not be negative");
    CHECK_THROWS_WITH(parse_size("64k"),
                      "invalid size '64k': unknown unit 'k' (expected B, KiB, MiB, GiB, KB, MB or GB)");
    CHECK_THROWS_WITH(parse_size("KiB"), Contains("expected a whole number"));
    CHECK_THROWS_WITH(parse_size("1.5MiB"), Contains("fractions are not supported"));
    CHECK_THROWS_WITH(parse_size("17179869184GiB1"), Contains("unknown unit"));
    CHECK_THROWS_WITH(parse_size("17179869185GiB"), Contains("too large"));
    CHECK_THROWS_WITH(parse_size("18446744073709551616"), Contains("too large"));  // 2^64
}

TEST_CASE("parse_host_port", "[config]") {
    auto check = [](const std::string& text, const std::string& host, uint16_t port) {
        INFO(text);
        HostPort hp = parse_host_port(text);
        CHECK(hp.host == host);
        CHECK(hp.port == port);
    };
    check("127.0.0.1:9001", "127.0.0.1", 9001);
    check("localhost:80", "localhost", 80);
    check("backend-1.internal_svc.example:65535", "backend-1.internal_svc.example", 65535);
    check("[::1]:8080", "::1", 8080);
    check("[2001:db8::42]:1", "2001:db8::42", 1);
    check("[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443);
    check("[fe80::1%eth0]:80", "fe80::1%eth0", 80);

    CHECK_THROWS_WITH(parse_host_port(":8080"), "invalid address ':8080': the host is empty");
    CHECK_THROWS_WITH(parse_host_port("[]:8080"), "invalid address '[]:8080': the host is empty");
    CHECK_THROWS_WITH(parse_host_port("localhost"), Contains("expected host:port"));
    CHECK_THROWS_WITH(parse_host_port("localhost:"), "invalid address 'localhost:': the port is missing");
    CHECK_THROWS_WITH(parse_host_port("localhost:http"), Contains("port 'http' is not a number"));
    CHECK_THROWS_WITH(parse_host_port("localhost:-1"), Contains("port '-1' is not a number"));
    CHECK_THROWS_WITH(parse_host_port("localhost:0"), Contains("port 0 is out of range 1..65535"));
    CHECK_THROWS_WITH(parse_host_port("localhost:65536"), Contains("port 65536 is out of range 1..65535"));
    CHECK_THROWS_WITH(parse_host_port("localhost:99999999999999999999"), Contains("is not a number"));
    CHECK_THROWS_WITH(parse_host_port("::1:8080"), Contains("an IPv6 address must be in brackets"));
    CHECK_THROWS_WITH(parse_host_port("[::1:8080"), Contains("missing ']'"));
    CHECK_THROWS_WITH(parse_host_port("[::1]8080"), Contains("expected ':port' after ']'"));
    CHECK_THROWS_WITH(parse_host_port("[not-v6]:80"), Contains("'not-v6' is not a valid IPv6 address"));
    CHECK_THROWS_WITH(parse_host_port("[fe80::1%]:80"), Contains("is not a valid IPv6 address"));
    CHECK_THROWS_WITH(parse_host_port("10.0.0.300:80"), Contains("'10.0.0.300' is not a valid IPv4 address"));
    CHECK_THROWS_WITH(parse_host_port("http://x:80"), Contains("without a scheme"));
    CHECK_THROWS_WITH(parse_host_port("a b:80"), Contains("invalid character ' ' in host 'a b'"));
}

TEST_CASE("listen may use port 0, backends may not", "[config]") {
    CHECK(load_config_string("listen: 127.0.0.1:0\nbackends: [127.0.0.1:9001]\n").listeners[0].address.tcp.port == 0);
    CHECK(config_error_of("backends:\n  - 127.0.0.1:0\n") ==
          "t.yaml:2:5: 'backends[0]': invalid address '127.0.0.1:0': port 0 is out of range 1..65535");
    CHECK(config_error_of("listen: 127.0.0.1:65536\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:1:9: 'listen': invalid address '127.0.0.1:65536': port 65536 is out of range 0..65535");
}

TEST_CASE("listen may name a Unix socket", "[config]") {
    Config config = load_config_string("listen: unix:/run/lb.sock\nbackends: [127.0.0.1:9001]\n");
    CHECK(config.listeners[0].address.is_unix());
    CHECK(config.listeners[0].address.unix_path == "/run/lb.sock");
    CHECK(config.listeners[0].address.to_string() == "unix:/run/lb.sock");
    CHECK(load_config_string("listen: unix:lb.sock\n" + std::string(kOneBackend)).listeners[0].address.unix_path ==
          "lb.sock");
    CHECK_FALSE(load_config_string(kOneBackend).listeners[0].address.is_unix());
    CHECK(load_config_string(kOneBackend).listeners[0].address.to_string() == "0.0.0.0:8080");
    CHECK(load_config_string("listen: \"[::1]:80\"\n" + std::string(kOneBackend)).listeners[0].address.to_string() ==
          "[::1]:80");

    CHECK(config_error_of("listen: \"unix:\"\n" + std::string(kOneBackend)) ==
          "t.yaml:1:9: 'listen': invalid address 'unix:': the socket path after 'unix:' is empty");
    const std::string longest = "/" + std::string(106, 'a');
    CHECK(load_config_string("listen: unix:" + longest + "\n" + kOneBackend).listeners[0].address.unix_path == longest);
    CHECK(config_error_of("listen: unix:" + longest + "a\n" + kOneBackend) ==
          "t.yaml:1:9: 'listen': invalid address 'unix:" + longest +
              "a': the socket path is 108 bytes long; a Unix socket path holds at most 107");
    // YAML's "\0" escape is the one way to write a NUL, which would cut the path short.
    CHECK(config_error_of("listen: \"unix:/a\\0b\"\n" + std::string(kOneBackend)) ==
          "t.yaml:1:9: 'listen': invalid address 'unix:/a\\0b': the socket path contains a NUL byte");
    CHECK(config_error_of("listen: unix:/run/\n" + std::string(kOneBackend)) ==
          "t.yaml:1:9: 'listen': invalid address 'unix:/run/': the socket path names a directory");
    // The admin listener stays TCP.
    CHECK(
        config_error_of(std::string(kOneBackend) + "admin:\n  listen: unix:/run/admin.sock\n") ==
        "t.yaml:3:11: 'admin.listen': invalid address 'unix:/run/admin.sock': port '/run/admin.sock' is not a number");
}

TEST_CASE("an unknown key is reported at its line and column with the allowed keys", "[config]") {
    std::string yaml =
        "backends:\n"
        "  - 127.0.0.1:9001\n"
        "timeouts:\n"
        "  connect: 1s\n"
        "  timeout: 5s\n";
    try {
        load_config_string(yaml, "lb.yaml");
        FAIL("loaded a config with an unknown key");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) ==
              "lb.yaml:5:3: unknown key 'timeout' in 'timeouts' (expected one of: connect, client_header, "
              "client_keepalive, client_send, upstream_response, upstream_keepalive, drain, drain_idle_grace, "
              "tunnel)");
        CHECK(e.file() == "lb.yaml");
        CHECK(e.line() == 5);
        CHECK(e.column() == 3);
    }

    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlisten_on: 1.2.3.4:80\n") ==
          "t.yaml:2:1: unknown key 'listen_on' at the top level (expected one of: listen, workers, backends, "
          "pools, routes, timeouts, limits, retries, upstream, algorithm, peak_ewma, consistent_hash, queue, health, "
          "admin, request_id, metrics, access_log)");
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    wieght: 2\n") ==
          "t.yaml:3:5: unknown key 'wieght' in 'backends[0]' (expected one of: address, weight, backup, "
          "max_connections, health, tls)");
}

TEST_CASE("a repeated key is an error, not a silent override", "[config]") {
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nretries: 1\nretries: 3\n") ==
          "t.yaml:3:1: duplicate key 'retries' at the top level (first set on line 2)");
}

TEST_CASE("wrong types name the key and what was expected", "[config]") {
    CHECK(config_error_of("workers: many\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:1:10: 'workers' must be a positive integer or 'auto', got 'many'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nretries: [1]\n") ==
          "t.yaml:2:10: 'retries' must be an integer between 0 and 10, got a list");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\ntimeouts: 5s\n") ==
          "t.yaml:2:11: 'timeouts' must be a map with keys connect, client_header, client_keepalive, "
          "client_send, upstream_response, upstream_keepalive, drain, drain_idle_grace, tunnel, got '5s'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\ntimeouts:\n  connect: {a: 1}\n") ==
          "t.yaml:3:12: 'timeouts.connect' must be a duration such as 250ms, 5s, 2m or 1h, got a map");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\ntimeouts:\n  connect: soon\n") ==
          "t.yaml:3:12: 'timeouts.connect': invalid duration 'soon': expected a whole number followed by ms, s, m "
          "or h");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  header_bytes: 64k\n") ==
          "t.yaml:3:17: 'limits.header_bytes': invalid size '64k': unknown unit 'k' (expected B, KiB, MiB, GiB, KB, "
          "MB or GB)");
    // An empty value points at its key: yaml-cpp would put it on the next line.
    CHECK(config_error_of("backends: [127.0.0.1:9001]\ntimeouts:\n  connect:\n  drain: 1s\n") ==
          "t.yaml:3:3: 'timeouts.connect' must be a duration such as 250ms, 5s, 2m or 1h, got nothing");
    // Unquoted, [::1] is a YAML flow list.
    CHECK(config_error_of("listen: [::1]\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:1:9: 'listen' must be a host:port or unix:PATH string (quote IPv6 addresses: \"[::1]:8080\"), got "
          "a list");
    CHECK(config_error_of("- 127.0.0.1:9001\n") ==
          "t.yaml:1:1: the config must be a map with keys listen, workers, backends, pools, routes, timeouts, "
          "limits, retries, upstream, algorithm, peak_ewma, consistent_hash, queue, health, admin, request_id, "
          "metrics, access_log, got a list");
    CHECK(config_error_of("backends:\n  - [127.0.0.1, 9001]\n") ==
          "t.yaml:2:5: 'backends[0]' must be a host:port string or a map with 'address' and 'weight', got a list");
}

TEST_CASE("out-of-range values say the range", "[config]") {
    CHECK(config_error_of("workers: 0\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:1:10: 'workers' must be between 1 and 1024 or 'auto', got '0'");
    CHECK(config_error_of("workers: 1025\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:1:10: 'workers' must be between 1 and 1024 or 'auto', got '1025'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nretries: 11\n") ==
          "t.yaml:2:10: 'retries' must be an integer between 0 and 10, got '11'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nretries: -1\n") ==
          "t.yaml:2:10: 'retries' must be an integer between 0 and 10, got '-1'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\ntimeouts:\n  connect: 0s\n") ==
          "t.yaml:3:12: 'timeouts.connect' must be between 1ms and 24h, got '0s'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\ntimeouts:\n  drain: 25h\n") ==
          "t.yaml:3:10: 'timeouts.drain' must be between 1ms and 24h, got '25h'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  header_bytes: 2MiB\n") ==
          "t.yaml:3:17: 'limits.header_bytes' must be between 1KiB and 1MiB, got '2MiB'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  uri_bytes: 255\n") ==
          "t.yaml:3:14: 'limits.uri_bytes' must be between 256 and 1MiB, got '255'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nlimits:\n  header_count: 0\n") ==
          "t.yaml:3:17: 'limits.header_count' must be an integer between 1 and 10000, got '0'");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\nupstream:\n  keepalive: 1000001\n") ==
          "t.yaml:3:14: 'upstream.keepalive' must be an integer between 0 and 1000000, or 'unlimited', got "
          "'1000001'");
    CHECK(config_error_of("backends:\n  - 127.0.0.1:9001\n  - 127.0.0.1:9002\n  - address: 127.0.0.1:9003\n"
                          "    weight: 1001\n") ==
          "t.yaml:5:13: 'backends[2].weight' must be an integer between 1 and 1000, got '1001'");
}

TEST_CASE("backends are required, non-empty and distinct", "[config]") {
    CHECK(config_error_of("# comment\nlisten: 0.0.0.0:80\n") ==
          "t.yaml:2:1: 'backends' is required: list at least one backend, e.g. backends: [\"127.0.0.1:9001\"]");
    CHECK(config_error_of("") == "t.yaml:1:1: the config is empty: at least 'backends' is required");
    CHECK(config_error_of("# nothing here\n") == "t.yaml:1:1: the config is empty: at least 'backends' is required");
    CHECK(config_error_of("backends: []\n") ==
          "t.yaml:1:11: 'backends' must be a non-empty list of host:port strings or maps, got an empty list");
    CHECK(config_error_of("backends:\n") ==
          "t.yaml:1:1: 'backends' must be a non-empty list of host:port strings or maps, got nothing");
    CHECK(config_error_of("backends: 127.0.0.1:9001\n") ==
          "t.yaml:1:11: 'backends' must be a non-empty list of host:port strings or maps, got '127.0.0.1:9001'");
    CHECK(config_error_of("backends:\n  - weight: 2\n") == "t.yaml:2:5: 'backends[0].address' is required");
    CHECK(config_error_of("backends:\n  - 127.0.0.1:9001\n  - 127.0.0.1:9002\n  - address: 127.0.0.1:9001\n") ==
          "t.yaml:4:5: duplicate backend '127.0.0.1:9001' in 'backends[2]' (already listed as 'backends[0]')");
    // Hostnames compare case-insensitively.
    CHECK(config_error_of("backends: [Backend.example:80, backend.EXAMPLE:80]\n") ==
          "t.yaml:1:32: duplicate backend 'backend.EXAMPLE:80' in 'backends[1]' (already listed as 'backends[0]')");
    // Same host, different ports are different backends.
    CHECK(load_config_string("backends: [127.0.0.1:9001, 127.0.0.1:9002]\n").backends.size() == 2);
}

TEST_CASE("YAML syntax errors carry the parser's line and column", "[config]") {
    CHECK(config_error_of("backends:\n  - 127.0.0.1:9001\n - 127.0.0.1:9002\n") ==
          "t.yaml:3:2: YAML syntax error: end of map not found");
    CHECK(config_error_of("backends: [127.0.0.1:9001\n") ==
          "t.yaml:2:1: YAML syntax error: end of sequence flow not found");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\n---\nretries: 1\n") ==
          "t.yaml:3:1: expected one YAML document, found a second");
    // Document markers on their own are fine.
    CHECK(load_config_string("---\nbackends: [127.0.0.1:9001]\n---\n").backends.size() == 1);
}

TEST_CASE("load_config_file reads a file and names it in errors", "[config]") {
    TempDir dir;
    std::string good = dir.write("good.yaml", "backends:\n  - 127.0.0.1:9001\n");
    Config config = load_config_file(good);
    CHECK(config.source == good);
    CHECK(config.backends.size() == 1);

    std::string bad = dir.write("bad.yaml", "backends:\n  - 127.0.0.1:9001\nretries: lots\n");
    CHECK_THROWS_WITH(load_config_file(bad), bad + ":3:10: 'retries' must be an integer between 0 and 10, got 'lots'");

    std::string missing = dir.path("missing.yaml");
    CHECK_THROWS_WITH(load_config_file(missing), missing + ":0:0: cannot read config file: No such file or directory");
    CHECK_THROWS_WITH(load_config_file(dir.path("")), Contains("cannot read config file: Is a directory"));
    if (geteuid() != 0) {  // root reads anything
        std::string locked = dir.write("locked.yaml", "backends: [127.0.0.1:9001]\n");
        std::filesystem::permissions(locked, std::filesystem::perms::none);
        CHECK_THROWS_WITH(load_config_file(locked), locked + ":0:0: cannot read config file: Permission denied");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// algorithm, queue, health, admin and the backends' own options.

TEST_CASE("the new sections default as lb.yaml documents them", "[config]") {
    Config config = load_config_string(kOneBackend);
    CHECK(config.backends[0].backup == false);
    CHECK(config.backends[0].max_connections == 0);
    CHECK(config.backends[0].health == lb::health::CheckOverrides{});

    CHECK(config.balancer.algorithm == "round_robin");
    CHECK(config.balancer.peak_ewma.decay == 10s);
    CHECK(config.balancer.peak_ewma.default_latency == 30ms);
    CHECK(config.balancer.peak_ewma.failure_penalty == 1s);
    CHECK(config.balancer.consistent_hash.key_source == lb::pool::HashKeySource::client_ip);
    CHECK(config.balancer.consistent_hash.key_name.empty());
    CHECK(config.balancer.consistent_hash.table_size == 65537);

    CHECK(config.queue.size == 1024);
    CHECK(config.queue.timeout == 5s);

    const lb::health::HealthConfig& h = config.health;
    CHECK(h.enabled);
    CHECK(h.path == "/health");
    CHECK(h.interval == 10s);
    CHECK(h.timeout == 2s);
    CHECK(h.rise == 2);
    CHECK(h.fall == 3);
    CHECK(h.expected_statuses == std::vector<lb::health::StatusRange>{{200, 399}});
    CHECK_FALSE(h.max_response_time);  // the timeout
    CHECK(h.host.empty());
    CHECK(h.port == 0);
    CHECK(h.jitter.is_percent);
    CHECK(h.jitter.percent == 10);
    CHECK(h.initial_state == lb::health::InitialState::healthy);
    CHECK(h.passive.consecutive_failures == 5);
    CHECK(h.passive.base_ejection_time == 30s);
    CHECK(h.passive.max_ejection_time == 300s);
    CHECK(h.passive.max_ejected_percent == 50);
    CHECK_FALSE(h.passive.count_5xx);
    CHECK(h.slow_start == 0s);
    CHECK_FALSE(h.panic);

    CHECK(config.admin.enabled);
    CHECK(config.admin.listen.host == "127.0.0.1");
    CHECK(config.admin.listen.port == 9090);

    // Written with no keys, sections keep their defaults too.
    Config empty = load_config_string("backends: [127.0.0.1:9001]\nqueue:\nhealth:\n  passive:\nadmin:\n");
    CHECK(empty.health == lb::health::HealthConfig{});
    CHECK(empty.queue.size == 1024);
    CHECK(empty.admin.listen.port == 9090);
}

TEST_CASE("every key of the new sections is read", "[config]") {
    Config config = load_config_string(R"(
backends:
  - 10.0.0.1:80
  - address: 10.0.0.2:80
    backup: true
    max_connections: 100
    health:
      path: /ready?deep=1
      interval: 1s
      timeout: 500ms
      rise: 1
      fall: 5
      port: 8081
      host: b2.internal
algorithm: consistent_hash
consistent_hash:
  key: header
  name: X-User-Id
  table_size: 251
queue:
  size: 0
  timeout: 250ms
health:
  enabled: false
  path: /healthz
  interval: 5s
  timeout: 3s
  rise: 3
  fall: 4
  expected_statuses: [200, "204", "300-302"]
  max_response_time: 800ms
  host: svc.example:8080
  port: 9000
  jitter: 2s
  initial_state: unhealthy
  passive:
    consecutive_failures: 0
    base_ejection_time: 10s
    max_ejection_time: 10s
    max_ejected_percent: 100
    count_5xx: true
  slow_start: 1m
  panic: true
admin:
  enabled: false
  listen: "[::1]:0"
)");
    REQUIRE(config.backends.size() == 2);
    CHECK_FALSE(config.backends[0].backup);
    CHECK(config.backends[1].backup);
    CHECK(config.backends[1].max_connections == 100);
    const lb::health::CheckOverrides& own = config.backends[1].health;
    CHECK(own.path == "/ready?deep=1");
    CHECK(own.interval == 1s);
    CHECK(own.timeout == 500ms);
    CHECK(own.rise == 1u);
    CHECK(own.fall == 5u);
    CHECK(own.port == 8081);
    CHECK(own.host == "b2.internal");

    CHECK(config.balancer.algorithm == "consistent_hash");
    CHECK(config.balancer.consistent_hash.key_source == lb::pool::HashKeySource::header);
    CHECK(config.balancer.consistent_hash.key_name == "X-User-Id");
    CHECK(config.balancer.consistent_hash.table_size == 251);
    CHECK(config.queue.size == 0);
    CHECK(config.queue.timeout == 250ms);

    const lb::health::HealthConfig& h = config.health;
    CHECK_FALSE(h.enabled);
    CHECK(h.path == "/healthz");
    CHECK(h.interval == 5s);
    CHECK(h.timeout == 3s);
    CHECK(h.rise == 3);
    CHECK(h.fall == 4);
    CHECK(h.expected_statuses == std::vector<lb::health::StatusRange>{{200, 200}, {204, 204}, {300, 302}});
    CHECK(h.max_response_time == 800ms);
    CHECK(h.host == "svc.example:8080");
    CHECK(h.port == 9000);
    CHECK_FALSE(h.jitter.is_percent);
    CHECK(h.jitter.duration == 2s);
    CHECK(h.initial_state == lb::health::InitialState::unhealthy);
    CHECK(h.passive.consecutive_failures == 0);
    CHECK(h.passive.base_ejection_time == 10s);
    CHECK(h.passive.max_ejection_time == 10s);
    CHECK(h.passive.max_ejected_percent == 100);
    CHECK(h.passive.count_5xx);
    CHECK(h.slow_start == 1min);
    CHECK(h.panic);
    CHECK_FALSE(config.admin.enabled);
    CHECK(config.admin.listen.host == "::1");
    CHECK(config.admin.listen.port == 0);

    // The backend's overrides over the pool's values, as the health monitor will use them.
    lb::health::CheckSettings b2 = lb::health::resolve_check(h, own);
    CHECK(b2.timeout == 500ms);
    CHECK(b2.max_response_time == 500ms);
    CHECK(b2.port == 8081);
    lb::health::CheckSettings b1 = lb::health::resolve_check(h, config.backends[0].health);
    CHECK(b1.path == "/healthz");
    CHECK(b1.max_response_time == 800ms);
    CHECK(b1.host == "svc.example:8080");

    Config ewma = load_config_string(
        "backends: [127.0.0.1:9001]\nalgorithm: peak_ewma\npeak_ewma:\n  decay: 2s\n  default_latency: 0ms\n"
        "  failure_penalty: 5s\n");
    CHECK(ewma.balancer.peak_ewma.decay == 2s);
    CHECK(ewma.balancer.peak_ewma.default_latency == 0ms);
    CHECK(ewma.balancer.peak_ewma.failure_penalty == 5s);
    for (const char* name : {"round_robin", "weighted_round_robin", "least_connections", "random_two_choices",
                             "peak_ewma", "consistent_hash"}) {
        INFO(name);
        CHECK(load_config_string(std::string(kOneBackend) + "algorithm: " + name + "\n").balancer.algorithm == name);
    }
    CHECK(
        load_config_string(std::string(kOneBackend) + "health:\n  expected_statuses: 200\n").health.expected_statuses ==
        std::vector<lb::health::StatusRange>{{200, 200}});
    CHECK(load_config_string(std::string(kOneBackend) + "health:\n  jitter: 0%\n").health.jitter.percent == 0);
}

TEST_CASE("health errors point at the key", "[config]") {
    const std::string base = kOneBackend;  // line 1; `health:` is line 2
    CHECK(config_error_of(base + "health:\n  rise: 0\n") ==
          "t.yaml:3:9: 'health.rise' must be an integer between 1 and 1000, got '0'");
    CHECK(config_error_of(base + "health:\n  interval: 0s\n") ==
          "t.yaml:3:13: 'health.interval' must be between 1ms and 24h, got '0s'");
    CHECK(config_error_of(base + "health:\n  path: health\n") ==
          "t.yaml:3:9: 'health.path' must start with '/', got 'health'");
    CHECK(config_error_of(base + "health:\n  path: \"/a b\"\n") ==
          "t.yaml:3:9: 'health.path' must not contain spaces or control characters");
    CHECK(config_error_of(base + "health:\n  expected_statuses: [200, \"600\"]\n") ==
          "t.yaml:3:28: 'health.expected_statuses[1]': status 600 is not in 100..599");
    CHECK(config_error_of(base + "health:\n  expected_statuses: \"399-200\"\n") ==
          "t.yaml:3:22: 'health.expected_statuses': the range '399-200' is reversed");
    CHECK(config_error_of(base + "health:\n  expected_statuses: [2xx]\n") ==
          "t.yaml:3:23: 'health.expected_statuses[0]': invalid status '2xx': expected a code such as 200 or a range "
          "such as 200-399");
    CHECK(config_error_of(base + "health:\n  expected_statuses: []\n") ==
          "t.yaml:3:22: 'health.expected_statuses' must not be an empty list");
    CHECK(config_error_of(base + "health:\n  timeout: 1s\n  max_response_time: 2s\n") ==
          "t.yaml:4:22: 'health.max_response_time' (2s) must not be above 'health.timeout' (1s): the timeout ends "
          "the check first");
    CHECK(config_error_of(base + "health:\n  jitter: 60%\n") ==
          "t.yaml:3:11: 'health.jitter' must be a percentage from 0% to 50% or a duration, got '60%'");
    CHECK(config_error_of(base + "health:\n  jitter: lots\n") ==
          "t.yaml:3:11: 'health.jitter': invalid duration 'lots': expected a whole number followed by ms, s, m or h");
    CHECK(config_error_of(base + "health:\n  initial_state: up\n") ==
          "t.yaml:3:18: 'health.initial_state' must be healthy or unhealthy, got 'up'");
    CHECK(config_error_of(base + "health:\n  host: \"a b\"\n") ==
          "t.yaml:3:9: 'health.host': invalid character ' ' in host 'a b'");
    CHECK(config_error_of(base + "health:\n  port: 0\n") ==
          "t.yaml:3:9: 'health.port' must be an integer between 1 and 65535, got '0'");
    CHECK(config_error_of(base + "health:\n  panic: yes\n") ==
          "t.yaml:3:10: 'health.panic' must be true or false, got 'yes'");
    CHECK(config_error_of(base + "health:\n  passive:\n    count_5xx:\n") ==
          "t.yaml:4:5: 'health.passive.count_5xx' must be true or false, got nothing");
    CHECK(config_error_of(base + "health:\n  passive:\n    max_ejected_percent: 101\n") ==
          "t.yaml:4:26: 'health.passive.max_ejected_percent' must be an integer between 0 and 100, got '101'");
    CHECK(config_error_of(base + "health:\n  passive:\n    base_ejection_time: 30s\n    max_ejection_time: 10s\n") ==
          "t.yaml:5:24: 'health.passive.max_ejection_time' (10s) must not be below "
          "'health.passive.base_ejection_time' (30s)");
    // Only the base written: it is the one pointed at (the maximum is the 300s default).
    CHECK(config_error_of(base + "health:\n  passive:\n    base_ejection_time: 10m\n") ==
          "t.yaml:4:25: 'health.passive.max_ejection_time' (5m) must not be below "
          "'health.passive.base_ejection_time' (10m)");
    CHECK(config_error_of(base + "health:\n  passive:\n    ejection_time: 10s\n") ==
          "t.yaml:4:5: unknown key 'ejection_time' in 'health.passive' (expected one of: consecutive_failures, "
          "base_ejection_time, max_ejection_time, max_ejected_percent, count_5xx, passed_check_ends_ejection)");
    CHECK(config_error_of(base + "health:\n  slow_start: 25h\n") ==
          "t.yaml:3:15: 'health.slow_start' must be between 0ms and 24h, got '25h'");
    CHECK(config_error_of(base + "health: on\n") ==
          "t.yaml:2:9: 'health' must be a map with keys enabled, path, interval, timeout, rise, fall, "
          "expected_statuses, max_response_time, host, port, jitter, initial_state, passive, slow_start, panic, "
          "got 'on'");
}

TEST_CASE("a backend's own options are checked where they are written", "[config]") {
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    backup: maybe\n") ==
          "t.yaml:3:13: 'backends[0].backup' must be true or false, got 'maybe'");
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    max_connections: -1\n") ==
          "t.yaml:3:22: 'backends[0].max_connections' must be an integer between 0 and 1000000, got '-1'");
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    health:\n      expected_statuses: [200]\n") ==
          "t.yaml:4:7: unknown key 'expected_statuses' in 'backends[0].health' (expected one of: path, interval, "
          "timeout, rise, fall, port, host)");
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    health:\n      port: 70000\n") ==
          "t.yaml:4:13: 'backends[0].health.port' must be an integer between 1 and 65535, got '70000'");
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    health:\n      path: ready\n") ==
          "t.yaml:4:13: 'backends[0].health.path' must start with '/', got 'ready'");
    CHECK(config_error_of("backends:\n  - address: 127.0.0.1:9001\n    health:\n      fall: 0\n") ==
          "t.yaml:4:13: 'backends[0].health.fall' must be an integer between 1 and 1000, got '0'");
}

TEST_CASE("algorithm errors use the pool's own checks", "[config]") {
    const std::string base = kOneBackend;
    CHECK(config_error_of(base + "algorithm: fastest\n") ==
          "t.yaml:2:12: 'algorithm': unknown load-balancing algorithm 'fastest'; expected one of: round_robin, "
          "weighted_round_robin, least_connections, random_two_choices, peak_ewma, consistent_hash");
    CHECK(config_error_of(base + "algorithm: consistent_hash\nconsistent_hash:\n  table_size: 65536\n") ==
          "t.yaml:4:15: 'consistent_hash.table_size': consistent_hash table size 65536 is not prime; the next prime "
          "is 65537");
    CHECK(config_error_of(base + "algorithm: consistent_hash\nconsistent_hash:\n  table_size: 1\n") ==
          "t.yaml:4:15: 'consistent_hash.table_size' must be an integer between 3 and 4294967295, got '1'");
    CHECK(config_error_of(base + "algorithm: consistent_hash\nconsistent_hash:\n  key: ip\n") ==
          "t.yaml:4:8: 'consistent_hash.key' must be header, cookie, client_ip or path, got 'ip'");
    CHECK(config_error_of(base + "algorithm: consistent_hash\nconsistent_hash:\n  key: cookie\n") ==
          "t.yaml:4:8: 'consistent_hash.name' is required with key cookie: the cookie to hash");
    CHECK(config_error_of(base + "algorithm: consistent_hash\nconsistent_hash:\n  name: X-User\n") ==
          "t.yaml:4:9: 'consistent_hash.name' is only used with key header or cookie, and key is client_ip");
    CHECK(config_error_of(base + "peak_ewma:\n  decay: 5s\n") ==
          "t.yaml:2:1: 'peak_ewma' is set but 'algorithm' is 'round_robin'; set 'algorithm: peak_ewma' or remove "
          "the section");
    CHECK(config_error_of(base + "algorithm: peak_ewma\npeak_ewma:\n  decay: 0s\n") ==
          "t.yaml:4:10: 'peak_ewma.decay' must be between 1ms and 24h, got '0s'");
}

TEST_CASE("queue and admin errors point at the key", "[config]") {
    const std::string base = kOneBackend;
    CHECK(config_error_of(base + "queue:\n  size: 1000001\n") ==
          "t.yaml:3:9: 'queue.size' must be an integer between 0 and 1000000, got '1000001'");
    CHECK(config_error_of(base + "queue:\n  timeout: 0s\n") ==
          "t.yaml:3:12: 'queue.timeout' must be between 1ms and 24h, got '0s'");
    CHECK(config_error_of(base + "admin:\n  listen: 9090\n") ==
          "t.yaml:3:11: 'admin.listen': invalid address '9090': expected host:port, e.g. 127.0.0.1:8080");
    CHECK(config_error_of(base + "admin:\n  port: 9090\n") ==
          "t.yaml:3:3: unknown key 'port' in 'admin' (expected one of: enabled, listen, token_file)");
}

TEST_CASE("admin.token_file is read at load, trimmed, and checked", "[config][admin]") {
    TempDir dir;
    const std::string base = std::string(kOneBackend) + "admin:\n  token_file: ";
    Config config = load_config_string(base + dir.write("token", "s3cret-Token\n"), "t.yaml");
    CHECK(config.admin.token == "s3cret-Token");
    CHECK(config.admin.token_file == dir.path("token"));
    CHECK(load_config_string(kOneBackend, "t.yaml").admin.token.empty());
    CHECK(config_error_of(base + dir.path("missing")) ==
          "t.yaml:3:15: 'admin.token_file': cannot read '" + dir.path("missing") + "': No such file or directory");
    CHECK(config_error_of(base + dir.write("empty", " \n")) ==
          "t.yaml:3:15: 'admin.token_file': '" + dir.path("empty") + "' is empty");
    CHECK(config_error_of(base + dir.write("two", "a b\n")) == "t.yaml:3:15: 'admin.token_file': the token in '" +
                                                                   dir.path("two") +
                                                                   "' must be one word of printable ASCII");
    CHECK(config_error_of(base + dir.write("big", std::string(5000, 'x'))) ==
          "t.yaml:3:15: 'admin.token_file': '" + dir.path("big") + "' is larger than 4 KiB");
}

TEST_CASE("access_log is off unless its section is there, and needs a path lb can write", "[config][access_log]") {
    CHECK_FALSE(load_config_string(kOneBackend, "t.yaml").access_log.enabled);

    Config to_stdout = load_config_string(std::string(kOneBackend) + "access_log:\n  path: stdout\n", "t.yaml");
    CHECK(to_stdout.access_log.enabled);
    CHECK(to_stdout.access_log.path == "stdout");
    CHECK(to_stdout.access_log.format == lb::access_log::Format::json);

    TempDir dir;
    Config to_file = load_config_string(
        std::string(kOneBackend) + "access_log: {path: " + dir.path("access.log") + ", format: text}\n", "t.yaml");
    CHECK(to_file.access_log.enabled);
    CHECK(to_file.access_log.path == dir.path("access.log"));
    CHECK(to_file.access_log.format == lb::access_log::Format::text);
    // An existing file is fine too, and loading does not create or change it.
    dir.write("old.log", "kept\n");
    CHECK(load_config_string(std::string(kOneBackend) + "access_log:\n  path: " + dir.path("old.log") + "\n")
              .access_log.enabled);
    CHECK_FALSE(std::filesystem::exists(dir.path("access.log")));

    const std::string base = std::string(kOneBackend) + "access_log:\n";
    CHECK(config_error_of(base) == "t.yaml:2:1: 'access_log.path' is required: a file to append to, or stdout");
    CHECK(config_error_of(base + "  format: text\n") ==
          "t.yaml:2:1: 'access_log.path' is required: a file to append to, or stdout");
    CHECK(config_error_of(base + "  path: stdout\n  format: xml\n") ==
          "t.yaml:4:11: 'access_log.format' must be json or text, got 'xml'");
    CHECK(config_error_of(base + "  path: stdout\n  level: info\n") ==
          "t.yaml:4:3: unknown key 'level' in 'access_log' (expected one of: path, format)");
    CHECK(config_error_of(base + "  path: \"\"\n") == "t.yaml:3:9: 'access_log.path' must not be empty");
    CHECK(config_error_of(base + "  path: " + dir.path("") + "\n") ==
          "t.yaml:3:9: 'access_log.path': '" + dir.path("") + "' is a directory");
    CHECK(config_error_of(base + "  path: " + dir.path("missing/access.log") + "\n") ==
          "t.yaml:3:9: 'access_log.path': cannot create '" + dir.path("missing/access.log") + "' in '" +
              dir.path("missing") + "': No such file or directory");
    CHECK(config_error_of(std::string(kOneBackend) + "access_log: stdout\n") ==
          "t.yaml:2:13: 'access_log' must be a map with keys path, format, got 'stdout'");
}

TEST_CASE("listen takes one address or a list of addresses and maps", "[config][listen]") {
    Config config = load_config_string(
        "listen:\n  - 127.0.0.1:8080\n  - address: \"[::1]:8081\"\n  - unix:/run/lb.sock\nbackends: "
        "[127.0.0.1:9001]\n");
    REQUIRE(config.listeners.size() == 3);
    CHECK(config.listeners[0].address.to_string() == "127.0.0.1:8080");
    CHECK(config.listeners[1].address.to_string() == "[::1]:8081");
    CHECK(config.listeners[2].address.to_string() == "unix:/run/lb.sock");
    CHECK(config_error_of("listen:\n  - 127.0.0.1:8080\n  - 127.0.0.1:8080\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:3:5: 'listen[1]': 127.0.0.1:8080 is already listed");
    CHECK(config_error_of("listen: []\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:1:9: 'listen' must name at least one address");
    CHECK(config_error_of("listen:\n  - port: 80\nbackends: [127.0.0.1:9001]\n") ==
          "t.yaml:2:5: unknown key 'port' in 'listen[0]' (expected one of: address, tls)");
}

TEST_CASE("input yaml-cpp cannot start a document with is an error, not a hang", "[config]") {
    // yaml-cpp 0.7's LoadAll loops forever on these (fuzz/regressions/config_loader/leading_comma).
    for (std::string text : {",", ",a", " ,", ",\nbackends: [127.0.0.1:9001]\n"}) {
        INFO(text);
        CHECK(config_error_of(text).find("YAML syntax error") != std::string::npos);
    }
}

TEST_CASE("pools and routes: the issue's example loads as written", "[config][routing]") {
    Config c = load_config_string(
        "pools:\n"
        "  api:    {backends: [10.0.0.1:8080, 10.0.0.2:8080], algorithm: least_connections}\n"
        "  static: {backends: [10.0.0.5:8080]}\n"
        "  web:    {backends: [10.0.0.7:8080, 10.0.0.8:8080]}\n"
        "routes:\n"
        "  - match: {host: api.example.com}\n"
        "    pool: api\n"
        "    request_headers: {set: {X-Route: api}}\n"
        "  - match: {path_prefix: /static/}\n"
        "    pool: static\n"
        "  - pool: web\n");
    REQUIRE(c.pools.size() == 3);
    CHECK(c.pools[0].name == "api");
    CHECK(c.pools[0].first_backend == 0);
    CHECK(c.pools[0].backend_count == 2);
    CHECK(c.balancer_of(0).algorithm == "least_connections");
    CHECK(c.balancer_of(1).algorithm == "round_robin");  // the top level's
    CHECK(c.pools[2].first_backend == 3);
    REQUIRE(c.backends.size() == 5);
    CHECK(c.backends[3].address == "10.0.0.7:8080");
    CHECK(c.backends[3].pool == 2);
    REQUIRE(c.routes.size() == 3);
    CHECK(c.routes[0].match.host == "api.example.com");
    CHECK(c.routes[0].pool == 0);
    CHECK(c.routes[0].request_headers.set == lb::http::HeaderRewrite::Fields{{"X-Route", "api"}});
    CHECK(c.routes[0].line == 6);
    CHECK(c.routes[1].match.path_prefix == "/static/");
    CHECK(c.routes[2].match == lb::route::RouteMatch{});
    CHECK(c.routes[2].pool == 2);
    CHECK(c.warnings.empty());
}

TEST_CASE("the top-level backends are the pool 'default', and pools fall back to the top level", "[config][routing]") {
    Config one = load_config_string(kOneBackend);
    REQUIRE(one.pools.size() == 1);
    CHECK(one.pools[0].name == "default");
    CHECK(one.routes.empty());

    Config c = load_config_string(
        "backends: [127.0.0.1:9001]\nretries: 3\nalgorithm: random_two_choices\n"
        "health: {path: /healthz}\n"
        "pools:\n"
        "  api:\n"
        "    backends: [127.0.0.1:9002, {address: 127.0.0.1:9003, health: {path: /own}}]\n"
        "    retries: 0\n"
        "    health: {path: /api/health, interval: 2s}\n");
    REQUIRE(c.pools.size() == 2);
    CHECK(c.pools[0].name == "default");
    CHECK(c.retries_of(0) == 3);
    CHECK(c.retries_of(1) == 0);
    CHECK(c.balancer_of(1).algorithm == "random_two_choices");
    CHECK(c.backends[1].health.path == "/api/health");
    CHECK(c.backends[1].health.interval == 2s);
    CHECK(c.backends[2].health.path == "/own");  // a backend's own keys win over its pool's
    CHECK_FALSE(c.backends[0].health.path);      // the top level's health: applies as before
    // Without routes, requests go to 'default'.
    CHECK(c.routes.empty());
}

TEST_CASE("every route key is read", "[config][routing]") {
    Config c = load_config_string(
        "pools: {a: {backends: [127.0.0.1:9001]}}\n"
        "routes:\n"
        "  - match: {host: '*.Example.COM', path: /x, method: PUT, header: {name: X-A, value: '1'}}\n"
        "    pool: a\n"
        "    request_headers: {set: {Host: internal}, add: {X-B: '2'}, remove: [X-C]}\n"
        "    response_headers: {remove: [Server]}\n"
        "    strip_prefix: /x\n"
        "    retries: 4\n"
        "    timeouts: {connect: 1s, upstream_response: 3s}\n"
        "  - match: {path_prefix: /p/, header: {name: X-Present}}\n"
        "    pool: a\n");
    const auto& r = c.routes[0];
    CHECK(r.match.host == "*.example.com");
    CHECK(r.match.path == "/x");
    CHECK(r.match.method == "PUT");
    CHECK(r.match.headers == std::vector<lb::route::HeaderMatch>{{"X-A", "1"}});
    CHECK(r.request_headers.set == lb::http::HeaderRewrite::Fields{{"Host", "internal"}});
    CHECK(r.request_headers.add == lb::http::HeaderRewrite::Fields{{"X-B", "2"}});
    CHECK(r.request_headers.remove == std::vector<std::string>{"X-C"});
    CHECK(r.response_headers.remove == std::vector<std::string>{"Server"});
    CHECK(r.strip_prefix == "/x");
    CHECK(r.retries == 4u);
    CHECK(r.connect_timeout == 1s);
    CHECK(r.upstream_response_timeout == 3s);
    CHECK(c.routes[1].match.headers == std::vector<lb::route::HeaderMatch>{{"X-Present", std::nullopt}});
}

TEST_CASE("pool and route errors say where and what", "[config][routing]") {
    const std::string pools = "pools:\n  a: {backends: [127.0.0.1:9001]}\n  b: {backends: [127.0.0.1:9002]}\n";
    CHECK(config_error_of(pools + "routes:\n  - pool: c\n") ==
          "t.yaml:5:11: 'routes[0].pool': unknown pool 'c' (pools: a, b)");
    CHECK(config_error_of(pools + "routes:\n  - match: {path: /}\n") ==
          "t.yaml:5:5: 'routes[0].pool' is required: the pool that serves what the route matches");
    CHECK(config_error_of(pools) ==
          "t.yaml:2:3: 'routes' is required to choose among several pools (or name one 'default' with the "
          "top-level 'backends')");
    CHECK(config_error_of("backends: [127.0.0.1:9001]\npools:\n  default: {backends: [127.0.0.1:9002]}\n") ==
          "t.yaml:3:3: pool 'default' is the top-level 'backends': name this pool otherwise");
    CHECK(config_error_of("pools:\n  a: {backends: [127.0.0.1:9001]}\n  b: {backends: [127.0.0.1:9001]}\n") ==
          "t.yaml:3:18: duplicate backend '127.0.0.1:9001' in 'pools.b.backends[0]' (already listed as "
          "'pools.a.backends[0]')");
    CHECK(config_error_of("pools:\n  'a b': {backends: [127.0.0.1:9001]}\n") ==
          "t.yaml:2:3: pool names are letters, digits, '_', '-' and '.' (at most 64), got 'a b'");
    CHECK(config_error_of("pools:\n  a: {algorithm: round_robin}\n") == "t.yaml:2:6: 'pools.a.backends' is required");
    CHECK_THAT(config_error_of(pools + "routes:\n  - match: {host: 'api.example.com:8080'}\n    pool: a\n"),
               Contains("t.yaml:5:19: 'routes[0].match.host' must be a host name without port"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - match: {method: get}\n    pool: a\n"),
               Contains("'routes[0].match.method' must be a method in capitals such as GET or POST, got 'get'"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - match: {path_prefix: static}\n    pool: a\n"),
               Contains("'routes[0].match.path_prefix' must start with '/'"));
    CHECK_THAT(
        config_error_of(pools + "routes:\n  - pool: a\n    request_headers: {set: {Content-Length: '0'}}\n"),
        Contains("'Content-Length' cannot be changed: lb writes the fields that frame messages and connections"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - pool: a\n    request_headers: {remove: [host]}\n"),
               Contains("'host' cannot be changed: an HTTP/1.1 request has exactly one; 'set' it instead"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - pool: a\n    request_headers: {add: {Host: x}}\n"),
               Contains("'Host' cannot be changed: an HTTP/1.1 request has exactly one; 'set' it instead"));
    CHECK_THAT(
        config_error_of(pools + "routes:\n  - pool: a\n    request_headers: {set: {X-A: '1'}, add: {x-a: '2'}}\n"),
        Contains("'x-a' cannot be changed: it is already set or added by this route"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - pool: a\n    response_headers: {set: {X-Request-Id: x}}\n"),
               Contains("'X-Request-Id' cannot be changed: it carries the request id"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - pool: a\n    request_headers: {add: {X-Forwarded-For: x}}\n"),
               Contains("'X-Forwarded-For' cannot be changed: lb writes it"));
    CHECK_THAT(config_error_of(pools + "routes:\n  - pool: a\n    response_headers: {set: {X-A: \"a\\nb\"}}\n"),
               Contains("must not hold control characters"));
    CHECK(config_error_of(pools + "routes:\n  - {name: x, pool: a}\n  - {name: x, pool: b}\n") ==
          "t.yaml:6:12: duplicate route name 'x'");
    CHECK_THAT(config_error_of(pools + "routes:\n  - {name: 'a\"b', pool: a}\n"),
               Contains("route names are letters, digits"));
    CHECK(load_config_string(pools + "routes:\n  - {name: api, pool: a}\n  - pool: b\n").routes[1].name == "routes[1]");
}

TEST_CASE("a route that can never match loads, with a warning at its line", "[config][routing]") {
    Config c = load_config_string(
        "pools: {a: {backends: [127.0.0.1:9001]}}\n"
        "routes:\n"
        "  - pool: a\n"
        "  - match: {host: late.example}\n"
        "    pool: a\n",
        "t.yaml");
    REQUIRE(c.warnings.size() == 1);
    CHECK(c.warnings[0].to_string() ==
          "t.yaml:4:5: 'routes[1]' can never match: 'routes[0]' (line 3) takes every request it would");
}

TEST_CASE("a pool's algorithm options fall back to the top level's", "[config][routing]") {
    Config c = load_config_string(
        "algorithm: consistent_hash\nconsistent_hash: {key: header, name: X-User}\n"
        "pools:\n  a: {backends: [127.0.0.1:9001], consistent_hash: {key: cookie, name: sid}}\n"
        "  b: {backends: [127.0.0.1:9002], retries: 1}\n"
        "routes:\n  - pool: a\n");
    CHECK(c.balancer_of(0).algorithm == "consistent_hash");
    CHECK(c.balancer_of(0).consistent_hash.key_name == "sid");
    CHECK(c.balancer_of(1).consistent_hash.key_name == "X-User");
}

TEST_CASE("a pool's queue and upstream keys fall back to the top level's one by one", "[config][routing]") {
    Config c = load_config_string(
        "queue: {size: 50, timeout: 3s}\nupstream: {keepalive: 8}\n"
        "backends: [127.0.0.1:9001]\n"
        "pools:\n"
        "  a: {backends: [127.0.0.1:9002], queue: {timeout: 1s}, upstream: {keepalive: unlimited}}\n"
        "  b: {backends: [127.0.0.1:9003], upstream: {tls: true}}\n");
    CHECK(c.queue_of(0) == lb::core::QueueConfig{50, 3s});
    CHECK(c.queue_of(1) == lb::core::QueueConfig{50, 1s});
    CHECK(c.queue_of(2) == lb::core::QueueConfig{50, 3s});
    CHECK(c.upstream_keepalive_of(0) == 8);
    CHECK(c.upstream_keepalive_of(1) == lb::core::kUnlimited);
    CHECK(c.upstream_keepalive_of(2) == 8);
    CHECK_FALSE(c.backends[1].tls.enabled);
    CHECK(c.backends[2].tls.enabled);  // its pool's upstream.tls
}
