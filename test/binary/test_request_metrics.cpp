// What clients got, as an operator's Prometheus sees it from the real binary: lb_requests_total counts every
// response lb sent, its own errors included, and the error rate the README gives is computed by promtool's own
// PromQL engine over the series lb exported.
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/metrics_text.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::string address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Every lb_requests_total series of a scrape, by its full name with labels.
std::map<std::string, double> requests_series(const std::string& text) {
    std::map<std::string, double> series;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("lb_requests_total{", 0) != 0) continue;
        size_t space = line.rfind(' ');
        series[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return series;
}

// The error-rate expression as the README gives it: the backquoted span that holds the 5xx selector.
std::string readme_error_rate() {
    std::ifstream in(LB_SOURCE_DIR "/README.md");
    std::stringstream text;
    text << in.rdbuf();
    const std::string readme = text.str();
    const size_t selector = readme.find("sum(rate(lb_requests_total{code=~\"5..\"}[5m]))");
    REQUIRE(selector != std::string::npos);
    const size_t open = readme.rfind('`', selector);
    const size_t close = readme.find('`', selector);
    REQUIRE(open != std::string::npos);
    REQUIRE(close != std::string::npos);
    return readme.substr(open + 1, close - open - 1);
}

}  // namespace

TEST_CASE("lb_requests_total counts lb's own answers: 503 with no backend up, 400 under method OTHER",
          "[metrics][requests]") {
    StartedBackend failing("failing");
    // Its checks always fail and it starts down: every request finds no backend up.
    RunningLb lb("no-backend",
                 "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n"
                 "  - address: " +
                     address(failing.port()) +
                     "\n    health:\n      path: /health?status=500\n"
                     "health:\n  initial_state: unhealthy\n  interval: 1h\n");
    CHECK(http_get(lb.port(), "/").status == 503);
    CHECK(http_get(lb.port(), "/").status == 503);
    CHECK(http_exchange(lb.port(), "POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab")
              .status == 503);
    // An invented method is refused with 400 before its head is whole: counted, under OTHER.
    CHECK(http_exchange(lb.port(), "BREW /pot HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status == 400);

    const std::string text = scrape_metrics(lb.admin_port());
    CHECK(metric_value(text, "lb_requests_total{method=\"GET\",code=\"503\"}") == 2);
    CHECK(metric_value(text, "lb_requests_total{method=\"POST\",code=\"503\"}") == 1);
    CHECK(metric_value(text, "lb_requests_total{method=\"OTHER\",code=\"400\"}") == 1);
    CHECK(metric_sum(text, "lb_requests_total") == 4);
    CHECK(metric_value(text, "lb_errors_total{kind=\"no_backend\"}") == 3);
    // Each answer is timed, under its class too.
    CHECK(metric_value(text, "lb_request_duration_seconds_count") == 4);
    CHECK(metric_value(text, "lb_request_duration_by_code_seconds_count{code=\"5xx\"}") == 3);
    CHECK(metric_value(text, "lb_request_duration_by_code_seconds_count{code=\"4xx\"}") == 1);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("the README's error rate, computed by promtool on lb's own series, is the share of 5xx clients got",
          "[metrics][requests][promtool]") {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        if (std::getenv("LB_SKIP_PROMTOOL")) {
            WARN("promtool not installed and LB_SKIP_PROMTOOL set: skipped");
            return;
        }
        FAIL("promtool not found: apt-get install prometheus (or set LB_SKIP_PROMTOOL=1 to skip)");
    }
    StartedBackend backend("b1");
    RunningLb lb("error-rate", "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nbackends:\n  - " +
                                   address(backend.port()) + "\nhealth:\n  enabled: false\n");
    // Three sources of status: the backend's 200 and 503, and lb's own 505 (a version it does not speak).
    auto traffic = [&](int ok, int backend_503, int lb_505) {
        for (int i = 0; i < ok; ++i) REQUIRE(http_get(lb.port(), "/").status == 200);
        for (int i = 0; i < backend_503; ++i) REQUIRE(http_get(lb.port(), "/?status=503").status == 503);
        for (int i = 0; i < lb_505; ++i) {
            REQUIRE(http_exchange(lb.port(), "GET / HTTP/2.0\r\nHost: t\r\n\r\n").status == 505);
        }
    };
    // Every series exists at the first scrape, so that rate() sees each one at both.
    traffic(1, 1, 1);
    const auto first = requests_series(scrape_metrics(lb.admin_port()));
    traffic(5, 2, 1);
    const auto second = requests_series(scrape_metrics(lb.admin_port()));
    REQUIRE(first.size() == 3);
    REQUIRE(second.size() == 3);

    // Scrapes at 0 and 1 minute hold the first values, at 2 minutes the second: the 5-minute window holds all
    // three for every series, so the ratio of rates is the ratio of increases, 3 of 8. Every value is raised by
    // the same amount, as if lb had run a while: rate() stops extrapolating a counter at zero, which with values
    // this small would weigh each series differently.
    constexpr long kEarlier = 1'000'000;
    std::string input;
    for (const auto& [series, value] : second) {
        REQUIRE(first.count(series) == 1);
        const long before = kEarlier + static_cast<long>(first.at(series));
        const long after = kEarlier + static_cast<long>(value);
        input += "      - series: '" + series + "'\n        values: '" + std::to_string(before) + " " +
                 std::to_string(before) + " " + std::to_string(after) + "'\n";
    }
    std::string expression = readme_error_rate();
    INFO("README expression: " << expression);
    std::string tests =
        write_temp_file("error-rate.test.yml",
                        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n" +
                            input + "    promql_expr_test:\n      - expr: '" + expression +
                            "'\n        eval_time: 2m\n        exp_samples:\n          - labels: '{}'\n"
                            "            value: 0.375\n");
    auto result = run_command("promtool test rules " + tests + " 2>&1");
    INFO(result.output);
    CHECK(result.exit_code == 0);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("the shipped alerting rules pass promtool's checks and their own unit tests", "[metrics][promtool]") {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        if (std::getenv("LB_SKIP_PROMTOOL")) {
            WARN("promtool not installed and LB_SKIP_PROMTOOL set: skipped");
            return;
        }
        FAIL("promtool not found: apt-get install prometheus (or set LB_SKIP_PROMTOOL=1 to skip)");
    }
    auto check = run_command("promtool check rules " LB_SOURCE_DIR "/deploy/prometheus/lb-alerts.yml 2>&1");
    INFO(check.output);
    CHECK(check.exit_code == 0);
    // promtool resolves rule_files relative to the test file.
    auto tests = run_command("promtool test rules " LB_SOURCE_DIR "/deploy/prometheus/lb-alerts.test.yml 2>&1");
    INFO(tests.output);
    CHECK(tests.exit_code == 0);
    // The alert on errors uses the README's expression.
    std::ifstream in(LB_SOURCE_DIR "/deploy/prometheus/lb-alerts.yml");
    std::stringstream rules;
    rules << in.rdbuf();
    CHECK_THAT(rules.str(), Catch::Contains("rate(lb_requests_total{code=~\"5..\"}[5m]))"));
}
