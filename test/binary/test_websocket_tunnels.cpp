// Many WebSocket tunnels through the lb binary (a process of its own, so its memory is its own): 1,000 open at once
// stay within what each tunnel is stated to hold, and a drain (SIGTERM or reload) leaves open tunnels to their drain
// timeout. The drain timeout is a few seconds, far more than the one exchange it must outlast.
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <memory>
#include <vector>

#include "core/config/config.h"
#include "core/proxy/proxy_session.h"
#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/test_support.h"
#include "test/support/websocket_client.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

#ifdef LB_SANITIZER_BUILD
constexpr bool kCheckRss = false;  // shadow memory and quarantine come on top of lb's own
#else
constexpr bool kCheckRss = true;
#endif

std::string config(uint16_t backend, const std::string& extra = "") {
    return "listen: 127.0.0.1:0\nworkers: 1\nadmin:\n  listen: 127.0.0.1:0\nhealth:\n  enabled: false\n"
           "backends:\n  - 127.0.0.1:" +
           std::to_string(backend) + "\n" + extra;
}

// Enough descriptors for `needed`, or false when the hard limit does not allow it.
bool raise_open_files(rlim_t needed) {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur >= needed) return true;
    if (limit.rlim_max < needed) return false;
    limit.rlim_cur = needed;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

}  // namespace

TEST_CASE("1,000 WebSocket tunnels open at once stay within their stated memory in lb", "[websocket][memory]") {
    constexpr size_t kTunnels = 1000;
    // The test holds the clients and the in-process backend's connections; lb (a child) inherits the limit.
    if (!raise_open_files(3 * kTunnels + 500)) {
        WARN("not run: the hard limit on open files is below what 1,000 tunnels need");
        return;
    }
    set_watchdog_limit(std::chrono::seconds{240});
    lb::demo::DemoBackend backend({});
    backend.start();
    RunningLb lb("websocket-1000", config(backend.port()));
    const uint64_t before = lb.process().rss_bytes();

    std::vector<std::unique_ptr<WebSocketClient>> tunnels;
    tunnels.reserve(kTunnels);
    const std::string message(1000, 'm');
    for (size_t i = 0; i < kTunnels; ++i) {
        tunnels.push_back(std::make_unique<WebSocketClient>(lb.port()));
        REQUIRE(tunnels.back()->status() == 101);
        // Each tunnel carries a message both ways, so every one has had buffers in use at least once.
        tunnels.back()->send_frame(WebSocketClient::kText, message);
        REQUIRE(tunnels.back()->read_frame().payload == message);
    }
    CHECK(lb.metric("lb_tunnels_open") == kTunnels);
    const uint64_t during = lb.process().rss_bytes();

    // What a tunnel holds: while idle, no buffer at all (read buffers and write queues are given back once their
    // bytes are written), so only its fixed state (the session, the exchange with its request head, the upstream
    // connection, two transports: about 8 KiB) stays. Bounded generously at 32 KiB each, allocator slack
    // included; while bytes flow, ProxySession::buffer_memory_bound(limits) comes on top per busy tunnel, and
    // lb_buffer_bytes (which counts exactly those buffers) is 0 once all are idle.
    const uint64_t per_tunnel = 32 * kKiB;
    const uint64_t growth = during > before ? during - before : 0;
    WARN("1,000 tunnels: lb RSS " << before / kKiB << " KiB -> " << during / kKiB << " KiB (" << growth / kTunnels
                                  << " bytes per tunnel)");
    if (kCheckRss) CHECK(growth < kTunnels * per_tunnel + 8 * kMiB);
    wait_until([&] { return lb.metric("lb_buffer_bytes") == 0; }, "every tunnel's buffers are given back");

    // They all still work.
    for (size_t i = 0; i < kTunnels; i += 97) {
        tunnels[i]->send_frame(WebSocketClient::kPing, "still there");
        CHECK(tunnels[i]->read_frame().opcode == WebSocketClient::kPong);
    }
    tunnels.clear();
    wait_until([&] { return lb.metric("lb_tunnels_open") == 0; }, "every tunnel is counted closed");
    CHECK(lb.metric("lb_tunnels_total") == kTunnels);
}

TEST_CASE("on SIGTERM an open tunnel is left to the drain timeout, then closed", "[websocket][drain]") {
    lb::demo::DemoBackend backend({});
    backend.start();
    RunningLb lb("websocket-drain", config(backend.port(), "timeouts:\n  drain: 4s\n"));
    WebSocketClient ws(lb.port());
    REQUIRE(ws.status() == 101);
    lb.process().signal(SIGTERM);
    lb.wait_for_log("draining");
    // Still relaying after the drain began.
    ws.send_frame(WebSocketClient::kText, "during the drain");
    CHECK(ws.read_frame().payload == "during the drain");
    // Then the drain deadline ends it, and lb exits.
    CHECK(ws.wait_closed());
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("on reload an open tunnel stays with the old configuration until its drain timeout", "[websocket][drain]") {
    lb::demo::DemoBackend backend({});
    backend.start();
    const std::string yaml = config(backend.port(), "timeouts:\n  drain: 4s\n");
    RunningLb lb("websocket-reload", yaml);
    WebSocketClient ws(lb.port());
    REQUIRE(ws.status() == 101);
    REQUIRE(lb.reload(yaml + "retries: 1\n"));
    // The old generation drains around the tunnel, which still relays; new connections go to the new one.
    ws.send_frame(WebSocketClient::kText, "after the reload");
    CHECK(ws.read_frame().payload == "after the reload");
    WebSocketClient fresh(lb.port());
    CHECK(fresh.status() == 101);
    CHECK(ws.wait_closed());
    lb.wait_for_log("drained");
    fresh.send_frame(WebSocketClient::kText, "new generation");
    CHECK(fresh.read_frame().payload == "new generation");
}
