// A backend scripted by the test, byte by byte, for what the demo backend does not produce (a response dripped in
// tiny chunks, an answer before the request body is in): it listens on 127.0.0.1:0 and runs `serve(fd)` for each
// connection on a thread of its own, with blocking sockets. No Catch assertions run on those threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace lb::test {

class RawBackend {
  public:
    using Serve = std::function<void(int fd)>;
    explicit RawBackend(Serve serve);
    ~RawBackend();  // stops accepting, shuts every connection down, joins every thread
    RawBackend(const RawBackend&) = delete;
    RawBackend& operator=(const RawBackend&) = delete;

    uint16_t port() const { return port_; }
    size_t connections() const { return connections_.load(); }

    // For serve functions: the request head (up to and including the blank line), "" on EOF or error.
    static std::string read_head(int fd);
    // Writes all of `bytes`; false if the peer went away.
    static bool write_all(int fd, std::string_view bytes);

  private:
    void accept_loop();

    Serve serve_;
    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> connections_{0};
    std::mutex mutex_;
    std::vector<int> fds_;  // guarded by mutex_
    std::vector<std::thread> threads_;
    std::thread acceptor_;
};

}  // namespace lb::test
