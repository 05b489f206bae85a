// Bodies stream in both directions as they arrive, chunked or not, with bounded memory.
#include <catch2/catch.hpp>
#include <csignal>

#include "demo/demo_backend.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;

namespace {

std::string url(uint16_t port, const std::string& target) {
    return "http://127.0.0.1:" + std::to_string(port) + target;
}

}  // namespace

TEST_CASE("a chunked upload is re-chunked to the backend and echoed back", "[streaming][chunked]") {
    ProxyFixture proxy(1);
    std::string body;
    for (int i = 0; i < 20000; ++i) body += "line " + std::to_string(i) + "\n";
    std::string file = write_temp_file("chunked-upload.txt", body);
    auto result = run_command("curl -s --max-time 20 -H 'Transfer-Encoding: chunked' --data-binary @" + file + " '" +
                              url(proxy.port(), "/?echo=body") + "'");
    REQUIRE(result.exit_code == 0);
    CHECK(result.output.size() == body.size());
    CHECK(result.output == body);
}

TEST_CASE("a chunked download arrives whole", "[streaming][chunked]") {
    ProxyFixture proxy(1);
    Client client(proxy.port());
    client.send("GET /?bytes=3000000&chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    Response r = client.read_response();
    CHECK(r.chunked);
    CHECK(r.body.size() == 3000000);
    CHECK(r.body.substr(0, 26) == "abcdefghijklmnopqrstuvwxyz");
    // The connection is still usable: the terminating chunk was forwarded exactly once.
    client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(client.read_response().body == "b1\n");
}

// Runs the lb binary (a separate process, so its peak RSS is its own) in front of an in-process backend.
TEST_CASE("1 GiB streams each way through lb with bounded memory", "[streaming][large]") {
    set_watchdog_limit(std::chrono::seconds{110});  // 2 GiB through a sanitizer build on a loaded machine
    lb::demo::DemoBackend backend({});
    backend.start();
    std::string config = write_temp_file(
        "large.yaml", "listen: 127.0.0.1:0\nworkers: 1\nbackends:\n  - 127.0.0.1:" + std::to_string(backend.port()) +
                          "\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n");
    std::string log = write_temp_file("large.log", "");
    Process lb({LB_BINARY, "-c", config}, log);
    uint16_t port = wait_for_lb_port(log);

    const uint64_t gib = 1ULL << 30;
    auto download = run_command("curl -s --max-time 90 -o /dev/null -w '%{http_code} %{size_download}' '" +
                                url(port, "/?bytes=" + std::to_string(gib)) + "'");
    CHECK(download.output == "200 " + std::to_string(gib));
    auto upload = run_command("head -c " + std::to_string(gib) +
                              " /dev/zero | curl -s --max-time 90 -o /dev/null -D - -T - -X POST '" +
                              url(port, "/upload") + "' | tr -d '\\r' | grep -i '^X-Received-Body-Bytes'");
    CHECK(upload.output == "X-Received-Body-Bytes: " + std::to_string(gib) + "\n");

    uint64_t peak = lb.peak_rss_bytes();
    INFO("lb peak RSS: " << peak / 1024 << " KiB");
    // Nothing is buffered whole: a few read buffers and write queues, far below the 2 GiB that passed.
#if defined(__SANITIZE_ADDRESS__)
    CHECK(peak < 256ULL * 1024 * 1024);  // ASan's shadow memory and quarantine come on top
#else
    CHECK(peak < 32ULL * 1024 * 1024);
#endif
    WARN("lb peak RSS after 1 GiB each way: " << peak / 1024 << " KiB");
    lb.signal(SIGTERM);
    CHECK(lb.wait() == 0);
}
