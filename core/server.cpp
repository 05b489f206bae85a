#include "core/server.h"

#include <signal.h>
#include <condition_variable>
#include <mutex>
#include <unistd.h>

#include "core/listener.h"
#include "core/log.h"
#include "core/shard.h"

namespace lb::core {

Server::Server(Config config) : context_(std::make_unique<ServerContext>()) {
    context_->config = std::move(config);
    if (context_->config.workers == 0) {
        context_->config.workers = std::max(1u, std::thread::hardware_concurrency());
    }
}

Server::~Server() {
    if (!threads_.empty()) shutdown();
}

void Server::start() {
    // A client that goes away mid-write must cost an EPIPE, not the process.
    ::signal(SIGPIPE, SIG_IGN);
    const Config& config = context_->config;
    auto backends = std::make_shared<std::vector<pool::Backend>>();
    for (const auto& b : config.backends) {
        backends->push_back({b.address, b.weight});
        context_->backend_addresses.push_back(resolve(b.endpoint));
    }
    context_->backends = std::move(backends);

    SocketAddress listen_address = resolve(config.listen);
    std::vector<int> fds;
    try {
        for (unsigned i = 0; i < config.workers; ++i) {
            fds.push_back(open_reuseport_listener(listen_address, 4096));
            // Port 0: the first bind picks the port, and every other shard joins that one.
            if (i == 0) listen_address = bound_address(fds[0]);
        }
        for (unsigned i = 0; i < config.workers; ++i) {
            shards_.push_back(std::make_unique<Shard>(i, *context_, fds[i]));
            fds[i] = -1;
        }
    } catch (...) {
        for (int fd : fds) {
            if (fd >= 0) ::close(fd);
        }
        shards_.clear();
        throw;
    }
    port_ = listen_address.port();
    for (auto& shard : shards_) threads_.emplace_back([s = shard.get()] { s->run(); });
}

void Server::request_shutdown() {
    if (shutdown_requested_.exchange(true)) return;  // a shard's inbox closes once it has drained
    for (auto& shard : shards_) shard->request_drain();
}

void Server::wait() {
    for (auto& t : threads_) t.join();
    threads_.clear();
}

void Server::shutdown() {
    request_shutdown();
    wait();
}

uint64_t Server::connections_accepted(size_t shard) const { return shards_[shard]->connections_accepted(); }

uint64_t Server::idle_upstream_connections() const {
    uint64_t total = 0;
    for (const auto& shard : shards_) total += shard->idle_upstream_connections();
    return total;
}

bool Server::closed_cleanly() const {
    for (const auto& shard : shards_) {
        if (!shard->closed_cleanly()) return false;
    }
    return true;
}

void Server::run_on_every_shard(const std::function<void(Shard&)>& task) {
    std::mutex mutex;
    std::condition_variable done;
    size_t remaining = shards_.size();
    auto finish_one = [&] {
        std::lock_guard lock(mutex);
        if (--remaining == 0) done.notify_one();
    };
    for (auto& shard : shards_) {
        bool posted = shard->post([&](Shard& s) {
            task(s);
            finish_one();
        });
        if (!posted) finish_one();  // a stopped shard has nothing to update
    }
    std::unique_lock lock(mutex);
    done.wait(lock, [&] { return remaining == 0; });
}

void Server::set_backend_health(size_t backend, bool healthy) {
    run_on_every_shard([=](Shard& shard) { shard.pool().set_healthy(static_cast<pool::BackendId>(backend), healthy); });
}

}  // namespace lb::core
