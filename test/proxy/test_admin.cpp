// The admin listener through real scrapes: /metrics merged from every shard (exact sums, errors by kind, valid
// Prometheus text) and /status as JSON.
#include <catch2/catch.hpp>
#include <sstream>

#include "test/support/metrics_text.h"
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

double sum_samples(const std::string& text, const std::string& name, const std::string& label_filter = "") {
    return metric_sum(text, name, label_filter);
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

TEST_CASE("every error kind is counted once, where it happens", "[admin][metrics]") {
    RefusingPort refusing;
    UnansweredPort unanswered;
    ProxyFixture proxy(1, [&](lb::core::Config& c) {
        c.limits.uri_bytes = 512;
        c.limits.header_bytes = 2048;
        c.limits.request_body_bytes = 100;
        // Each ends something that never ends by itself (a request head, a response, a connect), and is long
        // enough that the requests that do complete are not cut short on a loaded machine.
        c.timeouts.client_header = 1000ms;
        c.timeouts.upstream_response = 1000ms;
        c.timeouts.connect = 1000ms;
        c.backends.push_back(make_config({refusing.port()}).backends[0]);
        c.backends.push_back(make_config({unanswered.port()}).backends[0]);
        c.retries = 2;
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
    CHECK(send("GET / HTTP/2.0\r\nHost: t\r\n\r\n") == 505);
    // One shard rotates b1, refusing, unanswered: the first request goes to b1; the second is refused, times out
    // connecting, and is served by b1 on its third attempt.
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 200);
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 200);
    set_backend_health(proxy.server(), 1, false);
    set_backend_health(proxy.server(), 2, false);
    // From here on b1 alone.
    CHECK(send("GET /?silent=1 HTTP/1.1\r\nHost: t\r\n\r\n") == 504);
    {
        Client client(proxy.port());
        client.send("GET /?bytes=1000000&mid_close=1 HTTP/1.1\r\nHost: t\r\n\r\n");
        client.read_until_closed();
    }
    CHECK(send("GET /?invalid=1 HTTP/1.1\r\nHost: t\r\n\r\n") == 502);
    set_backend_health(proxy.server(), 0, false);
    CHECK(send("GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 503);

    std::string text = scrape(proxy.server().admin_port(), "/metrics");
    for (const char* kind :
         {"client_parse_error", "uri_limit", "header_limit", "body_limit", "client_timeout", "version_not_supported",
          "connect_refused", "connect_timeout", "upstream_timeout", "upstream_reset", "bad_response", "no_backend"}) {
        INFO(kind);
        CHECK(metric_value(text, std::string("lb_errors_total{kind=\"") + kind + "\"}") == 1);
    }
    // Counted in their own tests: queue_timeout in test_balancing, local_resources in test_abuse.
    CHECK(metric_value(text, "lb_errors_total{kind=\"queue_timeout\"}") == 0);
    CHECK(metric_value(text, "lb_errors_total{kind=\"local_resources\"}") == 0);
    CHECK(metric_value(text, "lb_retries_total") == 2);
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
    ProxyFixture proxy(
        2, [](lb::core::Config& c) { c.backends[0].weight = 3; }, 2);
    REQUIRE(http_get(proxy.port(), "/").status == 200);
    set_backend_health(proxy.server(), 1, false);
    // A request in flight: to b1, the only one up.
    HeldRequest held(proxy.port());
    const std::string b1 = "127.0.0.1:" + std::to_string(proxy.backend(0).port());
    const std::string b2 = "127.0.0.1:" + std::to_string(proxy.backend(1).port());
    wait_until(
        [&] {
            return metric_value(proxy.server().render_metrics(),
                                "lb_backend_upstream_connections_active{backend=\"" + b1 + "\"}") == 1;
        },
        "the held request is in flight to b1");
    std::string json = scrape(proxy.server().admin_port(), "/status");
    std::string file = write_temp_file("status.json", json);
    auto parsed = run_command(
        "python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); b=s[\"backends\"]; "
        "print(len(b), [(x[\"name\"], x[\"state\"], x[\"weight\"], x[\"in_flight\"]) for x in b], len(s[\"shards\"]), "
        "sum(x[\"accepted_connections\"] for x in s[\"shards\"]), sum(x[\"active_connections\"] for x in "
        "s[\"shards\"]))' " +
        file);
    INFO(json);
    CHECK(parsed.exit_code == 0);
    CHECK(parsed.output == "2 [('" + b1 + "', 'up', 3, 1), ('" + b2 + "', 'down', 1, 0)] 2 2 1\n");
    // What the status page adds: cumulative responses and 5xx, latency quantiles (none before a response), and
    // the process's uptime, generation and whether the admin API needs a token. The first request went to either.
    auto added = run_command(
        "python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); b=s[\"backends\"]; "
        "print(sum(x[\"requests\"] for x in b), sum(x[\"errors\"] for x in b), all((x[\"requests\"] > 0) == "
        "(x[\"latency_p50_seconds\"] is not None) == (x[\"latency_p99_seconds\"] is not None) for x in b), "
        "all(0 < x[\"latency_p50_seconds\"] <= x[\"latency_p99_seconds\"] <= 10 for x in b if x[\"requests\"]), "
        "s[\"uptime_seconds\"] >= 0, s[\"config_generation\"], s[\"admin_token_required\"])' " +
        file);
    CHECK(added.exit_code == 0);
    CHECK(added.output == "1 0 True True True 1 False\n");
    CHECK(held.finish().status == 200);
}

TEST_CASE("the admin listener answers only its own paths", "[admin]") {
    ProxyFixture proxy(1);
    CHECK(http_get(proxy.server().admin_port(), "/other").status == 404);
    // The traffic port forwards /metrics to the backend like any other path.
    CHECK(http_get(proxy.port(), "/metrics").header("X-Backend-Id") == "b1");
}

TEST_CASE("a HEAD to the admin listener gets GET's head and no body", "[admin]") {
    ProxyFixture proxy(1);
    const uint16_t admin_port = proxy.server().admin_port();
    for (const std::string path : {"/", "/metrics", "/status", "/backends", "/other"}) {
        INFO(path);
        const Response get = http_get(admin_port, path);
        Client client(admin_port);
        client.send("HEAD " + path + " HTTP/1.1\r\nHost: admin\r\n\r\n");
        const std::string answer = client.read_until_closed();
        const size_t head_end = answer.find("\r\n\r\n");
        REQUIRE(head_end != std::string::npos);
        CHECK(answer.size() == head_end + 4);  // nothing after the head
        CHECK(answer.substr(0, answer.find("\r\n")) == get.head.substr(0, get.head.find("\r\n")));
        // The static page's length is the GET's; the others change between two scrapes, but are announced.
        if (path == "/")
            CHECK(answer.find("Content-Length: " + std::to_string(get.body.size()) + "\r\n") != std::string::npos);
        CHECK(answer.find("Content-Length: ") != std::string::npos);
    }
}

TEST_CASE("with metrics recording off, traffic flows and /metrics shows zeros", "[admin][metrics]") {
    ProxyFixture proxy(2, [](lb::core::Config& c) { c.metrics_enabled = false; });
    for (int i = 0; i < 5; ++i) REQUIRE(http_get(proxy.port(), "/").status == 200);
    std::string text = scrape(proxy.server().admin_port(), "/metrics");
    CHECK(metric_value(text, "lb_client_connections_accepted_total") == 0);
    CHECK(metric_value(text, "lb_client_received_bytes_total") == 0);
    CHECK(metric_value(text, "lb_request_duration_seconds_count") == 0);
    // Per method and code, a series exists only once a response was counted.
    CHECK(text.find("lb_backend_requests_total{") == std::string::npos);
    // Every series is there, at zero: the gauges too.
    CHECK(metric_value(text, "lb_backend_up{backend=\"127.0.0.1:" + std::to_string(proxy.backend(0).port()) + "\"}") ==
          0);
}
