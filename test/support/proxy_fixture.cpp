#include "test/support/proxy_fixture.h"

#include <atomic>
#include <catch2/catch.hpp>

#include "core/shard/shard.h"

namespace lb::test {

core::Config make_config(const std::vector<uint16_t>& backend_ports, unsigned workers) {
    core::Config config;
    config.source = "<test>";
    config.listeners = {core::ListenerConfig{core::ListenAddress{{"127.0.0.1", 0}, {}}}};
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

void set_backend_health(core::Server& server, size_t backend, bool healthy) {
    // Newer than any transition applied before: shards drop older generations.
    static std::atomic<uint64_t> generation{0};
    uint64_t g = ++generation;
    server.run_on_every_shard(
        [=](core::Shard& shard) { shard.apply_health(static_cast<pool::BackendId>(backend), healthy, g); });
}

std::vector<bool> shard_views_of_backend(core::Server& server, size_t backend) {
    // One byte per shard, not std::vector<bool>: the shards write their own entries at the same time.
    std::vector<uint8_t> views(server.shard_count(), 0);
    server.run_on_every_shard([&](core::Shard& shard) {
        views[shard.index()] = shard.pools().state(static_cast<pool::BackendId>(backend)).healthy ? 1 : 0;
    });
    return {views.begin(), views.end()};
}

std::vector<std::vector<uint64_t>> responses_by_shard(core::Server& server) {
    // Each shard fills its own row, on its own thread.
    std::vector<std::vector<uint64_t>> responses(server.shard_count());
    server.run_on_every_shard([&](core::Shard& shard) {
        const metrics::ShardMetrics& block = shard.metrics();
        std::vector<uint64_t>& row = responses[shard.index()];
        for (size_t b = 0; b < block.backend_count(); ++b) {
            const metrics::Histogram& durations =
                block.backend(static_cast<metrics::BackendIndex>(b)).response_duration_seconds;
            uint64_t count = 0;
            for (size_t bucket = 0; bucket < metrics::HistogramBuckets::kBuckets; ++bucket)
                count += durations.bucket(bucket);
            row.push_back(count);
        }
    });
    return responses;
}

ProxyFixture::ProxyFixture(size_t backends, const std::function<void(core::Config&)>& tweak, unsigned workers,
                           const BackendTweak& backend_tweak) {
    std::vector<uint16_t> ports;
    for (size_t i = 0; i < backends; ++i) {
        demo::DemoBackendOptions options;
        options.id = "b" + std::to_string(i + 1);
        if (backend_tweak) backend_tweak(i, options);
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
