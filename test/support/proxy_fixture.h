// An in-process balancer in front of in-process demo backends, all on ephemeral loopback ports: the proxy code
// runs inside the test binary, so the sanitizers watch it.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/config/config.h"
#include "core/runtime/server.h"
#include "demo/demo_backend.h"

namespace lb::test {

// A config with the given backend ports on 127.0.0.1, listening on an ephemeral port.
core::Config make_config(const std::vector<uint16_t>& backend_ports, unsigned workers = 1);

// Marks `backend` healthy or not on every shard of `server`, through the path a health transition takes
// (Shard::apply_health), in effect on return. For tests that run without health checks.
void set_backend_health(core::Server& server, size_t backend, bool healthy);
// Whether each shard's pool currently counts `backend` as healthy, in shard order: how a test sees a health
// transition arrive on every shard.
std::vector<bool> shard_views_of_backend(core::Server& server, size_t backend);

// How many responses each shard has received from each backend (from the shard's own metrics block), indexed
// [shard][backend]: how a test sees where each shard sent its requests.
std::vector<std::vector<uint64_t>> responses_by_shard(core::Server& server);

class ProxyFixture {
  public:
    // What may change backend `index`'s options before it starts (TLS files...).
    using BackendTweak = std::function<void(size_t index, demo::DemoBackendOptions&)>;

    // Starts `backends` demo backends (ids b1, b2, ...) and a balancer in front of them; `tweak` may change the
    // config first (timeouts, limits, extra dead backends...), `backend_tweak` each backend's options.
    explicit ProxyFixture(size_t backends, const std::function<void(core::Config&)>& tweak = {}, unsigned workers = 1,
                          const BackendTweak& backend_tweak = {});
    ~ProxyFixture();

    uint16_t port() const { return server_->port(); }
    core::Server& server() { return *server_; }
    demo::DemoBackend& backend(size_t i) { return *backends_[i]; }
    // Stops backend `i` and starts a fresh one (same id) on the same port: a backend that died and came back.
    void restart_backend(size_t i);
    // Stops the balancer (graceful) and checks that every loop closed with no handle open.
    void stop();

  private:
    std::vector<std::unique_ptr<demo::DemoBackend>> backends_;
    std::unique_ptr<core::Server> server_;
};

}  // namespace lb::test
