// Request ids on the real binary: made when the client sent none, passed on when it did, seen by the backend and
// returned to the client, on lb's own error responses too; the header name is configurable and the whole can be
// turned off.
#include <catch2/catch.hpp>
#include <cctype>
#include <csignal>
#include <set>
#include <sstream>
#include <vector>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;

namespace {

std::string config(uint16_t backend_port, const std::string& request_id = "") {
    return "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  enabled: false\nhealth:\n  enabled: false\nbackends:\n"
           "  - 127.0.0.1:" +
           std::to_string(backend_port) + "\n" + request_id;
}

bool looks_like_uuid(const std::string& id) { return id.size() == 36 && id[8] == '-' && id[14] == '4'; }

}  // namespace

TEST_CASE("a request without an id gets one: the backend sees it, the client gets it back", "[request_id]") {
    StartedBackend backend;
    RunningLb lb("request-id", config(backend.port()));
    std::set<std::string> ids;
    for (int i = 0; i < 10; ++i) {
        Response r = http_get(lb.port(), "/?echo=headers");
        REQUIRE(r.status == 200);
        const std::string id = r.header("X-Request-Id");
        INFO(r.head << r.body);
        CHECK(looks_like_uuid(id));
        CHECK(echoed_values(r, "X-Request-Id") == std::vector<std::string>{id});
        ids.insert(id);
    }
    CHECK(ids.size() == 10);  // one per request, across both workers

    // The client's own passes unchanged, once, and comes back.
    Response own = http_get(lb.port(), "/?echo=headers", "X-Request-Id: trace-42\r\n");
    CHECK(own.header("X-Request-Id") == "trace-42");
    CHECK(echoed_values(own, "X-Request-Id") == std::vector<std::string>{"trace-42"});
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("lb's own error responses carry the request id", "[request_id]") {
    RefusingPort refusing;
    RunningLb lb("request-id-errors", config(refusing.port()));
    Response made = http_get(lb.port(), "/");
    CHECK(made.status == 502);
    CHECK(looks_like_uuid(made.header("X-Request-Id")));
    Response own = http_get(lb.port(), "/", "X-Request-Id: trace-7\r\n");
    CHECK(own.status == 502);
    CHECK(own.header("X-Request-Id") == "trace-7");
    // A request lb refuses (a version it does not speak) gets one too.
    Response refused = http_exchange(lb.port(), "GET / HTTP/2.0\r\nHost: t\r\n\r\n");
    CHECK(refused.status == 505);
    CHECK(looks_like_uuid(refused.header("X-Request-Id")));
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("the request id header is configurable, and request ids can be turned off", "[request_id]") {
    StartedBackend backend;
    SECTION("another header name") {
        RunningLb lb("request-id-name", config(backend.port(), "request_id:\n  header: X-Trace-Id\n"));
        Response r = http_get(lb.port(), "/?echo=headers");
        CHECK(looks_like_uuid(r.header("X-Trace-Id")));
        CHECK(echoed_values(r, "X-Trace-Id") == std::vector<std::string>{r.header("X-Trace-Id")});
        CHECK_FALSE(r.has_header("X-Request-Id"));
        CHECK(echoed_values(r, "X-Request-Id").empty());
        lb.process().signal(SIGTERM);
        CHECK(lb.process().wait() == 0);
    }
    SECTION("off") {
        RunningLb lb("request-id-off", config(backend.port(), "request_id:\n  enabled: false\n"));
        Response r = http_get(lb.port(), "/?echo=headers");
        CHECK_FALSE(r.has_header("X-Request-Id"));
        CHECK(echoed_values(r, "X-Request-Id").empty());
        lb.process().signal(SIGTERM);
        CHECK(lb.process().wait() == 0);
    }
    SECTION("a name lb sets itself is refused") {
        auto check = run_command(
            std::string(LB_BINARY) + " --check -c " +
            write_temp_file("bad-request-id.yaml", config(backend.port(), "request_id:\n  header: Content-Length\n")));
        CHECK(check.exit_code == 1);
        CHECK(check.output.find("must be a header name lb does not set or read itself") != std::string::npos);
    }
}
