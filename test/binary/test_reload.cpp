// SIGHUP reloads lb.yaml in a running lb: a broken file is reported with file:line:column and changes nothing;
// a good one sends new connections to the new configuration while requests in flight finish under the old one,
// and no connection is refused or reset across the switch (the new generation takes over the listening sockets).
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "demo/demo_backend.h"
#include "test/support/metrics_text.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

std::string config_with_backend(uint16_t backend_port) {
    return "listen: 127.0.0.1:0\nworkers: 2\nbackends:\n  - 127.0.0.1:" + std::to_string(backend_port) +
           "\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n";
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}

// The admin port lb logs at start ("...; admin on 127.0.0.1:PORT").
uint16_t logged_admin_port(const std::string& log) {
    const std::string marker = "; admin on ";
    size_t at = log.find(marker);
    REQUIRE(at != std::string::npos);
    std::string address = log.substr(at + marker.size(), log.find('\n', at) - at - marker.size());
    return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// An lb process on a config file it can be told to reload.
struct ReloadableLb {
    explicit ReloadableLb(const std::string& config)
        : config_path(write_temp_file("reload.yaml", config)),
          log_path(write_temp_file("reload.log", "")),
          process({LB_BINARY, "-c", config_path}, log_path),
          port(wait_for_lb_port(log_path)) {}

    // Rewrites the file, sends SIGHUP and waits until lb has logged the outcome of this reload.
    void reload(const std::string& config) {
        size_t outcomes_before = outcomes();
        write_temp_file("reload.yaml", config);
        process.signal(SIGHUP);
        // Generous: a reload that resolves a name waits for the resolver, which may be slow to say no.
        wait_until([&] { return outcomes() > outcomes_before; }, "lb logs the reload's outcome", 40s);
    }
    size_t outcomes() const {
        std::string log = read_file(log_path);
        return count_of(log, "reloaded ") + count_of(log, "reload failed");
    }

    std::string config_path;
    std::string log_path;
    Process process;
    uint16_t port;
};

}  // namespace

TEST_CASE("a reload with a broken file names file, line and column, and keeps the running configuration", "[reload]") {
    set_watchdog_limit(110s);  // a resolver may take its time to fail
    StartedBackend b1("b1");
    ReloadableLb lb(config_with_backend(b1.port()));
    Client kept(lb.port);  // a keep-alive connection open across the failed reload
    kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(kept.read_response().body == "b1\n");

    lb.reload("listen: 127.0.0.1:0\nbackends:\n  - 127.0.0.1:1\nretires: 3\n");
    std::string log = read_file(lb.log_path);
    CHECK(log.find("reload failed, keeping the running configuration: " + lb.config_path +
                   ":4:1: unknown key 'retires'") != std::string::npos);
    CHECK(http_get(lb.port, "/").body == "b1\n");
    kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(kept.read_response().body == "b1\n");

    // A file that parses but cannot start is refused the same way: its listen address, or its admin address,
    // is taken (the admin port is never shared, so two balancers cannot split the scrapes).
    StartedBackend squatter("squatter");
    const std::string squatted = "127.0.0.1:" + std::to_string(squatter.port());
    const std::string backends = "backends:\n  - 127.0.0.1:" + std::to_string(b1.port()) + "\n";
    lb.reload("listen: " + squatted + "\n" + backends + "admin:\n  enabled: false\n");
    CHECK(
        read_file(lb.log_path).find("reload failed, keeping the running configuration: cannot listen on " + squatted) !=
        std::string::npos);
    lb.reload("listen: 127.0.0.1:0\n" + backends + "admin:\n  listen: " + squatted + "\n");
    CHECK(read_file(lb.log_path)
              .find("reload failed, keeping the running configuration: admin.listen: cannot listen on " + squatted) !=
          std::string::npos);
    CHECK(http_get(lb.port, "/").body == "b1\n");

    // A backend name that does not resolve (.invalid never does, RFC 6761).
    lb.reload("listen: 127.0.0.1:0\nbackends:\n  - 127.0.0.1:" + std::to_string(b1.port()) +
              "\n  - no-such-host.invalid:80\nadmin:\n  enabled: false\n");
    CHECK(read_file(lb.log_path)
              .find("reload failed, keeping the running configuration: cannot resolve 'no-such-host.invalid'") !=
          std::string::npos);
    CHECK(http_get(lb.port, "/").body == "b1\n");
    kept.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(kept.read_response().body == "b1\n");

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}

TEST_CASE("a reload sends new connections to the new backends while a request in flight finishes on the old",
          "[reload]") {
    StartedBackend b1("b1");
    StartedBackend b2("b2");
    ReloadableLb lb(config_with_backend(b1.port()));
    const uint16_t admin_port = logged_admin_port(read_file(lb.log_path));

    // A request whose body is still arriving when the reload happens: the old generation has it in flight to
    // b1, so the old generation finishes it, and closes the connection since it is draining.
    Client in_flight(lb.port);
    in_flight.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab");
    wait_until([&] { return b1.connections_accepted() > 0; }, "the request reaches b1");
    lb.reload(config_with_backend(b2.port()));
    REQUIRE(read_file(lb.log_path)
                .find("reloaded " + lb.config_path +
                      ": generation 2 listening on 127.0.0.1:" + std::to_string(lb.port)) != std::string::npos);
    CHECK(http_get(lb.port, "/").body == "b2\n");

    in_flight.send("cd");
    Response finished = in_flight.read_response();
    CHECK(finished.status == 200);
    CHECK(finished.body == "b1\n");
    CHECK(finished.header("Connection") == "close");
    CHECK(in_flight.wait_closed());

    // The admin port is taken over too, and now reports the new backend.
    std::string metrics = http_get(admin_port, "/metrics").body;
    CHECK(metrics.find("127.0.0.1:" + std::to_string(b2.port())) != std::string::npos);
    CHECK(metrics.find("127.0.0.1:" + std::to_string(b1.port())) == std::string::npos);
    wait_until([&] { return read_file(lb.log_path).find("generation 1 drained") != std::string::npos; },
               "the old generation drains");

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}

TEST_CASE("a reload can add workers and move the listener", "[reload]") {
    StartedBackend b1("b1");
    ReloadableLb lb(config_with_backend(b1.port()));

    std::string more_workers = config_with_backend(b1.port());
    more_workers.replace(more_workers.find("workers: 2"), 10, "workers: 3");
    lb.reload(more_workers);
    REQUIRE(read_file(lb.log_path)
                .find("generation 2 listening on 127.0.0.1:" + std::to_string(lb.port) + " with 3 workers") !=
            std::string::npos);
    for (int i = 0; i < 10; ++i) CHECK(http_get(lb.port, "/").body == "b1\n");

    // A different address: the new generation binds sockets of its own (on a port the kernel picks, so that no
    // other test can take it first), and the old port is given up.
    std::string moved = more_workers;
    moved.replace(moved.find("listen: 127.0.0.1:0"), 19, "listen: 127.0.0.2:0");
    lb.reload(moved);
    const std::string marker = "generation 3 listening on 127.0.0.2:";
    std::string log = read_file(lb.log_path);
    REQUIRE(log.find(marker) != std::string::npos);
    const auto new_port = static_cast<uint16_t>(std::stoi(log.substr(log.find(marker) + marker.size())));
    CHECK(run_command("curl -s --max-time 10 http://127.0.0.2:" + std::to_string(new_port) + "/").output == "b1\n");
    CHECK(status_of(lb.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == -1);  // refused

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}

TEST_CASE("a reload keeps what health checks knew, and a backend it adds waits for its first passed check",
          "[reload][health]") {
    StartedBackend b1("b1");
    StartedBackend b3("b3");
    StartedBackend b4("b4");
    const std::string up = "127.0.0.1:" + std::to_string(b1.port());
    RefusingPort refusing;
    const std::string dead = "127.0.0.1:" + std::to_string(refusing.port());
    auto config = [&](const std::string& interval, const std::string& more_backends = "") {
        return "listen: 127.0.0.1:0\nworkers: 2\nbackends:\n  - " + up + "\n  - " + dead + "\n" + more_backends +
               "admin:\n  listen: 127.0.0.1:0\nhealth:\n  interval: " + interval +
               "\n  timeout: 500ms\n  rise: 2\n  fall: 2\n";
    };
    auto is_up = [&](const std::string& metrics, const std::string& backend) {
        return metrics.find("lb_backend_up{backend=\"" + backend + "\"} 1") != std::string::npos;
    };
    ReloadableLb lb(config("100ms"));
    const uint16_t admin_port = logged_admin_port(read_file(lb.log_path));
    wait_until([&] { return read_file(lb.log_path).find("backend " + dead + " is down") != std::string::npos; },
               "the dead backend is found down");

    // With a 60 s interval and fall 2, the new generation's own checks could not find it down for a minute: the
    // state it starts with is the one carried over.
    lb.reload(config("60s"));
    std::string metrics = http_get(admin_port, "/metrics").body;
    CHECK(metrics.find("lb_backend_up{backend=\"" + dead + "\"} 0") != std::string::npos);
    CHECK(metrics.find("lb_backend_up{backend=\"" + up + "\"} 1") != std::string::npos);
    for (int i = 0; i < 10; ++i) CHECK(http_get(lb.port, "/").body == "b1\n");

    // Added by a reload: b3 answers traffic but fails its check, b4 passes. Both start out of rotation; b4 joins
    // on its first check, run at once; b3 never does (with fall 2 and a 60 s interval it would otherwise take
    // traffic for a minute).
    const std::string failing = "127.0.0.1:" + std::to_string(b3.port());
    const std::string passing = "127.0.0.1:" + std::to_string(b4.port());
    lb.reload(
        config("60s", "  - address: " + failing + "\n    health:\n      path: /?status=503\n  - " + passing + "\n"));
    wait_until([&] { return is_up(http_get(admin_port, "/metrics").body, passing); }, "b4 passes its first check");
    std::map<std::string, int> answered;
    for (int i = 0; i < 20; ++i) ++answered[http_get(lb.port, "/").body];
    CHECK(answered["b3\n"] == 0);
    CHECK(answered["b1\n"] + answered["b4\n"] == 20);
    CHECK_FALSE(is_up(http_get(admin_port, "/metrics").body, failing));

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}

TEST_CASE("a reload with no known backend up starts the added ones in health.initial_state", "[reload][health]") {
    RefusingPort refusing;
    StartedBackend b3("b3");
    const std::string dead = "127.0.0.1:" + std::to_string(refusing.port());
    const std::string added = "127.0.0.1:" + std::to_string(b3.port());
    auto config = [&](const std::string& interval, const std::string& more_backends) {
        return "listen: 127.0.0.1:0\nworkers: 2\nbackends:\n  - " + dead + "\n" + more_backends +
               "admin:\n  listen: 127.0.0.1:0\nhealth:\n  interval: " + interval +
               "\n  timeout: 500ms\n  rise: 2\n  fall: 2\n";
    };
    ReloadableLb lb(config("100ms", ""));
    const uint16_t admin_port = logged_admin_port(read_file(lb.log_path));
    wait_until([&] { return read_file(lb.log_path).find("backend " + dead + " is down") != std::string::npos; },
               "the only backend is found down");
    // The monitor logs the transition before every worker has applied it: until then a request may still try
    // the refusing port and get 502.
    wait_until([&] { return status_of(lb.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 503; },
               "lb answers 503 with its only backend down");
    // Added while nothing known is up: b3 starts healthy (the default initial_state), although its checks fail
    // (fall 2 and a 60 s interval: its first failed check, run at once, cannot take it down) and would keep it
    // out of rotation had a known backend been up.
    lb.reload(config("60s", "  - address: " + added + "\n    health:\n      path: /?status=503\n"));
    std::string metrics = http_get(admin_port, "/metrics").body;
    CHECK(metrics.find("lb_backend_up{backend=\"" + added + "\"} 1") != std::string::npos);
    CHECK(metrics.find("lb_backend_up{backend=\"" + dead + "\"} 0") != std::string::npos);
    for (int i = 0; i < 10; ++i) CHECK(http_get(lb.port, "/").body == "b3\n");

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}

TEST_CASE("a reload to fewer workers keeps serving, and counters start again from zero", "[reload]") {
    StartedBackend b1("b1");
    std::string three_workers = config_with_backend(b1.port());
    three_workers.replace(three_workers.find("workers: 2"), 10, "workers: 3");
    ReloadableLb lb(three_workers);
    const uint16_t admin_port = logged_admin_port(read_file(lb.log_path));
    const std::string served = "lb_backend_requests_total{backend=\"127.0.0.1:" + std::to_string(b1.port()) +
                               "\",method=\"GET\",code=\"200\"}";
    for (int i = 0; i < 5; ++i) REQUIRE(http_get(lb.port, "/").status == 200);
    CHECK(scrape_metric(admin_port, served) == 5);
    CHECK(scrape_metric(admin_port, "lb_client_connections_accepted_total") == 5);

    std::string one_worker = three_workers;
    one_worker.replace(one_worker.find("workers: 3"), 10, "workers: 1");
    lb.reload(one_worker);
    REQUIRE(read_file(lb.log_path)
                .find("generation 2 listening on 127.0.0.1:" + std::to_string(lb.port) + " with 1 workers") !=
            std::string::npos);
    wait_until([&] { return read_file(lb.log_path).find("generation 1 drained") != std::string::npos; },
               "the old generation drains");
    // The sockets of the two workers given up are closed: every new connection goes to the one left.
    for (int i = 0; i < 30; ++i) CHECK(http_get(lb.port, "/").body == "b1\n");
    // The new generation counts from zero (the admin port is taken over too).
    CHECK(scrape_metric(admin_port, served) == 30);
    CHECK(scrape_metric(admin_port, "lb_client_connections_accepted_total") == 30);
    CHECK(scrape_metric(admin_port, "lb_shards") == 1);

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}

TEST_CASE("no connection is refused or reset while lb reloads under traffic", "[reload]") {
    StartedBackend b1("b1");
    StartedBackend b2("b2");
    ReloadableLb lb(config_with_backend(b1.port()));

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> clients;
    // Joined on every way out, a failed REQUIRE included: a joinable thread's destructor ends the process.
    struct JoinAll {
        std::atomic<bool>& stop;
        std::vector<std::thread>& threads;
        ~JoinAll() {
            stop = true;
            for (auto& t : threads) {
                if (t.joinable()) t.join();
            }
        }
    } join_all{stop, clients};
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&] {
            while (!stop.load()) {
                // A new connection each time: those are what a listener swap could drop.
                int status = status_of(lb.port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                (status == 200 ? ok : failed).fetch_add(1);
            }
        });
    }
    for (int i = 0; i < 10; ++i) {
        lb.reload(config_with_backend(i % 2 == 0 ? b2.port() : b1.port()));
    }
    stop = true;
    for (auto& c : clients) c.join();
    INFO("requests: " << ok.load() << " ok, " << failed.load() << " failed");
    CHECK(count_of(read_file(lb.log_path), "reloaded ") == 10);
    CHECK(ok.load() > 0);
    CHECK(failed.load() == 0);

    lb.process.signal(SIGTERM);
    CHECK(lb.process.wait() == 0);
}
