// What the health thread's check connections carry their bytes with: the same net::Transport as the workers'
// upstream connections, so that a check reaches a TLS backend exactly as a request does (its verification, CA,
// SNI, client certificate and minimum version), and a plain backend over TCP.
//
// The health thread owns all of it, as a worker owns its own: read buffers and a write pool charged to a budget
// without a limit (a check holds one small request and one read at a time), the memory waiters that budget never
// fills, a "later turn" on the health loop (an idle handle) for what a transport must not do inside its owner's
// call, and one TLS client context per TLS backend, whose last session resumes the next check connection.
//
// Threads: construct and use_tls() on the controlling thread before the health thread starts; everything else on
// the health thread.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "net/buffers.h"
#include "net/tls_config.h"
#include "net/tls_context.h"
#include "net/transport.h"

namespace lb::health {

class CheckTransports final : private net::LaterTurn {
  public:
    explicit CheckTransports(size_t backends);
    ~CheckTransports();
    CheckTransports(const CheckTransports&) = delete;
    CheckTransports& operator=(const CheckTransports&) = delete;

    // Checks of `backend` go over TLS with `config`; `host` is the backend's host as configured (the default SNI
    // and the name verified). Throws std::runtime_error when a file of `config` cannot be loaded, and
    // std::invalid_argument for an empty `host` (it would verify no name at all).
    void use_tls(size_t backend, const net::TlsUpstreamConfig& config, const std::string& host);
    bool is_tls(size_t backend) const { return tls_[backend] != nullptr; }

    // Sets up the later-turn handle on `loop`: returns 0 or a libuv error (then nothing is left open).
    int start(uv_loop_t* loop);
    // Closes that handle (once every transport was closed). Idempotent; a no-op before start().
    void close();

    // A new, unconnected transport to `backend` for `events`: TLS when use_tls() said so. Null when no TLS
    // session could be made (out of memory).
    std::unique_ptr<net::Transport> make(size_t backend, net::TransportEvents& events);
    net::WritePool& writes() { return writes_; }
    // Read buffers in use (each check connection holds one only while it handles a read), for tests.
    size_t buffers_in_use() const { return buffers_.in_use(); }

  private:
    // net::LaterTurn
    void defer(net::Transport& transport) override;
    void cancel(net::Transport& transport) override;
    static void on_later(uv_idle_t* idle);

    net::MemoryBudget budget_;  // no limit: never exhausted, so memory_waiters_ stays empty
    net::BufferPool buffers_{budget_, 2};
    net::WritePool writes_{budget_, 8};
    net::MemoryWaiters memory_waiters_;
    net::TransportEnv env_{nullptr, buffers_, writes_, memory_waiters_, *this};
    uv_idle_t later_{};
    base::IntrusiveList<net::Transport, net::LaterTag> deferred_;
    bool started_ = false;
    bool closed_ = false;
    std::vector<std::unique_ptr<net::TlsClientContext>> tls_;  // per backend; null for a plain one
};

}  // namespace lb::health
