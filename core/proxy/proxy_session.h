// One client connection and the exchanges on it, one request at a time (pipelined requests wait their turn). It
// owns the client transport and the current Exchange, and is freed only once its transport has closed. An
// UpstreamConnection is attached for the length of one attempt, then handed back to the shard's idle pool or
// closed; the link is cut on both sides either way.
//
// The Phase is the one source of truth about where the connection stands; what a request has been through lives
// in its Exchange. Memory stays bounded whatever the peers do: lb stops reading a side while more than
// limits.buffer_per_connection waits to be written towards the other, and stops taking the next pipelined request
// while the client has not read enough of the previous responses.
//
// After a 101 to an Upgrade request the connection is a tunnel (Phase::tunnelling): bytes are copied both ways,
// never parsed, under the same bounds (each side is read only while what waits towards the other is at most
// limits.buffer_per_connection), so a tunnel holds at most buffer_memory_bound() of buffers. A FIN from one side
// becomes a shutdown towards the other; the tunnel ends once both directions have ended, on an error, after
// timeouts.tunnel without a byte either way, or at the drain deadline. Its upstream connection is never reused.
//
// Paths that reach close(): client EOF or error, a timeout, an error response written or the drain's idle grace
// ended (both after a lingering close), a backend failing mid-response, the drain deadline, and the end of a
// response on a connection that does not stay open. close() is idempotent and only starts the transport's close: memory
// goes in on_transport_closed, so a callback that closes the session may still touch it until it returns; after any
// call that may close, check closed() before touching anything else.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/intrusive_list.h"
#include "core/config/config.h"
#include "core/proxy/exchange.h"
#include "core/proxy/outcome.h"
#include "core/shard/deadline_queue.h"
#include "http/message_parser.h"
#include "net/transport.h"

namespace lb::core {

class Shard;
class UpstreamConnection;

class ProxySession final : public net::TransportEvents,
                           public http::MessageSink,
                           public base::IntrusiveList<ProxySession>::Hook,
                           public base::IntrusiveList<ProxySession, struct QueueTag>::Hook,
                           public DeadlineHook {
  public:
    // Serves `fd`, a connection just accepted from `peer` on the shard's listener number `listener`.
    static void start(Shard& shard, size_t listener, int fd, const sockaddr_storage& peer);

    // The most read-buffer and queued-write memory one connection can hold under `limits`, whatever its client
    // and backend do: towards each side, buffer_per_connection plus the last read that crossed it (64 KiB) plus
    // the copy storage's growth step; one read buffer of unparsed client bytes; one read in progress. Heads
    // (header_bytes each way) and about 2 KiB of fixed state come on top.
    static uint64_t buffer_memory_bound(const Limits& limits);

    // From the attached UpstreamConnection.
    void on_upstream_connected(int status);
    void on_upstream_read(const net::BufferRef& buffer, std::string_view bytes);
    void on_upstream_end(int status);
    void on_upstream_written(int status);
    void on_upstream_shutdown(int status);

    // The shard is draining. A busy connection closes after the first response that says Connection: close: the
    // current one, or the next one if the current response's head went out promising keep-alive. One with no
    // request in progress gets timeouts.drain_idle_grace for a request that may be on its way, then a lingering
    // close.
    void begin_drain();
    // From the shard's queue, on a later loop turn: a connection slot may be free now.
    void on_slot_free();
    // The pool a request waiting in the shard's queue waits for.
    size_t queued_pool() const { return exchange_ ? exchange_->pool : 0; }
    // Ends the connection at once, in-flight work abandoned (over TLS: no close_notify, so a cut response never
    // looks whole).
    void close();
    // Ends a connection that finished well: over TLS, close_notify goes first.
    void end_and_close();

    // The shard's deadline queue, one function per lane.
    static void on_header_deadline(DeadlineHook& hook);
    static void on_connect_deadline(DeadlineHook& hook);
    static void on_response_deadline(DeadlineHook& hook);
    static void on_queue_deadline(DeadlineHook& hook);
    static void on_client_deadline(DeadlineHook& hook);  // keep-alive, send and linger lanes: the client is done
    static void on_drain_idle_deadline(DeadlineHook& hook);
    static void on_tunnel_deadline(DeadlineHook& hook);

    // The client transport.
    void on_transport_read(const net::BufferRef& buffer, std::string_view bytes) override;
    void on_transport_end(int status) override;
    void on_transport_written(int status) override;
    void on_transport_shutdown(int status) override;
    void on_transport_closed() override;

    // Request parser events.
    http::HeadAction on_head(const http::MessageHead& head) override;
    void on_body(std::string_view bytes) override;
    void on_message_complete() override;

  private:
    // Finds the route for the request (with `routes:`), and with it the pool and the target the backend gets.
    // False when no route matches.
    bool choose_route(const http::MessageHead& head);
    void close_client(bool clean_end);
    enum class Phase {
        idle,                 // between requests (or before the first): nothing of a request received
        reading_head,         // some bytes of a request head received
        queued,               // head parsed, every eligible backend at its connection limit: waiting for a slot
        connecting,           // head parsed, waiting for an upstream connection
        exchanging,           // upstream attached: request body and response flowing
        closing_after_flush,  // the last response is being written; the connection closes once it is out
        lingering,            // an error response was written: discarding input until the client closes
        tunnelling,           // the backend switched protocols (101): bytes are relayed both ways as they are
        closed,
    };

    // Response parser events, kept apart from the request's.
    class ResponseSink final : public http::MessageSink {
      public:
        explicit ResponseSink(ProxySession& session) : session_(session) {}
        http::HeadAction on_head(const http::MessageHead& head) override { return session_.on_response_head(head); }
        void on_body(std::string_view bytes) override { session_.on_response_body(bytes); }
        void on_message_complete() override { session_.on_response_complete(); }

      private:
        ProxySession& session_;
    };

    ProxySession(Shard& shard, size_t listener);
    bool closed() const { return phase_ == Phase::closed; }
    size_t high_water() const;

    // Request side.
    void parse_client_input();
    void begin_request();
    void update_client_reading();
    void dispatch();
    void start_connect();
    void on_upstream_ready();
    void write_upstream_head();
    void on_connect_failed(Outcome outcome);
    void flush_upstream();

    // Response side.
    http::HeadAction on_response_head(const http::MessageHead& head);
    void on_response_body(std::string_view bytes);
    void on_response_complete();
    void on_bad_response();
    void finish_exchange(bool nothing_after_response);
    void start_next_request();
    void on_upstream_failed(Outcome outcome);
    void flush_client();

    // Tunnel (after a 101).
    http::HeadAction on_switching_protocols(const http::MessageHead& head);
    void begin_tunnel(const net::BufferRef& buffer, std::string_view rest);
    void relay_to_upstream(const net::BufferRef& buffer, std::string_view bytes);
    void relay_to_client(const net::BufferRef& buffer, std::string_view bytes);
    void update_upstream_tunnel_reading();
    void on_tunnel_side_ended(bool client_side);
    void end_tunnel_if_done();

    // Endings.
    void fail_request(Outcome outcome);
    void count_attempt_failure(Outcome outcome);
    void count_response_sent(unsigned status);
    // One access log line for the request, as its response (`status`) goes to the client (session_access_log.cpp).
    void log_access(unsigned status);
    // The request's id (request_id:): the client's, or the one lb made in on_head; "" when off or before the head.
    std::string_view request_id() const;
    // For a response head to the client: the request id field lb adds, and the route's response rewrite (nullptr
    // when there is none).
    http::AddedField request_id_field() const;
    const http::HeaderRewrite* response_rewrite() const;
    void release_upstream(Outcome outcome, bool reusable);
    void release_exchange();
    void close_after_flush();
    void close_when_flushed();
    void arm(Lane lane);
    void arm_between_requests();
    bool may_retry() const;

    Shard& shard_;
    std::unique_ptr<net::Transport> client_;
    std::unique_ptr<Exchange> exchange_;  // the request in progress, if any
    UpstreamConnection* upstream_ = nullptr;
    ResponseSink response_sink_{*this};
    std::string client_address_;

    // Client bytes read but not parsed yet: a pipelined request, or a body waiting for its upstream connection.
    // Reading stops while there are any, so a client holds at most one read buffer here.
    net::BufferRef pending_buffer_;
    std::string_view pending_;
    const net::BufferRef* response_buffer_ = nullptr;  // the upstream read being parsed
    net::WriteBatch to_client_;
    net::WriteBatch to_upstream_;

    uint32_t requests_ = 0;  // requests begun on this connection
    uint16_t listener_;      // which of the configured listeners accepted it
    Phase phase_ = Phase::idle;
    bool parsing_ = false;             // inside parse_client_input: it carries on once a connection is ready
    bool upstream_held_back_ = false;  // upstream reading stopped until the client takes what waits for it
    bool draining_ = false;
    bool client_eof_ = false;  // the client half-closed after its request
    // Tunnel directions: the backend sent its FIN; each shutdown (the other side's FIN passed on) completed.
    bool upstream_eof_ = false;
    bool client_shut_ = false;
    bool upstream_shut_ = false;
};

}  // namespace lb::core
