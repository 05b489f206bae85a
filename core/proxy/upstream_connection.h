// One connection to a backend. It owns its transport and its response parser, and frees itself once the transport
// has closed. While a ProxySession is attached, what the transport reports goes to that session; while it sits in
// the shard's idle pool, any byte or EOF from the backend means the connection is unusable, and it closes.
//
// Paths that reach close(): the attached session gives it up (error, timeout, response not reusable, session
// closing); the idle pool evicts it (idle timeout, backend spoke or closed while idle, unread input found when
// taken, shard stop).
#pragma once

#include <memory>

#include "base/intrusive_list.h"
#include "core/shard/deadline_queue.h"
#include "http/message_parser.h"
#include "net/transport.h"
#include "pool/backend.h"

namespace lb::core {

class Shard;
class ProxySession;

class UpstreamConnection final : public net::TransportEvents,
                                 public base::IntrusiveList<UpstreamConnection>::Hook,
                                 public DeadlineHook {
  public:
    // A new, unconnected connection owned by itself (freed after close()), or null when lb could not make one
    // (no memory for a TLS session).
    static UpstreamConnection* create(Shard& shard, pool::BackendId backend);
    // Why the connection failed, when its transport knows more than a libuv error (a TLS verification failure).
    std::string_view error_detail() const { return transport_->error_detail(); }

    // Starts the connect; the attached session hears on_upstream_connected. Returns a libuv error if the connect
    // could not start (then no callback comes).
    int connect(const sockaddr* address) { return transport_->connect(address); }

    void attach(ProxySession* session);
    void detach();  // forgets the session (which forgets this connection); reading stays as it is

    int write(net::WriteBatch& batch) { return transport_->write(batch); }
    size_t queued_bytes() const { return transport_->queued_bytes(); }
    // Half-closes once every queued byte is out (a tunnel passing on the client's FIN); on_upstream_shutdown follows.
    int shutdown() { return transport_->shutdown(); }
    void start_reading() { transport_->start_reading(); }
    void stop_reading() { transport_->stop_reading(); }

    // Idle in the pool: watch for the backend closing or speaking, and time out after timeouts.upstream_keepalive.
    void park();
    // Taken from the pool. With `check_quiet`, false, and the connection closes, when the backend sent something
    // (or closed) since it was parked that the loop has not seen yet: one recv(MSG_PEEK) syscall. Without it, what
    // the loop has seen is enough: a parked connection reads, so a close or stray bytes that arrived before the
    // loop last polled closed it already, and a body-less request that meets a close is sent again on a fresh
    // connection (ProxySession::on_upstream_failed), as nginx, HAProxy and Envoy reuse idle connections.
    bool unpark(bool check_quiet);

    void close();  // idempotent

    pool::BackendId backend() const { return backend_; }
    bool reused() const { return exchanges_ > 0; }
    void count_exchange() { ++exchanges_; }
    // Parses this connection's responses; the attached session points it at its own sink.
    http::MessageParser& response_parser() { return response_parser_; }
    static void on_idle_deadline(DeadlineHook& hook);

    // net::TransportEvents
    void on_transport_read(const net::BufferRef& buffer, std::string_view bytes) override;
    void on_transport_end(int status) override;
    void on_transport_connected(int status) override;
    void on_transport_written(int status) override;
    void on_transport_shutdown(int status) override;
    void on_transport_closed() override;

  private:
    UpstreamConnection(Shard& shard, pool::BackendId backend);

    Shard& shard_;
    pool::BackendId backend_;
    std::unique_ptr<net::Transport> transport_;
    http::MessageParser response_parser_;
    ProxySession* session_ = nullptr;
    uint32_t exchanges_ = 0;
    bool parked_ = false;
    bool closing_ = false;
};

}  // namespace lb::core
