// How the data path moves bytes on one connection, whatever carries them: plain TCP first, TLS as a second
// implementation. A ProxySession talks to its client, and an UpstreamConnection to its backend, only through this
// interface; neither sees a socket or a uv handle.
//
// Events reach the owner on the shard's loop, from libuv callbacks, never from inside the owner's own call into the
// transport. A transport is freed by its owner, and only from on_transport_closed (or before it was ever opened).
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <string_view>

#include "base/intrusive_list.h"
#include "net/buffers.h"

namespace lb::net {

class TransportEvents {
  public:
    // Bytes arrived. They lie in `buffer`; the owner keeps a reference for as long as it needs them.
    virtual void on_transport_read(const BufferRef& buffer, std::string_view bytes) = 0;
    // The peer finished sending (UV_EOF) or the connection failed (another libuv error). Reading has stopped.
    virtual void on_transport_end(int status) = 0;
    // An outgoing connect finished (0) or failed.
    virtual void on_transport_connected(int status) { (void)status; }
    // Queued bytes went out (0), so queued_bytes() went down, or writing failed (a libuv error).
    virtual void on_transport_written(int status) = 0;
    // shutdown() finished: every queued byte went out, then the FIN. Or it failed.
    virtual void on_transport_shutdown(int status) { (void)status; }
    // Every handle of the connection is closed: the owner may now free the transport, and itself.
    virtual void on_transport_closed() = 0;

  protected:
    ~TransportEvents() = default;
};

// Whether a libuv error means lb itself ran out of something (descriptors, memory, local ports) rather than the
// peer failing: such a failure must not count against a backend.
inline bool is_local_resource_error(int uv_error) {
    return uv_error == UV_EMFILE || uv_error == UV_ENFILE || uv_error == UV_ENOBUFS || uv_error == UV_ENOMEM ||
           uv_error == UV_EADDRNOTAVAIL;
}

// Transports that stopped reading because their shard's memory budget ran out; resumed when it is relieved.
class Transport;
using MemoryWaiters = base::IntrusiveList<Transport>;
struct LaterTag;
struct TlsSessionInfo;

// Runs work a transport must not do inside its owner's call (delivering input it already holds, when the owner
// asks to read again): Transport::on_later_turn, on a later turn of the loop. The shard implements it.
class LaterTurn {
  public:
    virtual void defer(Transport& transport) = 0;
    virtual void cancel(Transport& transport) = 0;

  protected:
    ~LaterTurn() = default;
};

// What every transport of a shard shares.
struct TransportEnv {
    uv_loop_t* loop;
    BufferPool& buffers;
    WritePool& writes;
    MemoryWaiters& memory_waiters;
    LaterTurn& later;
};

class Transport : public base::IntrusiveList<Transport>::Hook, public base::IntrusiveList<Transport, LaterTag>::Hook {
  public:
    virtual ~Transport() = default;

    // An outgoing connection: on_transport_connected follows. Returns a libuv error if it could not start (no event
    // follows then).
    virtual int connect(const sockaddr* address) = 0;
    // Reading is wanted or not. While the shard's memory budget is used up, a transport that wants to read waits
    // (in TransportEnv::memory_waiters) and resumes on its own.
    virtual void start_reading() = 0;
    virtual void stop_reading() = 0;
    // Sends `batch` (leaving it empty): what the socket takes now goes at once; the rest waits in order, small pieces
    // copied and large ones kept by reference, and counts in queued_bytes(). Returns 0, or the libuv error that ended
    // the connection (no on_transport_written follows for it).
    virtual int write(WriteBatch& batch) = 0;
    // Memory held by bytes waiting to be written: what backpressure measures.
    virtual size_t queued_bytes() const = 0;
    // Half-closes once every queued byte is out; on_transport_shutdown follows. Returns a libuv error if it cannot.
    virtual int shutdown() = 0;
    // Idempotent. on_transport_closed follows once every handle is closed.
    virtual void close() = 0;
    // close() after ending the stream the way its protocol marks a complete one (TLS: close_notify), for a
    // connection that ends well with nothing queued. An aborted one uses close(), so a cut response never looks
    // whole to the peer.
    virtual void end_and_close() { close(); }
    // Whether bytes arrived that nobody has read, or the peer closed: an idle pooled connection must have neither
    // before it is used again.
    virtual bool has_unread_input() = 0;
    // Called by the shard when memory is available again, for a transport in memory_waiters.
    virtual void resume_after_memory() = 0;
    // What was deferred through TransportEnv::later.
    virtual void on_later_turn() {}
    // The TLS session, for a TLS transport whose handshake is done; null otherwise.
    virtual const TlsSessionInfo* tls_info() const { return nullptr; }
    // What went wrong beyond a libuv error code (a TLS failure's reason), or empty.
    virtual std::string_view error_detail() const { return {}; }
};

}  // namespace lb::net
