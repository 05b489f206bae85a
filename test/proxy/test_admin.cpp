// The admin listener through real scrapes: /metrics merged from every shard (exact sums, errors by kind, valid
// Prometheus text) and /status as JSON.
#include <catch2/catch.hpp>
#include <sstream>

#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::string scrape(uint16_t admin_port, const std::string& path) {
    Response r = http_get(admin_port, path);
    REQUIRE(r.status == 200);
    return r.body;
}

// Sum of every sample of `name` (any labels) whose label text contains `label_filter`.
double sum_samples(const std::string& text, const std::string& name, const std::string& label_filter = "") {
    std::istringstream in(text);
    std::string line;
    double total = 0;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        size_t end = line.find_first_of("{ ");
        if (line.substr(0, end) != name) continue;
        std::string labels = line[end] == '{' ? line.substr(end, line.find('}') - end + 1) : "";
        if (labels.find(label_filter) == std::string::npos) continue;
        total += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return total;
}

}  // namespace

TEST_CASE("a scrape sums every shard exactly", "[admin][metrics]") {
    ProxyFixture proxy(3, {}, 4);
    const int n = 200;
    for (int i = 0; i < n; ++i) REQUIRE(http_get(proxy.port(), "/").status == 200);
    std::string text = scrape(proxy.server().admin_port(), "/metrics");
    CHECK(sum_samples(text, "lb_backend_requests_total") == n);
    CHECK(sum_samples(text, "lb_backend_requests_total", "code=\"200\"") == n);
    CHECK(sum_samples(text, "lb_request_duration_seconds_count") == n);
    CHECK(sum_samples(text, "lb_request_duration_seconds_bucket", "le=\"+Inf\"") == n);
    CHECK(sum_samples(text, "lb_client_connections_accepted_total") == n);
    CHECK(sum_samples(text, "lb_shards") == 4);
    CHECK(sum_samples(text, "lb_backend_up") == 3);
    CHECK(sum_samples(text, "lb_backend_response_duration_seconds_count") == n);
}

TEST_CASE("histogram buckets are cumulative", "[admin][metrics]") {
    ProxyFixture proxy(1);
    for (int i = 0; i < 5; ++i) REQUIRE(http_get(proxy.port(), "/").status == 200);
    REQUIRE(http_get(proxy.port(), "/?delay_ms=30").status == 200);
    std::string text = scrape(proxy.server().admin_port(), "/metrics");
    std::istringstream in(text);
    std::string line;
    double previous = 0;
    int buckets = 0;
    while (std::getline(in, line)) {
        if (line.rfind("lb_request_duration_seconds_bucket", 0) != 0) continue;
        double value = std::stod(line.substr(line.rfind(' ') + 1));
        CHECK(value >= previous);
        previous = value;
        ++buckets;
    }
    CHECK(buckets == 17);
    CHECK(previous == 6);
    CHECK(sum_samples(text, "lb_request_duration_seconds_bucket", "le=\"0.025\"") < 6);
}

TEST_CASE("every error kind is counted where it happens", "[admin][metrics]") {
    uint16_t dead = reserve_closed_port();
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.limits.uri_bytes = 512;
        c.limits.header_bytes = 2048;
        c.limits.request_body_bytes = 100;
        c.timeouts.client_header = 150ms;
        c.timeouts.upstream_response = 150ms;
        c.backends.push_back(make_config({dead}).backends[0]);
        c.retries = 1;
    });
    auto send = [&](const std::string& request) {
        Client client(proxy.port());
        client.send(request);
        return client.read_response().status;
    };
    CHECK(send("BAD\r\n\r\n") == 400);
    CHECK(send("GET /" + std::string(600, 'u') + " HTTP/1.1\r\nHost: t\r\n\r\n") == 414);
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\nX: " + std::string(3000, 'h') + "\r\n\r\n") == 431);
    CHECK(send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n") == 413);
    CHECK(send("GET / HTTP/1.1\r\nHost: t") == 408);
    // Rotation b1, dead: the request aimed at the dead one is refused, counted, retried on b1.
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 200);
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 200);
    CHECK(send("GET /?delay_ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n") == 504);
    {
        Client client(proxy.port());
        client.send("GET /?bytes=1000000&mid_close=1 HTTP/1.1\r\nHost: t\r\n\r\n");
        client.read_until_closed();
    }
    set_backend_health(proxy.server(), 0, false);
    set_backend_health(proxy.server(), 1, false);
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 503);

    std::string text = scrape(proxy.server().admin_port(), "/metrics");
    for (const char* kind : {"client_parse_error", "uri_limit", "header_limit", "body_limit", "client_timeout",
                             "connect_refused", "upstream_timeout", "upstream_reset", "no_backend"}) {
        INFO(kind);
        CHECK(sum_samples(text, "lb_errors_total", std::string("kind=\"") + kind + "\"") >= 1);
    }
    CHECK(sum_samples(text, "lb_retries_total") >= 1);
    CHECK(sum_samples(text, "lb_backend_up") == 0);
}

TEST_CASE("promtool accepts the scrape", "[admin][metrics][promtool]") {
    ProxyFixture proxy(2, {}, 2);
    for (int i = 0; i < 10; ++i) REQUIRE(http_get(proxy.port(), "/").status == 200);
    std::string file = write_temp_file("scrape.prom", scrape(proxy.server().admin_port(), "/metrics"));
    auto result = run_command("promtool check metrics < " + file);
    INFO(result.output);
    CHECK(result.exit_code == 0);
}

TEST_CASE("/status is JSON that matches the pool", "[admin][status]") {
    ProxyFixture proxy(2, {}, 2);
    REQUIRE(http_get(proxy.port(), "/").status == 200);
    set_backend_health(proxy.server(), 1, false);
    std::string json = scrape(proxy.server().admin_port(), "/status");
    std::string file = write_temp_file("status.json", json);
    auto parsed = run_command(
        "python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); "
        "print(len(s[\"backends\"]), s[\"backends\"][0][\"state\"], s[\"backends\"][1][\"state\"], len(s[\"shards\"]), "
        "sum(x[\"accepted_connections\"] for x in s[\"shards\"]))' " +
        file);
    INFO(json);
    CHECK(parsed.exit_code == 0);
    CHECK(parsed.output == "2 up down 2 1\n");
    CHECK(json.find(proxy.backend(0).port() == 0 ? "" : "127.0.0.1:" + std::to_string(proxy.backend(0).port())) !=
          std::string::npos);
}

TEST_CASE("the admin listener answers only its own paths", "[admin]") {
    ProxyFixture proxy(1);
    CHECK(http_get(proxy.server().admin_port(), "/other").status == 404);
    // The traffic port forwards /metrics to the backend like any other path.
    CHECK(http_get(proxy.port(), "/metrics").header("X-Backend-Id") == "b1");
}

TEST_CASE("with metrics recording off, traffic flows and /metrics shows zeros", "[admin][metrics]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) { c.metrics_enabled = false; });
    for (int i = 0; i < 5; ++i) REQUIRE(http_get(proxy.port(), "/").status == 200);
    std::string text = scrape(proxy.server().admin_port(), "/metrics");
    CHECK(sum_samples(text, "lb_backend_requests_total") == 0);
    CHECK(sum_samples(text, "lb_client_connections_accepted_total") == 0);
}
