// One thread of a DemoBackend: its own uv loop, its own listening socket (SO_REUSEPORT siblings share the port),
// and the connections accepted on it.
#pragma once

#include <uv.h>

#include <atomic>
#include <memory>
#include <thread>
#include <unordered_map>

#include "demo/backend_state.h"
#include "demo/demo_connection.h"

namespace lb::demo {

class Worker final : public ConnectionOwner {
  public:
    // Initialises the loop; throws std::system_error if libuv cannot. `backend` must outlive the worker.
    explicit Worker(BackendState& backend);
    // Stops and joins the thread if it runs; otherwise closes what listen() opened on the calling thread. Either
    // way the loop must then close with no handle left, or the process aborts (a leak is a bug, not a condition).
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Takes ownership of `fd`, a bound socket, and listens on it. Returns a libuv error code. Before start().
    int listen(int fd);
    // Runs the loop on a new thread (SIGPIPE blocked there: a write to a closed peer fails with EPIPE instead).
    void start();
    // Any thread, any number of times: asks the loop to close the listener and every connection; the thread ends when
    // all are closed.
    void request_stop();
    void join();

    void on_connection_closed(Connection& connection) override;

  private:
    static void on_connection(uv_stream_t* listener, int status);
    static void on_stop(uv_async_t* async);
    void close_all();
    void run();

    BackendState& backend_;
    uv_loop_t loop_{};
    // The listener and the async are members: they are closed with no close callback because the worker is only
    // freed after its loop has run dry, i.e. after libuv is done with them.
    uv_tcp_t listener_{};
    uv_async_t stop_async_{};
    bool listener_open_ = false;
    bool async_open_ = false;
    std::unique_ptr<char[]> read_buffer_;
    std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
};

}  // namespace lb::demo
