// One client connection and the exchanges on it, one request at a time (pipelined requests wait their turn).
// It owns the client socket and the current exchange's parser, and is freed only in the close callback of
// its handle. An UpstreamConnection is attached for the length of one exchange, then handed back to the shard's
// idle pool or closed; the link is cut on both sides either way.
//
// Paths that reach close(): client EOF or error, a timeout, an error response written (after a lingering
// close), a backend failing mid-response, the drain deadline, and the end of a response on a connection that
// does not stay open. close() is idempotent and only starts the handles' close: memory goes in on_close, so a
// callback that closes the session may still touch it until it returns.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/shard/deadline_queue.h"
#include "core/shard/intrusive_list.h"
#include "core/transport/buffers.h"
#include "http/message_parser.h"
#include "http/request_head.h"
#include "pool/backend.h"

namespace lb::core {

class Shard;
class UpstreamConnection;

class ProxySession final : public WriteTarget,
                           public http::MessageSink,
                           public IntrusiveList<ProxySession>::Hook,
                           public DeadlineHook {
  public:
    // Accepts one connection from `listener` into a new session owned by its handles.
    static void accept(Shard& shard, uv_stream_t* listener);

    // From the attached UpstreamConnection.
    void on_upstream_connected(int status);
    void on_upstream_read(ssize_t nread, const BufferRef& buffer);
    void on_upstream_write_done(int status);

    // Client writes.
    void on_write_done(int status) override;

    // The shard is draining: a connection idle between requests closes now, a busy one after its current
    // response, one that has sent nothing yet when the shard's grace for a first request ends.
    void begin_drain();
    // Idle with no byte of a request received since the connection opened.
    bool awaiting_first_request() const { return phase_ == Phase::idle && awaiting_first_request_ && !closing_; }
    // From the shard's wait queue: a connection slot may be free now.
    void on_slot_free();
    void close();
    // The shard's deadline queue calls this when the session's current timeout falls due.
    static void on_deadline(DeadlineHook& hook);

    // Request parser events.
    http::HeadAction on_head(const http::MessageHead& head) override;
    void on_body(std::string_view bytes) override;
    void on_message_complete() override;

  private:
    enum class Phase {
        idle,          // between requests (or before the first): nothing of a request received
        reading_head,  // some bytes of a request head received
        queued,        // head parsed, every eligible backend at its connection limit: waiting for a slot
        connecting,    // head parsed, waiting for an upstream connection
        exchanging,    // upstream attached: request body and response flowing
        lingering,     // final response written, discarding input until the client closes
        closing,
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

    ProxySession(Shard& shard);
    uv_stream_t* client() { return reinterpret_cast<uv_stream_t*>(&client_); }

    static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void on_client_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_close(uv_handle_t* handle);

    // Request side.
    void parse_client_input();
    void update_client_reading();
    void dispatch();
    void start_connect(pool::BackendId backend);
    void on_upstream_ready();
    void on_connect_failed();
    void flush_upstream();

    // Response side.
    http::HeadAction on_response_head(const http::MessageHead& head);
    void on_response_body(std::string_view bytes);
    void on_response_complete();
    void finish_exchange(bool upstream_reusable);
    void on_upstream_failed(pool::Outcome outcome);
    void flush_client();

    // Endings.
    void fail_request(http::ProxyError error);
    void record_error(http::ProxyError error);
    void release_upstream(pool::Outcome outcome, bool reusable, int status = 0);
    void close_after_flush();
    void close_when_flushed();
    void arm_timer(Lane lane);
    void start_next_request();

    // What a request needs while it is in progress: made when a request's first byte arrives, dropped when
    // the connection goes idle again. An idle keep-alive connection then holds little beyond its two handles,
    // as an nginx connection holds no request pool between requests.
    struct Exchange {
        Exchange(ProxySession& session, WritePool& writes, http::HeadLimits limits)
            : request_parser(HTTP_REQUEST, session, limits),
              response_sink(session),
              to_client(writes),
              to_upstream(writes) {}
        http::MessageParser request_parser;
        ResponseSink response_sink;
        pool::BackendSet tried;  // backends whose connect failed for this request
        WriteBatch to_client;
        WriteBatch to_upstream;
        BufferRef current_client_buffer;    // the read whose bytes the request callbacks reference
        BufferRef current_upstream_buffer;  // the read whose bytes the response callbacks reference
        uv_shutdown_t shutdown_req;
        uint64_t request_started_ns = 0;  // first byte of the request (uv_hrtime), when metrics are on
        uint64_t dispatched_ns = 0;       // the request was given to backend_
    };
    Exchange& exchange();  // the current one, made if there is none

    Shard& shard_;
    uv_tcp_t client_;
    std::unique_ptr<Exchange> exchange_;
    UpstreamConnection* upstream_ = nullptr;
    std::string client_address_;

    // Client input: the read buffer handed to libuv, and bytes read but not parsed yet (a pipelined request).
    BufferRef client_read_buffer_;
    BufferRef pending_buffer_;
    std::string_view pending_;

    // The current exchange's state that is cheap to keep.
    uint64_t request_body_bytes_ = 0;
    pool::BackendId backend_ = 0;
    uint8_t open_handles_ = 0;
    uint8_t attempts_ = 0;
    Phase phase_ = Phase::idle;
    http::BodyFraming request_framing_ = http::BodyFraming::none;
    http::BodyFraming response_framing_ = http::BodyFraming::none;
    http::ProxyError request_error_ = http::ProxyError::none;
    bool closing_ = false;
    bool client_reading_ = false;
    bool draining_ = false;
    bool awaiting_first_request_ = true;  // no byte of a request has arrived on this connection yet
    bool dispatched_ = false;             // backend_ counts this request in flight
    bool fresh_connection_only_ = false;  // a reused connection failed: the retry must not take another
    bool head_ready_ = false;             // a head was parsed and waits for dispatch
    bool request_complete_ = false;
    bool response_started_ = false;  // response bytes went to the client: no retry, no error status
    bool response_complete_ = false;
    bool interim_response_ = false;  // the response being parsed is a 1xx
    bool bad_response_ = false;      // the backend answered something lb cannot forward
    bool client_keep_alive_ = false;
    bool upstream_keep_alive_ = false;
    bool phase_timed_out_ = false;  // the connect in progress failed by timing out
    bool queued_ = false;           // in the shard's wait queue
    bool client_eof_ = false;       // the client half-closed after its request
    bool close_when_flushed_ = false;
};

}  // namespace lb::core
