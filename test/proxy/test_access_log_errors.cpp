// The access log in-process (the sanitizers watch every path that writes a line): each of lb's own error statuses,
// provoked for real, gets its line, in order, with what lb knew when it answered.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "test/support/metrics_text.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Sends `request` on a connection of its own and returns the status lb answered.
int status_for(uint16_t port, const std::string& request) {
    Client client(port);
    client.send(request);
    return client.read_response().status;
}

}  // namespace

TEST_CASE("every error status lb sends gets its access log line", "[access_log][errors]") {
    const std::string path = write_temp_file("access-errors.log", "");
    std::filesystem::remove(path);
    ProxyFixture proxy(2, [&](lb::core::Config& c) {
        c.access_log = {.enabled = true, .path = path, .format = lb::access_log::Format::text};
        c.timeouts.client_header = 200ms;
        c.timeouts.upstream_response = 300ms;
        c.limits.uri_bytes = 1024;
        c.limits.header_bytes = 4096;
        c.limits.request_body_bytes = 1000;
        c.retries = 0;
    });
    const uint16_t port = proxy.port();
    std::vector<int> sent = {
        status_for(port, "GET /fine HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        status_for(port, "GET / HTTP/1.1\r\nHost: te"),  // and nothing more: 408
        status_for(port, "GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n"),
        status_for(port, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n"),
        status_for(port, "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n"),
        status_for(port, "GET /?silent=1 HTTP/1.1\r\nHost: t\r\n\r\n"),
    };
    set_backend_health(proxy.server(), 0, false);
    set_backend_health(proxy.server(), 1, false);
    sent.push_back(status_for(port, "GET /none HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(sent == std::vector<int>{200, 408, 414, 431, 413, 504, 503});

    wait_until([&] { return lines_of(path).size() == sent.size(); }, "a line per response");
    CHECK(metric_sum(proxy.server().render_metrics(), "lb_requests_total") == static_cast<double>(sent.size()));
    std::vector<std::string> lines = lines_of(path);
    // One worker: the lines are in the order the responses went out. TIME CLIENT "REQUEST" STATUS BYTES_IN
    // BYTES_OUT TIME CONNECT RESPONSE BACKEND RETRIES ID TLS.
    const std::string t = "\\d+\\.\\d{6}", n = "\\d+", id = "[0-9a-f-]{36}", b = "127\\.0\\.0\\.1:\\d+";
    const std::vector<std::string> expected = {
        "\"GET /fine HTTP/1\\.1\" 200 " + n + " " + n + " " + t + " " + t + " " + t + " " + b + " 0 " + id + " -",
        "\"- - -\" 408 24 " + n + " " + t + " - - - 0 " + id + " -",
        "\"- - -\" 414 " + n + " " + n + " " + t + " - - - 0 " + id + " -",
        "\"- - -\" 431 " + n + " " + n + " " + t + " - - - 0 " + id + " -",
        "\"POST /big HTTP/1\\.1\" 413 " + n + " " + n + " " + t + " - - - 0 " + id + " -",
        "\"GET /\\?silent=1 HTTP/1\\.1\" 504 " + n + " " + n + " " + t + " " + t + " - " + b + " 0 " + id + " -",
        "\"GET /none HTTP/1\\.1\" 503 " + n + " " + n + " " + t + " - - - 0 " + id + " -",
    };
    REQUIRE(lines.size() == expected.size());
    for (size_t i = 0; i < lines.size(); ++i) {
        INFO(lines[i]);
        CHECK(std::regex_search(lines[i], std::regex("^\\S+Z 127\\.0\\.0\\.1 " + expected[i] + "$")));
    }
    proxy.stop();
}
