// Plain TCP under the Transport interface: one uv_tcp_t, at most one uv_write in flight, and a backlog that
// gathers what is written meanwhile, so a peer that reads slowly costs one compact buffer, not a write request and
// a pinned read buffer per piece.
#pragma once

#include <uv.h>

#include <memory>

#include "net/transport.h"

namespace lb::net {

class TcpTransport final : public Transport {
  public:
    TcpTransport(TransportEnv& env, TransportEvents& events);
    ~TcpTransport() override;
    TcpTransport(const TcpTransport&) = delete;
    TcpTransport& operator=(const TcpTransport&) = delete;

    // Takes an accepted, non-blocking socket. On failure the descriptor is closed and the transport must still be
    // closed (close()) like any other.
    int open(int fd);

    int connect(const sockaddr* address) override;
    void start_reading() override;
    void stop_reading() override;
    int write(WriteBatch& batch) override;
    size_t queued_bytes() const override { return queued_; }
    int shutdown() override;
    void close() override;
    bool has_unread_input() override;
    // Reads what the socket holds now, without waiting (for a layer above that must look before the loop does):
    // the bytes read, 0 at EOF, or -1 when nothing is there (or on error).
    ssize_t read_available(char* into, size_t size);
    void resume_after_memory() override;

  private:
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
    int send(std::unique_ptr<WriteRequest> request);
    int start_shutdown();
    void update_reading();
    void recount_queued();
    // Charges the budget for what `request` now holds of its own (its read buffers are charged by their pool).
    void charge(WriteRequest& request);

    static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_write(uv_write_t* req, int status);
    static void on_connect(uv_connect_t* req, int status);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_close(uv_handle_t* handle);

    TransportEnv& env_;
    TransportEvents& events_;
    uv_tcp_t tcp_;
    BufferRef read_buffer_;
    std::unique_ptr<WriteRequest> in_flight_;  // handed to uv_write
    std::unique_ptr<WriteRequest> backlog_;    // waits for in_flight_ to finish
    size_t queued_ = 0;                        // memory held by in_flight_ and backlog_
    bool want_reading_ = false;
    bool reading_ = false;
    bool waiting_for_memory_ = false;
    bool shutdown_wanted_ = false;
    bool closing_ = false;
};

}  // namespace lb::net
