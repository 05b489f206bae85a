// An HTTPS backend for tests, over lb's own TLS: net::TlsTransport, server side, with a net::TlsServerContext, on
// a libuv loop of its own thread. HTTP/1.1 with keep-alive (which `openssl s_server` does not do): every request
// head gets `200 ok`. It counts connections, handshakes (completed, resumed, failed) and requests, and keeps the
// SNI of the last connection, so a test can see what a TLS client offered it.
//
// Listens on 127.0.0.1:0 from construction on, until stop() (or the destructor). The accessors are safe from any
// thread. No Catch assertions run on the loop thread.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "net/buffers.h"
#include "net/tls_context.h"
#include "net/transport.h"

namespace lb::test {

class TlsResponder final : private net::LaterTurn, private net::HandshakeObserver {
  public:
    struct Options {
        std::string cert;  // PEM: the leaf, then its chain
        std::string key;
        std::string client_ca;  // set: a client certificate signed by this CA is required
        // After this many answers on a connection, the next request closes it unanswered, as a backend that
        // dropped an idle keep-alive connection just as it was reused (0: never).
        size_t answers_per_connection = 0;
        // Answers without Content-Length, ended by closing the connection (close_notify, then FIN).
        bool close_delimited = false;
    };

    // Throws std::runtime_error when the certificate cannot be loaded or the socket cannot listen.
    explicit TlsResponder(Options options);
    ~TlsResponder();  // stop()
    TlsResponder(const TlsResponder&) = delete;
    TlsResponder& operator=(const TlsResponder&) = delete;

    // Closes the listener and every connection and joins the thread. Returns whether the loop closed with no
    // handle left (true again on later calls).
    bool stop();

    uint16_t port() const { return port_; }
    size_t connections() const { return connections_.load(); }
    size_t handshakes() const { return handshakes_.load(); }  // completed, resumed ones included
    size_t resumed_handshakes() const { return resumed_.load(); }
    size_t failed_handshakes() const { return failed_.load(); }
    size_t requests() const { return requests_.load(); }
    std::string last_server_name() const;

  private:
    class Connection;

    // net::LaterTurn
    void defer(net::Transport& transport) override;
    void cancel(net::Transport& transport) override;
    // net::HandshakeObserver
    void on_handshake(size_t context_index, const net::HandshakeReport& report) override;

    static void on_listener_readable(uv_poll_t* poll, int status, int events);
    static void on_stop(uv_async_t* async);
    static void on_later(uv_idle_t* idle);

    Options options_;
    std::unique_ptr<net::TlsServerContext> context_;
    int listen_fd_ = -1;
    uint16_t port_ = 0;

    // Loop thread only, once it runs.
    uv_loop_t loop_{};
    uv_poll_t listener_{};
    uv_async_t stop_{};
    uv_idle_t later_{};
    net::MemoryBudget budget_;
    net::BufferPool buffers_{budget_};
    net::WritePool writes_{budget_};
    net::MemoryWaiters memory_waiters_;
    net::TransportEnv env_{&loop_, buffers_, writes_, memory_waiters_, *this};
    base::IntrusiveList<net::Transport, net::LaterTag> deferred_;
    std::unordered_set<Connection*> open_;
    bool stopping_ = false;
    bool closed_cleanly_ = false;  // written by the loop thread as it ends; read after join()

    std::atomic<size_t> connections_{0};
    std::atomic<size_t> handshakes_{0};
    std::atomic<size_t> resumed_{0};
    std::atomic<size_t> failed_{0};
    std::atomic<size_t> requests_{0};
    mutable std::mutex mutex_;
    std::string last_server_name_;  // guarded by mutex_
    std::thread thread_;
};

}  // namespace lb::test
