#include "core/runtime/supervisor.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

#include "base/log.h"

namespace lb::core {

Supervisor::Supervisor(std::string config_path, Config config)
    : config_path_(std::move(config_path)), current_(std::make_unique<Server>(std::move(config))) {}

Supervisor::~Supervisor() {
    request_shutdown();
    wait();
}

void Supervisor::start() {
    current_->start();
    log_listening("lb " LB_VERSION);
}

void Supervisor::log_listening(const std::string& what) {
    const Config& config = current_->config();
    std::string admin =
        current_->admin_port() ? fmt::format("; admin on {}:{}", config.admin.listen.host, current_->admin_port()) : "";
    // The ports as bound: with "listen: ...:0" the kernel picked them, and tests read them here.
    std::vector<std::string> addresses;
    for (size_t l = 0; l < config.listeners.size(); ++l) {
        ListenAddress listening = config.listeners[l].address;
        if (!listening.is_unix()) listening.tcp.port = current_->port(l);
        addresses.push_back(listening.to_string());
    }
    base::log(base::LogLevel::info,
              "{} listening on {} with {} workers and {} backends, at most {} client connections{}", what,
              fmt::join(addresses, ", "), current_->shard_count(), config.backends.size(),
              current_->client_connection_limit(), admin);
    listening_ = fmt::format("generation {} listening on {} with {} workers and {} backends", generation_,
                             fmt::join(addresses, ", "), current_->shard_count(), config.backends.size());
}

std::string Supervisor::status() const {
    if (last_reload_error_.empty()) return listening_;
    return fmt::format("{}; last reload failed: {}", listening_, last_reload_error_);
}

bool Supervisor::reload() {
    if (stopping_) {
        base::log(base::LogLevel::warn, "reload ignored: lb is stopping");
        return false;
    }
    reap_drained();
    std::unique_ptr<Server> next;
    try {
        next = std::make_unique<Server>(load_config_file(config_path_));
        next->start(current_.get());
    } catch (const std::exception& e) {
        // A ConfigError names file:line:column; a start error names the address or backend.
        base::log(base::LogLevel::error, "reload failed, keeping the running configuration: {}", e.what());
        last_reload_error_ = e.what();
        return false;
    }
    // The new generation already accepts on the shared sockets; only now may the old one let go of them.
    current_->retire();
    auto& old = retiring_.emplace_back(
        Retiring{std::exchange(current_, std::move(next)), std::make_shared<std::atomic<bool>>(false), {}});
    old.waiter = std::thread([server = old.server.get(), drained = old.drained, generation = generation_] {
        server->wait();
        drained->store(true, std::memory_order_release);
        base::log(base::LogLevel::info, "configuration generation {} drained", generation);
    });
    ++generation_;
    last_reload_error_.clear();
    log_listening(fmt::format("reloaded {}: generation {}", config_path_, generation_));
    return true;
}

void Supervisor::reopen_access_logs() {
    current_->reopen_access_log();
    for (auto& old : retiring_) old.server->reopen_access_log();
}

void Supervisor::request_shutdown() {
    stopping_ = true;
    current_->request_shutdown();
    for (auto& old : retiring_) old.server->request_shutdown();
}

void Supervisor::wait() {
    current_->wait();
    for (auto& old : retiring_) old.waiter.join();
    retiring_.clear();
}

void Supervisor::reap_drained() {
    std::erase_if(retiring_, [](Retiring& old) {
        if (!old.drained->load(std::memory_order_acquire)) return false;
        old.waiter.join();
        return true;
    });
}

}  // namespace lb::core
