#include "test/support/proxy_fixture.h"

#include <catch2/catch.hpp>

namespace lb::test {

core::Config make_config(const std::vector<uint16_t>& backend_ports, unsigned workers) {
    core::Config config;
    config.source = "<test>";
    config.listen.tcp = {"127.0.0.1", 0};
    config.workers = workers;
    config.admin.listen = {"127.0.0.1", 0};
    // Health checks would open connections of their own to the backends; tests that want them turn them on.
    config.health.enabled = false;
    config.health.passive.consecutive_failures = 0;
    for (uint16_t port : backend_ports) {
        core::BackendConfig b;
        b.endpoint = {"127.0.0.1", port};
        b.address = "127.0.0.1:" + std::to_string(port);
        config.backends.push_back(b);
    }
    return config;
}

ProxyFixture::ProxyFixture(size_t backends, const std::function<void(core::Config&)>& tweak, unsigned workers) {
    std::vector<uint16_t> ports;
    for (size_t i = 0; i < backends; ++i) {
        demo::DemoBackendOptions options;
        options.id = "b" + std::to_string(i + 1);
        backends_.push_back(std::make_unique<demo::DemoBackend>(options));
        backends_.back()->start();
        ports.push_back(backends_.back()->port());
    }
    core::Config config = make_config(ports, workers);
    if (tweak) tweak(config);
    server_ = std::make_unique<core::Server>(config);
    server_->start();
}

void ProxyFixture::restart_backend(size_t i) {
    demo::DemoBackendOptions options = backends_[i]->options();
    options.port = backends_[i]->port();
    backends_[i]->stop();
    backends_[i] = std::make_unique<demo::DemoBackend>(options);
    backends_[i]->start();
}

void ProxyFixture::stop() {
    if (!server_) return;
    server_->shutdown();
    CHECK(server_->closed_cleanly());
    server_.reset();
}

ProxyFixture::~ProxyFixture() {
    stop();
    for (auto& b : backends_) b->stop();
}

}  // namespace lb::test
