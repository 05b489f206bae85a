// One TCP connection to a backend. It owns its handles and frees itself in the close callback of the last one.
// While a ProxySession is attached, reads, connect and write completions go to that session; while it sits in
// the shard's idle pool, any byte or EOF from the backend means the connection is unusable, and it closes.
//
// Paths that reach close(): the attached session gives it up (error, timeout, response not reusable, session
// closing); the idle pool evicts it (idle timeout, pool full, backend spoke or closed while idle, shard stop).
#pragma once

#include <uv.h>

#include "core/shard/intrusive_list.h"
#include "core/transport/buffers.h"
#include "http/message_parser.h"
#include "pool/backend.h"

namespace lb::core {

class Shard;
class ProxySession;

class UpstreamConnection final : public WriteTarget, public IntrusiveList<UpstreamConnection>::Hook {
  public:
    // A new, unconnected connection owned by itself (freed after close()).
    static UpstreamConnection* create(Shard& shard, pool::BackendId backend);

    // Starts the TCP connect; the attached session hears on_upstream_connected. Returns a libuv error if the
    // connect could not start (then no callback comes).
    int connect(const sockaddr* address);

    void attach(ProxySession* session);
    void detach();  // forgets the session (which forgets this connection); reading stays as it is

    int write(WriteBatch& batch) { return batch.flush(stream(), this); }
    void start_reading();
    void stop_reading();
    size_t write_queue_size() const { return tcp_.write_queue_size; }

    // Idle in the pool: watch for the backend closing and time out after `idle`.
    void park(uint64_t idle_ms);
    void unpark();

    void close();  // idempotent

    pool::BackendId backend() const { return backend_; }
    bool connected() const { return connected_; }
    bool reused() const { return exchanges_ > 0; }
    void count_exchange() { ++exchanges_; }
    // Parses this connection's responses; the attached session points it at its own sink.
    http::MessageParser& response_parser() { return response_parser_; }

    void on_write_done(int status) override;

  private:
    UpstreamConnection(Shard& shard, pool::BackendId backend);
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_connect(uv_connect_t* req, int status);
    static void on_idle_timeout(uv_timer_t* timer);
    static void on_close(uv_handle_t* handle);

    Shard& shard_;
    pool::BackendId backend_;
    uv_tcp_t tcp_;
    uv_timer_t idle_timer_;
    uv_connect_t connect_req_;
    BufferRef read_buffer_;
    http::MessageParser response_parser_;
    ProxySession* session_ = nullptr;
    int open_handles_ = 0;
    uint32_t exchanges_ = 0;
    bool connected_ = false;
    bool reading_ = false;
    bool parked_ = false;
    bool closing_ = false;
};

}  // namespace lb::core
