// Accepts client connections on one shard's listening socket, within the shard's limits. It stops accepting, and
// leaves connections waiting in the kernel's backlog, while the shard holds its share of limits.client_connections
// or limits.buffer_memory, and for a short while after running out of file descriptors; it starts again when a
// connection closes, memory is freed or the while is over. (libuv's own accept would instead accept and drop
// connections silently on EMFILE, and could not be paused.)
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>

namespace lb::core {

class Acceptor {
  public:
    class Delegate {
      public:
        // Whether a connection may be taken now (below the connection and memory limits).
        virtual bool may_accept() = 0;
        // A new connection on listener `listener`: `fd` is non-blocking and close-on-exec, and now the delegate's.
        virtual void on_accepted(size_t listener, int fd, const sockaddr_storage& peer) = 0;
        // accept() failed for want of descriptors or memory (errno value): lb's problem, not the client's.
        virtual void on_accept_exhausted(int error) = 0;

      protected:
        ~Delegate() = default;
    };

    // Takes ownership of `listen_fd`, the socket of the shard's listener number `listener`. Owner loop only, like
    // everything below.
    Acceptor(uv_loop_t* loop, int listen_fd, size_t listener, Delegate& delegate);
    Acceptor(const Acceptor&) = delete;
    Acceptor& operator=(const Acceptor&) = delete;

    void start();
    // Called when a limit may have eased (a connection closed, memory was freed): resumes a paused acceptor.
    void resume();
    bool paused() const { return paused_; }
    // Stops accepting and closes the handles and the socket (in their close callbacks).
    void close();
    int fd() const { return fd_; }

  private:
    static void on_readable(uv_poll_t* poll, int status, int events);
    static void on_retry(uv_timer_t* timer);
    static void on_close(uv_handle_t* handle);
    void accept_some();
    void pause();

    Delegate& delegate_;
    size_t listener_;
    uv_poll_t poll_;
    uv_timer_t retry_timer_;
    int fd_;
    int open_handles_ = 2;
    bool polling_ = false;
    bool paused_ = false;
    bool closing_ = false;
};

}  // namespace lb::core
