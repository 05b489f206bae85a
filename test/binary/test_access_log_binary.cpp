// The access log in the real binary: one line per response lb sends, its own errors included, in JSON (each line
// parsed by Python's json module) and text; over TLS the line names the version; SIGUSR1 after `mv` starts a new
// file; a reload with another path switches files; and under wrk not one line is lost (lines = lb_requests_total).
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/metrics_text.h"
#include "test/support/started_backend.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"
#include "test/support/watchdog.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::string config(uint16_t backend_port, const std::string& access_log, const std::string& more = "") {
    return "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n"
           "backends:\n  - 127.0.0.1:" +
           std::to_string(backend_port) + "\naccess_log:\n" + access_log + more;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

size_t lines_in(const std::string& path) {
    std::string text = read_file(path);
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A fresh path under the test temp directory, with no file there yet (named apart from RunningLb's NAME.log).
std::string fresh_path(const std::string& name) {
    std::string path = write_temp_file("lines-" + name, "");
    std::filesystem::remove(path);
    return path;
}

double requests_total(const RunningLb& lb) { return metric_sum(scrape_metrics(lb.admin_port()), "lb_requests_total"); }

// Every line of a JSON access log through Python's json.loads (which refuses anything that is not one JSON
// object a line), summed up one line per request: "status method target backend? tls id? bytes_in? bytes_out?",
// sorted: each worker's lines are in order, but two workers' lines may interleave either way.
std::string parsed_json_lines(const std::string& path) {
    CommandResult parsed = run_command(
        "python3 -c 'import json, sys\n"
        "out = []\n"
        "for line in open(sys.argv[1], encoding=\"utf-8\"):\n"
        "    r = json.loads(line)\n"
        "    assert isinstance(r, dict) and len(r) == 15, r\n"
        "    out.append(\" \".join(str(v) for v in (r[\"status\"], r[\"method\"], r[\"target\"],\n"
        "        r[\"backend\"] is not None, r[\"tls\"], r[\"request_id\"] is not None, r[\"bytes_in\"] > 0,\n"
        "        r[\"bytes_out\"] > 0)))\n"
        "print(\"\\n\".join(sorted(out)))\n"
        "' " +
        path);
    INFO(parsed.output);
    CHECK(parsed.exit_code == 0);
    return parsed.output;
}

void stop(RunningLb& lb) {
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

}  // namespace

TEST_CASE("one JSON line per response, lb's own 400, 505 and 502 included", "[access_log]") {
    StartedBackend backend;
    const std::string path = fresh_path("access-json.log");
    RunningLb lb("access-json", config(backend.port(), "  path: " + path + "\n  format: json\n"));
    CHECK(http_get(lb.port(), "/one").status == 200);
    CHECK(http_get(lb.port(), "/two?x=1", "X-Request-Id: trace-9\r\n").status == 200);
    CHECK(http_exchange(lb.port(), "GARBAGE\r\n\r\n").status == 400);
    CHECK(http_exchange(lb.port(), "GET /v2 HTTP/2.0\r\nHost: t\r\n\r\n").status == 505);
    wait_until([&] { return lines_in(path) == 4; }, "four lines");
    CHECK(requests_total(lb) == 4);
    CHECK(parsed_json_lines(path) ==
          "200 GET /one True None True True True\n"
          "200 GET /two?x=1 True None True True True\n"
          "400 None None False None True True True\n"
          "505 GET /v2 False None True True True\n");
    CHECK(read_file(path).find("\"request_id\":\"trace-9\"") != std::string::npos);
    stop(lb);

    // No backend to reach: lb's 502 is logged with the backend it last tried and its retries.
    RefusingPort refusing;
    const std::string errors = fresh_path("access-502.log");
    RunningLb failing("access-502", config(refusing.port(), "  path: " + errors + "\n"));
    CHECK(http_get(failing.port(), "/down").status == 502);
    wait_until([&] { return lines_in(errors) == 1; }, "one line");
    CHECK(parsed_json_lines(errors) == "502 GET /down True None True True True\n");
    CHECK(read_file(errors).find("\"retries\":0,") != std::string::npos);  // one backend: nothing else to try
    stop(failing);
}

TEST_CASE("bytes that are not UTF-8 or are JSON's own in a target keep the line one JSON object", "[access_log]") {
    StartedBackend backend;
    const std::string path = fresh_path("access-hostile.log");
    RunningLb lb("access-hostile", config(backend.port(), "  path: " + path + "\n"));
    // What strict llhttp lets through reaches the backend (and the log as the target); what it refuses is a 400
    // logged without a target. Either way each line must parse.
    int statuses[] = {
        http_exchange(lb.port(), "GET /caf\xc3\xa9/\xff\xfe\x80 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .status,
        http_exchange(lb.port(), "GET /a\\b{\"x\":1} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status,
        http_exchange(lb.port(), "GET /x\x01y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status,
        http_get(lb.port(), "/", "X-Request-Id: \"quoted\\\" \xff\r\n").status,
    };
    for (int status : statuses) CHECK((status == 200 || status == 400));
    wait_until([&] { return lines_in(path) == 4; }, "four lines");
    INFO(read_file(path));
    std::string parsed = parsed_json_lines(path);
    CHECK(std::count(parsed.begin(), parsed.end(), '\n') == 4);
    stop(lb);
}

TEST_CASE("the text format: one positional line per response", "[access_log]") {
    StartedBackend backend;
    const std::string path = fresh_path("access-text.log");
    RunningLb lb("access-text", config(backend.port(), "  path: " + path + "\n  format: text\n"));
    CHECK(http_get(lb.port(), "/t?a=b").status == 200);
    CHECK(http_exchange(lb.port(), "GARBAGE\r\n\r\n").status == 400);
    wait_until([&] { return lines_in(path) == 2; }, "two lines");
    std::string text = read_file(path);
    INFO(text);
    const std::string id = "[0-9a-f-]{36}";
    CHECK(
        std::regex_search(text, std::regex("(^|\n)\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z 127\\.0\\.0\\.1 "
                                           "\"GET /t\\?a=b HTTP/1\\.1\" 200 \\d+ \\d+ \\d+\\.\\d{6} \\d+\\.\\d{6} "
                                           "\\d+\\.\\d{6} 127\\.0\\.0\\.1:" +
                                           std::to_string(backend.port()) + " 0 " + id + " -\n")));
    CHECK(std::regex_search(
        text, std::regex("Z 127\\.0\\.0\\.1 \"- - -\" 400 \\d+ \\d+ \\d+\\.\\d{6} - - - 0 " + id + " -\n")));
    stop(lb);
}

TEST_CASE("path: stdout writes the lines to lb's standard output", "[access_log]") {
    StartedBackend backend;
    RunningLb lb("access-stdout", config(backend.port(), "  path: stdout\n  format: text\n"));
    CHECK(http_get(lb.port(), "/to-stdout").status == 200);
    // RunningLb puts lb's standard output and its error log in one file.
    wait_until([&] { return count_lines_with(lb.log_path(), "\"GET /to-stdout HTTP/1.1\" 200 ") == 1; },
               "the line on lb's standard output");
    stop(lb);
}

TEST_CASE("over TLS the line names the protocol version", "[access_log][tls]") {
    const TestCerts& certs = test_certs();
    StartedBackend backend;
    const std::string path = fresh_path("access-tls.log");
    const std::string yaml =
        "listen:\n  - address: 127.0.0.1:0\n    tls:\n      certificates:\n        - cert: " +
        certs.localhost_rsa.cert + "\n          key: " + certs.localhost_rsa.key +
        "\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\nbackends:\n  - 127.0.0.1:" +
        std::to_string(backend.port()) + "\naccess_log:\n  path: " + path + "\n";
    RunningLb lb("access-tls", yaml);
    const std::string port = std::to_string(lb.port());
    CommandResult tls13 = run_command("curl -s --max-time 10 --cacert " + certs.ca.cert +
                                      " --resolve localhost:" + port + ":127.0.0.1 https://localhost:" + port + "/13");
    CHECK(tls13.output == "b1\n");
    CommandResult tls12 = run_command("curl -s --max-time 10 --tlsv1.2 --tls-max 1.2 --cacert " + certs.ca.cert +
                                      " --resolve localhost:" + port + ":127.0.0.1 https://localhost:" + port + "/12");
    CHECK(tls12.output == "b1\n");
    wait_until([&] { return lines_in(path) == 2; }, "two lines");
    std::string parsed = parsed_json_lines(path);
    CHECK(parsed.find("200 GET /13 True TLSv1.3 ") != std::string::npos);
    CHECK(parsed.find("200 GET /12 True TLSv1.2 ") != std::string::npos);
    stop(lb);
}

TEST_CASE("SIGUSR1 after mv: new lines go to a new file at the path, none lost", "[access_log][signals]") {
    StartedBackend backend;
    const std::string path = fresh_path("access-rotate.log");
    RunningLb lb("access-rotate", config(backend.port(), "  path: " + path + "\n"));
    for (int i = 0; i < 3; ++i) CHECK(http_get(lb.port(), "/before").status == 200);
    wait_until([&] { return lines_in(path) == 3; }, "three lines");

    // What logrotate does: move the file, then signal. Until the signal lines still go to the moved file.
    const std::string rotated = path + ".1";
    std::filesystem::rename(path, rotated);
    CHECK(http_get(lb.port(), "/between").status == 200);
    wait_until([&] { return lines_in(rotated) == 4; }, "the moved file gets the line sent before the signal");
    lb.process().signal(SIGUSR1);
    lb.wait_for_log("access_log: reopened");
    for (int i = 0; i < 2; ++i) CHECK(http_get(lb.port(), "/after").status == 200);
    wait_until([&] { return lines_in(path) == 2; }, "two lines in the new file");
    CHECK(lines_in(rotated) == 4);
    CHECK(read_file(path).find("/before") == std::string::npos);
    CHECK(read_file(rotated).find("/after") == std::string::npos);
    CHECK(requests_total(lb) == 6);
    stop(lb);
}

TEST_CASE("a reload with another access_log path switches files, and one without access_log stops logging",
          "[access_log][reload]") {
    StartedBackend backend;
    const std::string first = fresh_path("access-reload-1.log");
    const std::string second = fresh_path("access-reload-2.log");
    RunningLb lb("access-reload", config(backend.port(), "  path: " + first + "\n"));
    CHECK(http_get(lb.port(), "/one").status == 200);
    wait_until([&] { return lines_in(first) == 1; }, "a line in the first file");

    REQUIRE(lb.reload(config(backend.port(), "  path: " + second + "\n  format: text\n")));
    CHECK(http_get(lb.port(), "/two").status == 200);
    wait_until([&] { return lines_in(second) == 1; }, "a line in the second file");
    CHECK(read_file(second).find("\"GET /two HTTP/1.1\" 200") != std::string::npos);
    CHECK(lines_in(first) == 1);

    // A path lb cannot create is refused by the reload; the running generation keeps its file.
    CHECK_FALSE(lb.reload(config(backend.port(), "  path: " + second + ".d/missing/access.log\n")));
    CHECK(http_get(lb.port(), "/three").status == 200);
    wait_until([&] { return lines_in(second) == 2; }, "the kept file gets the next line");

    std::string without =
        "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n"
        "backends:\n  - 127.0.0.1:" +
        std::to_string(backend.port()) + "\n";
    REQUIRE(lb.reload(without));
    CHECK(http_get(lb.port(), "/four").status == 200);
    CHECK(requests_total(lb) == 1);  // the new generation's own count
    stop(lb);
    CHECK(lines_in(second) == 2);
    CHECK(lines_in(first) == 1);
}

TEST_CASE("under wrk, one line per response: lines = lb_requests_total, none dropped", "[access_log][wrk]") {
    set_watchdog_limit(60s);
    StartedBackend backend;
    const std::string path = fresh_path("access-wrk.log");
    RunningLb lb("access-wrk", config(backend.port(), "  path: " + path + "\n"));
    CommandResult wrk =
        run_command("wrk -t2 -c16 -d2s --timeout 5s http://127.0.0.1:" + std::to_string(lb.port()) + "/");
    INFO(wrk.output);
    REQUIRE(wrk.exit_code == 0);
    std::smatch m;
    REQUIRE(std::regex_search(wrk.output, m, std::regex(R"((\d+) requests in)")));
    const uint64_t reported = std::stoull(m[1]);
    CHECK(reported > 100);
    CHECK(wrk.output.find("Socket errors") == std::string::npos);

    // wrk counts the responses it read before its deadline; lb may finish a few more after wrk has gone (a request
    // in flight is answered after the client's half-close). Once lb has closed wrk's connections, its own count is
    // the exact one, and every response it counted has its line.
    wait_until([&] { return scrape_metric(lb.admin_port(), "lb_client_connections_active") == 0; },
               "lb closes wrk's connections");
    const auto responses = static_cast<uint64_t>(requests_total(lb));
    CHECK(responses >= reported);
    CHECK(responses <= reported + 16);
    wait_until([&] { return lines_in(path) >= responses; }, "a line for every response");
    CHECK(lines_in(path) == responses);
    CHECK(scrape_metric(lb.admin_port(), "lb_access_log_dropped_total") == 0);
    stop(lb);
    CHECK(lines_in(path) == responses);
}
