// How lb ends a TLS connection: a connection that ended well (a response with Connection: close, an idle one past
// its keep-alive time) gets close_notify before the FIN, so a client reading to the end sees a clean end and keeps
// its session; a response cut short by its backend does not, so the client cannot take it for a whole one.
#include <catch2/catch.hpp>

#include "test/support/proxy_fixture.h"
#include "test/support/test_certs.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

lb::core::ListenerConfig tls_listener() {
    lb::net::TlsListenerConfig tls;
    tls.certificates.push_back({test_certs().localhost_ecdsa.cert, test_certs().localhost_ecdsa.key, ""});
    return lb::core::ListenerConfig{lb::core::ListenAddress{{"127.0.0.1", 0}, {}}, tls};
}

// openssl s_client sends `request` and reads until lb ends the connection; what it prints about the end.
std::string read_to_end(uint16_t port, const std::string& request) {
    return run_command("printf '" + request + "' | timeout 20 openssl s_client -ign_eof -connect 127.0.0.1:" +
                       std::to_string(port) + " -servername localhost 2>&1")
        .output;
}

// OpenSSL 3 reports an end without close_notify as this error.
bool ended_without_close_notify(const std::string& output) {
    return output.find("unexpected eof while reading") != std::string::npos;
}

}  // namespace

TEST_CASE("a TLS response with Connection: close ends with close_notify", "[tls]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.listeners.push_back(tls_listener()); });
    std::string output =
        read_to_end(proxy.server().port(1), "GET / HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n");
    INFO(output);
    REQUIRE(output.find("HTTP/1.1 200") != std::string::npos);
    CHECK_FALSE(ended_without_close_notify(output));
}

TEST_CASE("an HTTP/1.0 response, delimited by the close, ends with close_notify", "[tls]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) { c.listeners.push_back(tls_listener()); });
    std::string output = read_to_end(proxy.server().port(1), "GET /?chunked=1&bytes=3000 HTTP/1.0\\r\\n\\r\\n");
    INFO(output);
    REQUIRE(output.find("HTTP/1.1 200") != std::string::npos);
    CHECK_FALSE(ended_without_close_notify(output));
}

TEST_CASE("an idle TLS connection past its keep-alive time ends with close_notify", "[tls]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.listeners.push_back(tls_listener());
        c.timeouts.client_keepalive = 300ms;  // the test's own setting: how long the connection idles
    });
    std::string output = read_to_end(proxy.server().port(1), "GET / HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n");
    INFO(output);
    REQUIRE(output.find("HTTP/1.1 200") != std::string::npos);
    CHECK_FALSE(ended_without_close_notify(output));
}

TEST_CASE("a response its backend cut short ends without close_notify, so it cannot pass for a whole one", "[tls]") {
    ProxyFixture proxy(1, [](lb::core::Config& c) {
        c.listeners.push_back(tls_listener());
        c.retries = 0;
    });
    std::string output =
        read_to_end(proxy.server().port(1), "GET /?mid_close=1&bytes=100000 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n");
    INFO(output);
    REQUIRE(output.find("HTTP/1.1 200") != std::string::npos);
    CHECK(ended_without_close_notify(output));
}
