#include "core/runtime/server.h"

#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "base/log.h"
#include "core/admin/admin_server.h"
#include "core/admin/routing_metrics.h"
#include "core/admin/status_page.h"
#include "core/admin/tls_metrics.h"
#include "core/proxy/outcome.h"
#include "core/runtime/process_limits.h"
#include "core/shard/listener.h"
#include "core/shard/shard.h"
#include "health/carry_over.h"
#include "metrics/exposition.h"
#include "metrics/process_stats.h"
#include "metrics/snapshot.h"

namespace lb::core {

Server::Server(Config config) : context_(std::make_unique<ServerContext>()) {
    context_->config = std::move(config);
    Config& c = context_->config;
    c.add_default_pool_if_none();
    if (c.workers == 0) c.workers = std::max(1u, std::thread::hardware_concurrency());
    // The process-wide limits, split evenly: a worker never takes more than its share, so none takes another's.
    uint64_t connections = c.limits.client_connections != 0 ? c.limits.client_connections
                                                            : auto_client_connections(open_file_limit().soft);
    context_->client_connections_per_shard = static_cast<uint32_t>(std::max<uint64_t>(1, connections / c.workers));
    context_->buffer_memory_per_shard = std::max<uint64_t>(1, c.limits.buffer_memory / c.workers);
    context_->backend_logs = std::make_unique<base::SharedLogThrottle[]>(c.backends.size());
    context_->answer_logs = std::make_unique<base::SharedLogThrottle[]>(static_cast<size_t>(Outcome::count));
}

Server::~Server() {
    if (!threads_.empty()) shutdown();
    if (admin_) admin_->stop();
}

void Server::start(const Server* predecessor) {
    // A client that goes away mid-write must cost an EPIPE, not the process.
    ::signal(SIGPIPE, SIG_IGN);
    const Config& config = context_->config;
    // At start and at each reload: what `lb --check` would have said about the file.
    for (const ConfigWarning& warning : config.warnings) base::log(base::LogLevel::warn, "{}", warning.to_string());
    auto backends = std::make_shared<std::vector<pool::Backend>>();
    for (const auto& b : config.backends) {
        backends->push_back({b.address, b.weight, b.max_connections, b.backup});
        context_->backend_addresses.push_back(resolve(b.endpoint));
    }
    context_->backends = std::move(backends);
    std::vector<route::RouteMatch> matches;
    for (const RouteConfig& route : config.routes) matches.push_back(route.match);
    context_->routes = route::RouteTable(std::move(matches));
    for (size_t i = 0; i < config.backends.size(); ++i) backend_names_.push_back(config.backends[i].address);
    // Passive ejection works with active checks off too; only with both off is there nothing to run.
    context_->initially_healthy.assign(config.backends.size(), true);
    carry_over_admin(predecessor);
    start_access_log(predecessor);
    if (config.health.enabled || config.health.passive.consecutive_failures > 0) start_health_monitor(predecessor);
    start_time_seconds_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    process_started_ = predecessor ? predecessor->process_started_ : std::chrono::steady_clock::now();
    generation_ = predecessor ? predecessor->generation_ + 1 : 1;
    if (config.admin.enabled) {
        int admin_fd = -1;
        try {
            if (predecessor && predecessor->admin_ && predecessor->config().admin.listen == config.admin.listen) {
                admin_fd = duplicate_listener(predecessor->admin_->listen_fd());
            } else {
                admin_fd = open_listener(resolve(config.admin.listen), 128, PortSharing::exclusive);
            }
        } catch (const std::exception& e) {
            throw std::runtime_error(fmt::format("admin.listen: {}", e.what()));
        }
        admin_ = std::make_unique<AdminServer>(
            admin_fd, AdminServer::Page{std::string(metrics::kContentType), [this] { return render_metrics(); }},
            AdminServer::Page{"application/json", [this] { return render_status(); }},
            AdminServer::Deadlines{static_cast<uint64_t>(config.timeouts.client_header.count()),
                                   static_cast<uint64_t>(config.timeouts.client_send.count())},
            AdminServer::Api{static_cast<BackendControl*>(this), config.admin.token});
    }

    // fds[listener][shard]: every shard gets a socket of its own for every listener.
    std::vector<std::vector<int>> fds;
    auto close_all = [&] {
        for (auto& per_listener : fds) {
            for (int fd : per_listener) {
                if (fd >= 0) ::close(fd);
            }
        }
    };
    try {
        ports_.assign(config.listeners.size(), 0);
        socket_files_.resize(config.listeners.size());
        match_inherited_listeners(predecessor);
        make_ticket_secrets(predecessor);
        for (size_t l = 0; l < config.listeners.size(); ++l) {
            fds.push_back(config.listeners[l].address.is_unix() ? open_unix_listeners(l, predecessor)
                                                                : open_tcp_listeners(l, predecessor));
        }
        for (unsigned i = 0; i < config.workers; ++i) {
            std::vector<int> shard_fds;
            for (auto& per_listener : fds) shard_fds.push_back(std::exchange(per_listener[i], -1));
            shards_.push_back(std::make_unique<Shard>(i, *context_, std::move(shard_fds)));  // the shard's from here
        }
    } catch (...) {
        close_all();
        shards_.clear();
        socket_files_.clear();  // removes the files this generation made
        throw;
    }
    // The shards last: once one runs it serves traffic (on a reload, next to the old generation), so nothing
    // that can fail may come after it.
    if (health_) health_->start();
    if (admin_) admin_->start();
    for (auto& shard : shards_) threads_.emplace_back([s = shard.get()] { s->run(); });
}

void Server::start_access_log(const Server* predecessor) {
    const access_log::AccessLogConfig& log = context_->config.access_log;
    if (!log.enabled) return;
    // One writer per file: a reload that keeps the path shares it, so the draining generation's lines and the
    // new one's go out through the same descriptor. A new path gets its own writer, and the old generation
    // finishes its lines in the old file.
    const auto& inherited = predecessor ? predecessor->context_->access_log : nullptr;
    if (inherited && inherited->path() == log.path) {
        context_->access_log = inherited;
    } else {
        context_->access_log = std::make_shared<access_log::Writer>(log.path);
    }
}

void Server::reopen_access_log() {
    if (context_->access_log) context_->access_log->reopen();
}

void Server::make_ticket_secrets(const Server* predecessor) {
    // Tickets issued before a reload still resume after it: a listener on the same address keeps the random
    // secret of its predecessor (a secret from a file is read again, so that a new file takes effect).
    const Config& config = context_->config;
    context_->ticket_secrets.assign(config.listeners.size(), nullptr);
    for (size_t l = 0; l < config.listeners.size(); ++l) {
        const auto& tls = config.listeners[l].tls;
        if (!tls) continue;
        std::optional<size_t> inherited = inherited_[l];
        if (tls->ticket_key_file.empty() && inherited && predecessor->context_->ticket_secrets[*inherited] &&
            predecessor->context_->ticket_secrets[*inherited]->rotation() == tls->ticket_key_rotation) {
            context_->ticket_secrets[l] = predecessor->context_->ticket_secrets[*inherited];
        } else {
            context_->ticket_secrets[l] = net::TicketSecret::load(tls->ticket_key_file, tls->ticket_key_rotation);
        }
    }
}

void Server::match_inherited_listeners(const Server* predecessor) {
    const auto& ours = context_->config.listeners;
    inherited_.assign(ours.size(), std::nullopt);
    if (!predecessor) return;
    const auto& theirs = predecessor->config().listeners;
    std::vector<bool> taken(theirs.size(), false);
    auto take = [&](size_t l, auto&& same) {
        for (size_t i = 0; i < theirs.size(); ++i) {
            if (taken[i] || !same(theirs[i].address, i)) continue;
            taken[i] = true;
            inherited_[l] = i;
            return;
        }
    };
    auto any_port = [](const ListenAddress& address) { return !address.is_unix() && address.tcp.port == 0; };
    // An address with its port (or a Unix path) names one socket: the one bound there, also where "host:0" took
    // that port from the kernel.
    for (size_t l = 0; l < ours.size(); ++l) {
        if (any_port(ours[l].address)) continue;
        take(l, [&](const ListenAddress& address, size_t i) {
            ListenAddress bound = address;
            if (any_port(bound)) bound.tcp.port = predecessor->ports_[i];
            return bound == ours[l].address;
        });
    }
    // Several "host:0" listeners (a plain and a TLS one, say) each keep their own socket: the first is the first
    // left, the second the second, and so on, never one socket for two.
    for (size_t l = 0; l < ours.size(); ++l) {
        if (any_port(ours[l].address))
            take(l, [&](const ListenAddress& address, size_t) { return address == ours[l].address; });
    }
}

std::vector<int> Server::open_tcp_listeners(size_t l, const Server* predecessor) {
    // A successor on the same address takes over its predecessor's sockets, one per shard, so the connections
    // waiting in their accept queues are served, not reset. Extra shards join with sockets of their own.
    const Config& config = context_->config;
    std::optional<size_t> inherited = inherited_[l];
    SocketAddress listen_address = inherited ? bound_address(predecessor->shards_.front()->listen_fd(*inherited))
                                             : resolve(config.listeners[l].address.tcp);
    std::vector<int> fds;
    try {
        for (unsigned i = 0; i < config.workers; ++i) {
            if (inherited && i < predecessor->shards_.size()) {
                fds.push_back(duplicate_listener(predecessor->shards_[i]->listen_fd(*inherited)));
            } else {
                fds.push_back(open_listener(listen_address, 4096, PortSharing::shared));
            }
            // Port 0: the first bind picks the port, and every other shard joins that one.
            if (i == 0) listen_address = bound_address(fds[0]);
        }
    } catch (...) {
        for (int fd : fds) ::close(fd);
        throw;
    }
    ports_[l] = listen_address.port();
    return fds;
}

std::vector<int> Server::open_unix_listeners(size_t l, const Server* predecessor) {
    // No SO_REUSEPORT for Unix sockets: one socket, and each shard its own descriptor for it (every shard's loop
    // wakes for a connection and one accept() wins). A successor on the same path takes over the socket, and
    // with it the file, which the last generation using it removes.
    const Config& config = context_->config;
    std::optional<size_t> inherited = inherited_[l];
    std::vector<int> fds;
    try {
        if (inherited && predecessor->socket_files_[*inherited]) {
            fds.push_back(duplicate_listener(predecessor->shards_.front()->listen_fd(*inherited)));
            socket_files_[l] = predecessor->socket_files_[*inherited];
        } else {
            UnixListener listener = open_unix_listener(config.listeners[l].address.unix_path, 4096);
            fds.push_back(listener.fd);
            socket_files_[l] = std::move(listener.file);
        }
        while (fds.size() < config.workers) fds.push_back(duplicate_listener(fds.front()));
    } catch (...) {
        for (int fd : fds) ::close(fd);
        throw;
    }
    return fds;
}

uint16_t Server::admin_port() const { return admin_ ? admin_->port() : 0; }

namespace {

// Every shard's block, plus the health thread's (health checks, ejections) when there is one.
metrics::Snapshot merge_all(const std::vector<std::unique_ptr<Shard>>& shards, const health::HealthMonitor* health) {
    std::vector<const metrics::ShardMetrics*> blocks;
    for (const auto& shard : shards) blocks.push_back(&shard->metrics());
    if (health) blocks.push_back(&health->metrics());
    metrics::Snapshot snapshot = metrics::merge(blocks);
    // Memory held is the shards' own budget, read here rather than mirrored into a gauge on every buffer taken.
    for (const auto& shard : shards) snapshot.global.buffer_bytes += static_cast<int64_t>(shard->buffer_bytes());
    return snapshot;
}

}  // namespace

std::string Server::render_metrics() const {
    metrics::ExpositionInfo info;
    info.version = LB_VERSION;
    info.shards = static_cast<unsigned>(shards_.size());
    info.backend_names = backend_names_;
    info.start_time_seconds = start_time_seconds_;
    info.process = metrics::read_process_stats();
    std::vector<metrics::ExtraFamily> extra = tls_metric_families(context_->config, shards_);
    for (auto& family : admin_metric_families()) extra.push_back(std::move(family));
    for (auto& family : routing_metric_families(context_->config, shards_)) extra.push_back(std::move(family));
    info.extra = extra;
    return metrics::render_prometheus(merge_all(shards_, health_.get()), info);
}

std::string Server::render_status() const {
    metrics::Snapshot snapshot = merge_all(shards_, health_.get());
    StatusInput status;
    status.version = LB_VERSION;
    std::vector<health::BackendHealth> health;
    if (health_) health = health_->snapshot();
    for (size_t i = 0; i < backend_names_.size(); ++i) status.backends.push_back(backend_status(i, snapshot, health));
    for (const auto& shard : shards_) {
        const metrics::ShardMetrics* block = &shard->metrics();
        metrics::Snapshot own = metrics::merge(std::span(&block, 1));
        status.shards.push_back({shard->index(), own.global.client_connections_active, shard->connections_accepted()});
    }
    const Config& config = context_->config;
    status.uptime_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - process_started_).count();
    status.config_generation = generation_;
    status.config_file = config.source;
    status.admin_token_required = !config.admin.token.empty();
    for (size_t l = 0; l < config.listeners.size() && !shards_.empty(); ++l) {
        const net::TlsServerContext* tls = shards_.front()->tls_listener(l);
        if (!tls) continue;
        for (const auto& cert : tls->certificates()) {
            status.certificates.push_back(
                {config.listeners[l].address.to_string(), cert.file, cert.names, cert.not_after_unix});
        }
    }
    return render_status_json(status);
}

std::string Server::backends_json() const {
    metrics::Snapshot snapshot = merge_all(shards_, health_.get());
    std::vector<health::BackendHealth> health;
    if (health_) health = health_->snapshot();
    std::string out = "{\"backends\":[";
    for (size_t i = 0; i < backend_names_.size(); ++i) {
        out += i ? "," : "";
        out += render_backend_json(backend_status(i, snapshot, health));
    }
    out += "]}\n";
    return out;
}

std::string Server::backend_json(size_t id) const {
    std::vector<health::BackendHealth> health;
    if (health_) health = health_->snapshot();
    return render_backend_json(backend_status(id, merge_all(shards_, health_.get()), health)) + "\n";
}

const Config& Server::config() const { return context_->config; }

uint64_t Server::buffer_bytes() const {
    uint64_t total = 0;
    for (const auto& shard : shards_) total += shard->buffer_bytes();
    return total;
}

uint64_t Server::client_connection_limit() const {
    return uint64_t{context_->client_connections_per_shard} * context_->config.workers;
}

uint16_t Server::port() const {
    for (uint16_t p : ports_) {
        if (p != 0) return p;
    }
    return 0;
}

void Server::retire() {
    if (admin_) admin_->stop();
    if (shutdown_requested_.exchange(true)) return;
    // Waits until every shard has closed its listener, so that from the return on, only the successor accepts.
    run_on_every_shard([](Shard& shard) { shard.begin_drain(); });
    socket_files_.clear();  // a successor on the same path keeps its file; the others go now
}

void Server::request_shutdown() {
    if (shutdown_requested_.exchange(true)) return;  // a shard's inbox closes once it has drained
    for (auto& shard : shards_) shard->request_drain();
    // No new client should find the path from here on; the listeners close as each shard starts its drain.
    socket_files_.clear();
}

void Server::wait() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (health_) health_->stop();
}

void Server::start_health_monitor(const Server* predecessor) {
    const Config& config = context_->config;
    std::vector<health::HealthTarget> targets;
    for (size_t i = 0; i < config.backends.size(); ++i) {
        health::HealthTarget target;
        target.name = config.backends[i].address;
        target.address = context_->backend_addresses[i].storage;
        target.overrides = config.backends[i].health;
        target.tls = config.backends[i].tls;  // checks reach a backend as requests do
        target.host = config.backends[i].endpoint.host;
        target.pool = config.backends[i].pool;
        target.takes_new_requests = pool::takes_new_requests(context_->initial_admin[i].state);
        targets.push_back(std::move(target));
    }
    // A reload: each backend starts as the old generation knew it (see carry_over_health()).
    if (predecessor && predecessor->health_) {
        health::carry_over_health(config.health, predecessor->health_->snapshot(), targets);
    }
    health::HealthMonitorOptions options;
    options.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    options.log = [](std::string_view line) { base::log(base::LogLevel::info, "{}", line); };
    options.metrics_enabled = config.metrics_enabled;
    health_ = std::make_unique<health::HealthMonitor>(
        config.health, std::move(targets), [this](const health::Transition& t) { broadcast_health(t); }, options);
    context_->health = health_.get();
    for (size_t i = 0; i < config.backends.size(); ++i) context_->initially_healthy[i] = health_->initially_healthy(i);
}

void Server::broadcast_health(const health::Transition& transition) {
    // On the health thread. Each shard applies it on its own loop; posting never blocks on a shard.
    last_transition_ns_for_test_.store(uv_hrtime(), std::memory_order_release);
    for (auto& shard : shards_) {
        shard->post([t = transition](Shard& s) {
            s.apply_health(static_cast<pool::BackendId>(t.backend), t.healthy, t.generation);
        });
    }
}

void Server::shutdown() {
    request_shutdown();
    wait();
}

uint64_t Server::connections_accepted(size_t shard) const { return shards_[shard]->connections_accepted(); }

uint64_t Server::health_applied_ns_for_test(size_t shard) const { return shards_[shard]->health_applied_ns_for_test(); }

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

}  // namespace lb::core
