// The admin listener: GET /metrics (Prometheus text), GET /status (JSON) and the admin API (admin_api.h), on its own
// thread and loop so that
// a scrape never runs on a request shard. It is kept off the traffic port, so a backend's own /metrics or /status
// is never shadowed. One request per connection; the answer closes it. Every connection is bounded in time (its
// request, idle time included, and its response each have a deadline) and size (8 KiB of request), and beyond
// 64 connections at once the rest wait in the listen backlog, so that slow or idle scrapers cannot hold the
// descriptors or memory the data path needs.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "core/admin/admin_api.h"
#include "core/shard/listener.h"

namespace lb::core {

class AdminServer {
  public:
    struct Page {
        std::string content_type;
        std::function<std::string()> render;  // called on the admin thread
    };

    struct Deadlines {
        uint64_t request_ms;   // from accept to the whole request (timeouts.client_header)
        uint64_t response_ms;  // for the whole response once it starts (timeouts.client_send)
    };

    // The admin API: `control` answers /backends and below (null: no API); `token`, when not empty, is required
    // on every POST.
    struct Api {
        BackendControl* control = nullptr;  // outlives the server
        std::string token;
    };

    // Takes ownership of `listen_fd`, a listening socket, and serves it once start() runs. Throws
    // std::runtime_error (the socket is closed then too).
    AdminServer(int listen_fd, Page metrics, Page status, Deadlines deadlines, Api api);
    ~AdminServer();  // stop()
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    void start();
    void stop();  // closes the listener and open connections, joins the thread
    uint16_t port() const { return port_; }
    // The listening socket, for a successor to duplicate (valid until stop()).
    int listen_fd() const { return listen_fd_; }

    struct Loop;  // the admin thread's loop and handles (admin_server.cpp)

  private:
    std::unique_ptr<Loop> loop_;
    std::thread thread_;
    int listen_fd_ = -1;
    uint16_t port_ = 0;
};

}  // namespace lb::core
