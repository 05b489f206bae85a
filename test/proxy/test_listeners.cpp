// Several listeners: every worker accepts on each of them, and a reload takes each one over by its address.
#include <catch2/catch.hpp>

#include "core/runtime/server.h"
#include "test/support/proxy_fixture.h"
#include "test/support/test_support.h"

using namespace lb::test;

TEST_CASE("every listener serves, in every worker", "[listeners]") {
    ProxyFixture proxy(
        1,
        [](lb::core::Config& c) {
            c.listeners = {lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}},
                           lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}}};
        },
        2);
    uint16_t first = proxy.server().port(0);
    uint16_t second = proxy.server().port(1);
    CHECK(first != 0);
    CHECK(second != 0);
    CHECK(first != second);
    for (int i = 0; i < 10; ++i) {
        CHECK(http_get(first, "/").status == 200);
        CHECK(http_get(second, "/").status == 200);
    }
}

TEST_CASE("a reload keeps a listener whose address stays and drops one that goes", "[listeners][reload]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.listeners = {lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}},
                       lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}}};
    });
    uint16_t kept = proxy.server().port(0);
    uint16_t dropped = proxy.server().port(1);
    lb::core::Config next = proxy.server().config();
    next.listeners = {lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", kept}, {}}}};
    lb::core::Server successor(next);
    successor.start(&proxy.server());
    proxy.server().retire();
    CHECK(successor.port() == kept);
    CHECK(http_get(kept, "/").status == 200);
    CHECK(status_of(dropped, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == -1);
    proxy.server().wait();
    successor.shutdown();
    CHECK(successor.closed_cleanly());
}
