// Routing on the real binary: the example config as written (addresses swapped for demo backends on
// loopback), each matcher and header action (a 101 included), strip_prefix, the 404 when no route matches, a pool's
// own algorithm, retries, queue and keepalive, and lb --check naming shadowed routes and unknown pools.
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/raw_backend.h"
#include "test/support/test_support.h"
#include "test/support/websocket_client.h"

using namespace lb::test;

namespace {

// Demo backends by id, started on port 0.
class Backends {
  public:
    explicit Backends(std::initializer_list<std::string> ids) {
        for (const std::string& id : ids) {
            auto backend = std::make_unique<lb::demo::DemoBackend>(lb::demo::DemoBackendOptions{.id = id});
            backend->start();
            backends_[id] = std::move(backend);
        }
    }
    std::string address(const std::string& id) const { return "127.0.0.1:" + std::to_string(backends_.at(id)->port()); }

  private:
    std::map<std::string, std::unique_ptr<lb::demo::DemoBackend>> backends_;
};

Response request(uint16_t port, const std::string& method, const std::string& target, const std::string& host,
                 const std::string& extra = "") {
    return http_exchange(
        port, method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" + extra + "\r\n");
}

// The request line the backend received.
std::string received_request_line(const Response& echo) {
    std::string line = echo.body.substr(0, echo.body.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

// A backend that answers each request with its one-letter id, but not before the test releases it: until then a
// request holds the backend's only slot.
class HeldBackend {
  public:
    explicit HeldBackend(char id) : raw_([this, id](int fd) { serve(fd, id); }) {}
    void release() { released_ = true; }
    std::string address() const { return "127.0.0.1:" + std::to_string(raw_.port()); }

  private:
    void serve(int fd, char id) {
        for (std::string head = RawBackend::read_head(fd); !head.empty(); head = RawBackend::read_head(fd)) {
            while (!released_) {
                // Gives up when lb closes the connection, or the RawBackend shuts it down at the end.
                pollfd readable{fd, POLLIN, 0};
                char byte = 0;
                if (::poll(&readable, 1, 10) > 0 && ::recv(fd, &byte, 1, MSG_PEEK) <= 0) return;
            }
            if (!RawBackend::write_all(fd, std::string("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n") + id)) return;
        }
    }

    std::atomic<bool> released_{false};
    RawBackend raw_;  // last: its threads stop before released_ is gone
};

// Joins its threads however the test ends: a failed REQUIRE throws, and destroying a joinable std::thread would
// end the whole test binary instead of failing one test. Each thread must end on its own (the clients here give up
// after 15 s).
class JoinedThreads {
  public:
    JoinedThreads() = default;
    JoinedThreads(const JoinedThreads&) = delete;
    JoinedThreads& operator=(const JoinedThreads&) = delete;
    ~JoinedThreads() {
        for (std::thread& thread : threads_) {
            if (thread.joinable()) thread.join();
        }
    }
    std::thread& add(std::thread thread) { return threads_.emplace_back(std::move(thread)); }  // stays valid

  private:
    std::deque<std::thread> threads_;
};

const std::string kHead = "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n";

}  // namespace

TEST_CASE("the issue's example: hosts, path prefixes and the catch-all reach their pools", "[routing]") {
    Backends b({"api1", "api2", "static1", "web1", "web2"});
    const std::string yaml = kHead +
                             "pools:\n"
                             "  api:    {backends: [" +
                             b.address("api1") + ", " + b.address("api2") +
                             "], algorithm: least_connections}\n"
                             "  static: {backends: [" +
                             b.address("static1") +
                             "]}\n"
                             "  web:    {backends: [" +
                             b.address("web1") + ", " + b.address("web2") +
                             "]}\n"
                             "routes:\n"
                             "  - match: {host: api.example.com}\n"
                             "    pool: api\n"
                             "    request_headers: {set: {X-Route: api}}\n"
                             "  - match: {path_prefix: /static/}\n"
                             "    pool: static\n"
                             "  - pool: web\n";
    RunningLb lb("routing-example", yaml);

    std::set<std::string> api, web;
    for (int i = 0; i < 8; ++i) {
        Response r = request(lb.port(), "GET", "/v1/users?echo=headers", "API.example.com:8080");
        REQUIRE(r.status == 200);
        api.insert(r.header("X-Backend-Id"));
        CHECK(echoed_values(r, "X-Route") == std::vector<std::string>{"api"});
        Response w = request(lb.port(), "GET", "/index.html?echo=headers", "www.example.com");
        REQUIRE(w.status == 200);
        web.insert(w.header("X-Backend-Id"));
        CHECK(echoed_values(w, "X-Route").empty());
    }
    CHECK(api == std::set<std::string>{"api1", "api2"});
    CHECK(web == std::set<std::string>{"web1", "web2"});
    // The host route comes first: api.example.com/static/ is the api pool's.
    CHECK(request(lb.port(), "GET", "/static/app.js", "api.example.com").header("X-Backend-Id").rfind("api", 0) == 0);
    CHECK(request(lb.port(), "GET", "/static/app.js", "www.example.com").header("X-Backend-Id") == "static1");
    CHECK(request(lb.port(), "GET", "/static", "www.example.com").header("X-Backend-Id").rfind("web", 0) == 0);
    // Responses per route and status class, and each backend's pool, in /metrics.
    CHECK(lb.metric("lb_route_responses_total{route=\"routes[0]\",pool=\"api\",code=\"2xx\"}") == 9);
    CHECK(lb.metric("lb_route_responses_total{route=\"routes[1]\",pool=\"static\",code=\"2xx\"}") == 1);
    CHECK(lb.metric("lb_route_responses_total{route=\"routes[2]\",pool=\"web\",code=\"2xx\"}") == 9);
    CHECK(lb.metric("lb_route_responses_total{route=\"routes[2]\",pool=\"web\",code=\"5xx\"}") == 0);
    CHECK(lb.metric("lb_backend_pool_info{backend=\"" + b.address("static1") + "\",pool=\"static\"}") == 1);
    // /status names each backend's pool.
    const std::string status = http_get(lb.admin_port(), "/status").body;
    CHECK(status.find("\"name\":\"" + b.address("api2") + "\"") != std::string::npos);
    for (const char* pool : {"\"pool\":\"api\"", "\"pool\":\"static\"", "\"pool\":\"web\""}) {
        CHECK(status.find(pool) != std::string::npos);
    }
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("each matcher and header action, strip_prefix, and a 404 when nothing matches", "[routing]") {
    Backends b({"a", "b", "c", "d", "e", "f"});
    const std::string yaml = kHead + "pools:\n  a: {backends: [" + b.address("a") + "]}\n  b: {backends: [" +
                             b.address("b") + "]}\n  c: {backends: [" + b.address("c") + "]}\n  d: {backends: [" +
                             b.address("d") + "]}\n  e: {backends: [" + b.address("e") + "]}\n  f: {backends: [" +
                             b.address("f") +
                             "]}\n"
                             "routes:\n"
                             "  - match: {host: '*.tenants.test'}\n"
                             "    pool: a\n"
                             "    response_headers: {set: {X-Served-By: a}, remove: [X-Conn-Id]}\n"
                             "  - match: {path: /exact}\n"
                             "    name: exact\n"
                             "    pool: b\n"
                             "  - match: {method: POST, path_prefix: /upload/}\n"
                             "    pool: c\n"
                             "    strip_prefix: /upload\n"
                             "  - match: {header: {name: X-Canary, value: 'yes'}}\n"
                             "    pool: d\n"
                             "    request_headers: {add: {X-Tag: two}, remove: [X-Secret]}\n"
                             "  - match: {header: {name: X-Debug}}\n"
                             "    pool: e\n"
                             "    request_headers: {set: {Host: internal.test}}\n"
                             "  - match: {path_prefix: /api/}\n"
                             "    pool: f\n"
                             "    strip_prefix: /api\n"
                             "  - match: {path: /ws}\n"
                             "    pool: a\n"
                             "    response_headers: {set: {X-Served-By: ws}, remove: [X-Conn-Id]}\n";
    RunningLb lb("routing-matchers", yaml);
    auto backend_of = [](const Response& r) { return r.header("X-Backend-Id"); };

    // host: a leading *. matches any subdomain, not the bare name; response headers set and removed.
    Response tenant = request(lb.port(), "GET", "/", "x.y.tenants.test");
    CHECK(backend_of(tenant) == "a");
    CHECK(tenant.header("X-Served-By") == "a");
    CHECK(tenant.header("X-Conn-Id").empty());
    CHECK(request(lb.port(), "GET", "/", "tenants.test").status == 404);
    // A route's response headers apply to a 101 too, and the tunnel works.
    {
        WebSocketClient ws(lb.port(), "/ws");
        REQUIRE(ws.status() == 101);
        CHECK(ws.response().header("X-Served-By") == "ws");
        CHECK_FALSE(ws.response().has_header("X-Conn-Id"));
        ws.send_frame(WebSocketClient::kText, "through the route");
        CHECK(ws.read_frame().payload == "through the route");
    }

    // path: exact, the query aside.
    CHECK(backend_of(request(lb.port(), "GET", "/exact?q=1", "h")) == "b");
    CHECK(request(lb.port(), "GET", "/exact/more", "h").status == 404);
    CHECK(lb.metric("lb_route_responses_total{route=\"exact\",pool=\"b\",code=\"2xx\"}") == 1);

    // method and path_prefix together; strip_prefix takes /upload off what the backend sees.
    Response upload = http_exchange(lb.port(),
                                    "POST /upload/files/1?echo=headers HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
                                    "Connection: close\r\n\r\nhi");
    CHECK(backend_of(upload) == "c");
    CHECK(received_request_line(upload) == "POST /files/1?echo=headers HTTP/1.1");
    CHECK(request(lb.port(), "GET", "/upload/files/1", "h").status == 404);

    // header with a value; request headers added and removed.
    Response canary =
        request(lb.port(), "GET", "/?echo=headers", "h", "X-Canary: yes\r\nX-Tag: one\r\nX-Secret: s\r\n");
    CHECK(backend_of(canary) == "d");
    CHECK(echoed_values(canary, "X-Tag") == std::vector<std::string>{"one", "two"});
    CHECK(echoed_values(canary, "X-Secret").empty());
    CHECK(request(lb.port(), "GET", "/", "h", "X-Canary: no\r\n").status == 404);

    // header present, any value; Host set for the backend.
    Response debug = request(lb.port(), "GET", "/?echo=headers", "h", "X-Debug: 0\r\n");
    CHECK(backend_of(debug) == "e");
    CHECK(echoed_values(debug, "Host") == std::vector<std::string>{"internal.test"});

    // strip_prefix leaves a path that still starts with '/'.
    Response api = request(lb.port(), "GET", "/api?echo=headers", "h");
    CHECK(request(lb.port(), "GET", "/api/?echo=headers", "h").body.rfind("GET /?echo=headers HTTP/1.1", 0) == 0);
    CHECK(api.status == 404);  // "/api" is not under "/api/"

    // No route: 404 with a short body, counted as lb's own answer.
    Response none = request(lb.port(), "GET", "/nowhere", "h");
    CHECK(none.status == 404);
    CHECK(none.body == "lb: no route matches this request\n");
    CHECK(lb.metric("lb_errors_total{kind=\"no_route\"}") >= 1);
    CHECK(lb.metric("lb_requests_total{method=\"GET\",code=\"404\"}") >= 1);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a pool's retries and a route's own are each used", "[routing]") {
    Backends b({"p", "q", "n"});
    RefusingPort dead_p, dead_q, dead_n;
    auto dead = [](const RefusingPort& port) { return "127.0.0.1:" + std::to_string(port.port()); };
    // Each pool round-robins over a refusing port and a demo backend, with passive ejection off so the refusing
    // port stays in: a request sent to it succeeds only if it may be retried.
    const std::string yaml =
        "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\n"
        "health:\n  enabled: false\n  passive:\n    consecutive_failures: 0\nretries: 0\n"
        "pools:\n  p: {backends: [" +
        dead(dead_p) + ", " + b.address("p") + "], retries: 1}\n  q: {backends: [" + dead(dead_q) + ", " +
        b.address("q") + "]}\n  n: {backends: [" + dead(dead_n) + ", " + b.address("n") +
        "]}\n"
        "routes:\n  - match: {path_prefix: /q/}\n    pool: q\n    retries: 1\n"
        "  - match: {path_prefix: /n/}\n    pool: n\n  - pool: p\n";
    RunningLb lb("routing-retries", yaml);
    int p_failures = 0, q_failures = 0, n_failures = 0;
    for (int i = 0; i < 12; ++i) {
        p_failures += request(lb.port(), "GET", "/", "h").status != 200;    // the pool's retries: 1
        q_failures += request(lb.port(), "GET", "/q/", "h").status != 200;  // the route's retries: 1
        n_failures += request(lb.port(), "GET", "/n/", "h").status != 200;  // the top level's retries: 0
    }
    CHECK(p_failures == 0);
    CHECK(q_failures == 0);
    // Of any two requests one worker takes from pool n, one goes to the refusing port; 12 requests over 2 workers
    // give some worker two.
    CHECK(n_failures > 0);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("lb --check names routes that can never match and routes naming unknown pools", "[routing]") {
    const std::string pools = "pools:\n  a: {backends: [127.0.0.1:9001]}\n  b: {backends: [127.0.0.1:9002]}\n";
    {
        const std::string file = write_temp_file("routing-shadowed.yaml", pools +
                                                                              "routes:\n"
                                                                              "  - match: {path_prefix: /api/}\n"
                                                                              "    pool: a\n"
                                                                              "  - match: {path_prefix: /api/v2/}\n"
                                                                              "    pool: b\n"
                                                                              "  - pool: b\n");
        CommandResult check = run_command(std::string(LB_BINARY) + " --check -c " + file);
        INFO(check.output);
        CHECK(check.exit_code == 0);
        CHECK(check.output.find(file + ":7:") != std::string::npos);
        CHECK(check.output.find("'routes[1]' can never match: 'routes[0]' (line 5)") != std::string::npos);
    }
    {
        const std::string file = write_temp_file("routing-unknown.yaml", pools + "routes:\n  - pool: a\n  - pool: c\n");
        CommandResult check = run_command(std::string(LB_BINARY) + " --check -c " + file);
        INFO(check.output);
        CHECK(check.exit_code != 0);
        CHECK(check.output.find(file + ":6:") != std::string::npos);
        CHECK(check.output.find("unknown pool 'c' (pools: a, b)") != std::string::npos);
    }
}

TEST_CASE("a route's own upstream_response timeout applies to its requests only", "[routing]") {
    Backends b({"slow"});
    const std::string yaml = kHead + "timeouts: {upstream_response: 30s}\npools:\n  p: {backends: [" +
                             b.address("slow") +
                             "]}\nroutes:\n  - match: {path_prefix: /quick/}\n    pool: p\n"
                             "    timeouts: {upstream_response: 200ms}\n  - pool: p\n";
    RunningLb lb("routing-timeouts", yaml);
    // The backend answers after 1.5 s: past the route's 200 ms, well within the top level's 30 s.
    Response quick = request(lb.port(), "GET", "/quick/?delay_ms=1500", "h");
    CHECK(quick.status == 504);
    Response other = request(lb.port(), "GET", "/?delay_ms=1500", "h");
    CHECK(other.status == 200);
    CHECK(lb.metric("lb_errors_total{kind=\"upstream_timeout\"}") == 1);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("a pool's own queue and upstream keepalive apply to its requests only", "[routing]") {
    Backends b({"tight", "roomy", "fresh", "kept"});
    // Each of `tight` and `roomy` takes one request at a time (max_connections 1, one worker); `tight`'s pool has no
    // queue, `roomy`'s the top level's. `fresh`'s pool keeps no idle connection, `kept`'s keeps them all.
    const std::string yaml =
        "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n"
        "queue: {size: 10, timeout: 20s}\n"
        "pools:\n"
        "  tight: {backends: [{address: " +
        b.address("tight") +
        ", max_connections: 1}], queue: {size: 0}}\n"
        "  roomy: {backends: [{address: " +
        b.address("roomy") +
        ", max_connections: 1}]}\n"
        "  fresh: {backends: [" +
        b.address("fresh") +
        "], upstream: {keepalive: 0}}\n"
        "  kept: {backends: [" +
        b.address("kept") +
        "]}\n"
        "routes:\n"
        "  - {match: {path_prefix: /tight/}, pool: tight}\n"
        "  - {match: {path_prefix: /roomy/}, pool: roomy}\n"
        "  - {match: {path_prefix: /fresh/}, pool: fresh}\n"
        "  - {pool: kept}\n";
    RunningLb lb("routing-pool-settings", yaml);
    const uint16_t port = lb.port();
    auto in_flight = [&](const std::string& backend) {
        return lb.metric("lb_backend_upstream_connections_active{backend=\"" + b.address(backend) + "\"}") == 1;
    };
    for (const std::string pool : {"tight", "roomy"}) {
        INFO(pool);
        int slow_status = 0;
        JoinedThreads threads;
        std::thread& slow = threads.add(std::thread([&] {
            slow_status =
                status_of(port, "GET /" + pool + "/?delay_ms=1500 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        }));
        wait_until([&] { return in_flight(pool); }, "the slow request to be in flight");
        const int second = request(port, "GET", "/" + pool + "/", "h").status;
        slow.join();
        CHECK(slow_status == 200);
        // No queue: 503 at once. The top level's queue: it waits for the slot and is served.
        CHECK(second == (pool == "tight" ? 503 : 200));
    }

    // Keep-alive towards the backend: X-Conn-Request counts the requests a backend connection has carried.
    std::string fresh, kept;
    for (int i = 0; i < 3; ++i) {
        fresh += request(port, "GET", "/fresh/", "h").header("X-Conn-Request");
        kept += request(port, "GET", "/", "h").header("X-Conn-Request");
    }
    CHECK(fresh == "111");
    CHECK(kept == "123");
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

// The review of the routing change found that every pool's waiters shared one queue, so a slot freed in pool `a`
// woke the oldest waiter of any pool: `b`'s, which found `b` still full and waited again, while `a`'s waiter was
// left to its queue timeout. Here `b`'s waiter is the older one, and `a`'s must still get `a`'s freed slot.
TEST_CASE("a slot freed in one pool goes to that pool's waiter, not to an older one of another pool", "[routing]") {
    HeldBackend a('a');
    HeldBackend b('b');
    const std::string yaml =
        "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n"
        "queue: {size: 10, timeout: 60s}\n"
        "pools:\n"
        "  a: {backends: [{address: " +
        a.address() +
        ", max_connections: 1}]}\n"
        "  b: {backends: [{address: " +
        b.address() +
        ", max_connections: 1}]}\n"
        "routes:\n"
        "  - {match: {path_prefix: /a/}, pool: a}\n"
        "  - {pool: b}\n";
    RunningLb lb("routing-queue-per-pool", yaml);
    const uint16_t port = lb.port();
    // Each request on a thread of its own; status_of makes no Catch call and gives up after 15 s.
    auto send = [port](const std::string& path, int& status) {
        return std::thread([port, path, &status] {
            status = status_of(port, "GET " + path + " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        });
    };
    auto in_flight = [&](const HeldBackend& backend) {
        return lb.metric("lb_backend_upstream_connections_active{backend=\"" + backend.address() + "\"}") == 1;
    };
    auto queued = [&](double waits) { return lb.metric("lb_queue_waits_total") == waits; };

    int a_first = 0, b_first = 0, b_waiter = 0, a_waiter = 0;
    JoinedThreads threads;
    std::thread& a_first_thread = threads.add(send("/a/1", a_first));
    std::thread& b_first_thread = threads.add(send("/b/1", b_first));
    wait_until([&] { return in_flight(a) && in_flight(b); }, "each pool's one slot to be taken");
    std::thread& b_waiter_thread = threads.add(send("/b/2", b_waiter));
    wait_until([&] { return queued(1); }, "b's request to wait");
    std::thread& a_waiter_thread = threads.add(send("/a/2", a_waiter));
    wait_until([&] { return queued(2); }, "a's request to wait, behind b's");

    a.release();
    a_first_thread.join();
    a_waiter_thread.join();  // while b's slot is still taken
    CHECK(a_first == 200);
    CHECK(a_waiter == 200);
    CHECK(lb.metric("lb_errors_total{kind=\"no_backend\"}") == 0);

    b.release();
    b_first_thread.join();
    b_waiter_thread.join();
    CHECK(b_first == 200);
    CHECK(b_waiter == 200);
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}
