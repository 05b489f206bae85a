// Runs one Server generation at a time and replaces it on reload (SIGHUP), the way nginx swaps its workers: the
// new generation is built from the re-read file and takes over the listening sockets, then the old one stops
// taking connections and drains in the background under its own timeouts. A file that does not load, or a
// generation that does not start, leaves the running one exactly as it was.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/config/config.h"
#include "core/runtime/server.h"

namespace lb::core {

class Supervisor {
  public:
    // `config` is what `config_path` held at start-up; reload() reads the path again.
    Supervisor(std::string config_path, Config config);
    ~Supervisor();  // drains and waits for every generation still running
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Starts the first generation. Throws std::runtime_error.
    void start();
    // Re-reads the file and switches to a new generation. Returns false, having logged why, when the running
    // configuration is kept (also once request_shutdown() has run). Call from one control thread.
    bool reload();
    // SIGUSR1: every generation's access log opens its file again (logrotate has moved it). Call from the control
    // thread.
    void reopen_access_logs();
    // Drains every generation: the current one and any still finishing after a reload.
    void request_shutdown();
    // Waits until every generation has drained.
    void wait();
    // One line on what runs, for the service manager's status: the generation, its listeners and workers, and
    // the last reload's error while the file it read is still the one refused.
    std::string status() const;

  private:
    struct Retiring {
        std::unique_ptr<Server> server;
        std::shared_ptr<std::atomic<bool>> drained;
        std::thread waiter;
    };
    void reap_drained();
    void log_listening(const std::string& what);

    std::string config_path_;
    std::unique_ptr<Server> current_;
    std::vector<Retiring> retiring_;
    unsigned generation_ = 1;
    bool stopping_ = false;
    std::string listening_;          // "generation N listening on ..." as last logged
    std::string last_reload_error_;  // "" once a reload succeeds
};

}  // namespace lb::core
