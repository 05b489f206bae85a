// One accepted TCP connection of the demo backend: parses requests with llhttp, one at a time, and writes the
// responses (or the misbehaviour) that the query parameters ask for (see request_controls.h). Runs entirely on its
// worker's loop thread. With TLS (BackendState::tls), the bytes read are decrypted before they are parsed and
// the bytes sent are encrypted first (demo_tls.h); reading, writing and backpressure are the same either way.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "demo/backend_state.h"
#include "demo/demo_tls.h"
#include "demo/request_controls.h"
#include "demo/websocket_echo.h"

namespace lb::demo {

class Connection;

// Keeps connections alive (the worker). Told once a connection's last handle has closed, and frees it then.
class ConnectionOwner {
  public:
    virtual void on_connection_closed(Connection& connection) = 0;

  protected:
    ~ConnectionOwner() = default;
};

// Owns its uv_tcp_t, its timer (response delay, then lingering close) and its shutdown request. Freed by its owner
// from the close callback of its last handle, never earlier: close() only starts closing, so it is safe from any
// callback. Requests are served strictly one after the other: the parser pauses at the end of each request and
// resumes once the response is fully written, so pipelined requests are answered in order.
class Connection {
  public:
    // Initialises the handles on `loop`. Before it is freed the object must be closed with close() and its close
    // callbacks must have run. `backend` and `read_buffer` (the loop's shared read buffer, only used within one
    // read callback at a time) must outlive it.
    Connection(uv_loop_t* loop, BackendState& backend, ConnectionOwner& owner, std::span<char> read_buffer);
    ~Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Accepts the pending connection on `listener`, takes the next connection serial and starts reading.
    // Returns a libuv error code; on error the caller must close().
    int accept(uv_stream_t* listener);

    // Closes both handles at once; queued writes are cancelled, the peer sees FIN (or RST if input is unread).
    // Idempotent. Reached from: the worker's stop, read/write/shutdown errors, EOF, drop, mid_close, the end of a
    // lingering close, a request that failed after its response had started.
    void close();
    // The same, but the peer sees RST whatever was read (SO_LINGER 0); unsent bytes are discarded. Reached from
    // reset_mid_body only.
    void close_with_reset();

  private:
    struct WriteRequest;
    // Bytes to send. Transient pieces are copied if they cannot be written at once; the others (static data, the
    // backend's strings, this connection's per-response buffers) are referenced until their write completes.
    struct Piece {
        const char* data;
        size_t size;
        bool transient;
    };
    static constexpr size_t kMaxPieces = 6;

    // silent: input is read and discarded, nothing is ever answered (silent=1; a --silent backend does not even
    // read).
    // websocket: after a 101 on /ws, frames are echoed (WebSocketEcho) and never parsed as HTTP.
    enum class Phase : uint8_t { reading, responding, lingering, silent, websocket, closed };
    // What the last llhttp_execute stopped for.
    enum class Event : uint8_t { none, message_complete, drop, silence, read_pause };
    enum class After : uint8_t { keep_alive, close_gracefully, close_abruptly, reset };
    // How a response head delimits its body.
    enum class Framing : uint8_t { none, content_length, chunked };

    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    // Input.
    void on_input(const char* data, size_t size);
    void on_tls_input(const char* data, size_t size);
    size_t feed(const char* data, size_t size);
    size_t execute(const char* data, size_t size);
    void process_pending();
    void after_input();
    void update_reading();
    void set_held_back(bool held);
    void on_read_end(ssize_t status);
    bool grow_head(size_t size);

    // Responses.
    void reset_request();
    void on_request_error();
    void on_request_complete();
    void start_response();
    void start_echo_response();
    void build_head(int status, Framing framing, bool counted_body, bool close_header);
    void pump();
    void maybe_finish();
    void send_stray();
    void finish_response();
    void close_gracefully();
    bool send(std::span<const Piece> pieces);
    bool send_raw(std::span<const Piece> pieces);
    bool flush_tls();
    void append_tls_headers();
    const char* body_at(uint64_t offset) const;

    // WebSocket (/ws).
    bool is_websocket_handshake() const;
    void start_websocket();
    void websocket_input(const char* data, size_t size);
    void websocket_pump();

    // libuv callbacks.
    static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
    static void on_write(uv_write_t* req, int status);
    static void on_shutdown(uv_shutdown_t* req, int status);
    static void on_timer(uv_timer_t* timer);
    static void on_close(uv_handle_t* handle);

    // llhttp callbacks.
    static const llhttp_settings_t& parser_settings();
    static int on_message_begin(llhttp_t* parser);
    static int on_url(llhttp_t* parser, const char* at, size_t size);
    static int on_url_complete(llhttp_t* parser);
    static int on_header_field(llhttp_t* parser, const char* at, size_t size);
    static int on_header_field_complete(llhttp_t* parser);
    static int on_header_value(llhttp_t* parser, const char* at, size_t size);
    static int on_header_value_complete(llhttp_t* parser);
    static int on_headers_complete(llhttp_t* parser);
    static int on_body(llhttp_t* parser, const char* at, size_t size);
    static int on_message_complete(llhttp_t* parser);

    BackendState& backend_;
    ConnectionOwner& owner_;
    std::span<char> read_buffer_;
    uv_tcp_t tcp_{};
    uv_timer_t timer_{};
    uv_shutdown_t shutdown_req_{};
    int open_handles_ = 0;
    llhttp_t parser_{};
    std::unique_ptr<TlsSession> tls_;  // HTTPS only
    bool tls_counted_ = false;         // its handshake was counted in BackendState
    std::string tls_plain_;            // the pieces of one send(), joined to be encrypted at once

    uint64_t conn_id_ = 0;
    uint64_t responses_done_ = 0;
    Phase phase_ = Phase::reading;
    bool closing_ = false;
    bool reading_ = false;
    bool peer_eof_ = false;
    bool feeding_ = false;
    bool read_paused_ = false;  // read_pause_ms: not reading until the timer fires
    bool held_back_ = false;    // not reading because the peer does not read (counted in BackendState)
    bool counted_open_ = false;
    Event event_ = Event::none;
    std::string pending_;  // input received while a response was in progress, parsed once it is done

    // The request being read. The strings keep their capacity from request to request.
    RequestControls controls_;
    std::string target_;
    std::string field_;
    std::string expect_value_;
    std::string ws_key_;       // Sec-WebSocket-Key
    bool ws_upgrade_ = false;  // Upgrade: websocket
    std::unique_ptr<WebSocketEcho> ws_;
    std::string ws_out_;          // frames to send, built per read
    uint64_t ws_flood_left_ = 0;  // ws_flood=N bytes not yet queued
    std::string echo_text_;       // echo=headers body, /stats body or an error body; stable until the response is done
    size_t head_bytes_ = 0;
    uint64_t body_received_ = 0;
    bool record_headers_ = false;
    bool expect_continue_ = false;
    bool keep_alive_ = true;
    int error_status_ = 0;

    // The response being written.
    std::string head_;
    const char* body_data_ = nullptr;  // nullptr: the 'a'..'z' pattern
    uint64_t body_size_ = 0;
    uint64_t body_limit_ = 0;  // bytes of the body to send: all, none (HEAD, 204), or half (mid_close, reset)
    uint64_t body_sent_ = 0;
    unsigned writes_in_flight_ = 0;
    After after_ = After::keep_alive;
    bool chunked_ = false;
    bool last_chunk_ = false;  // end the body with "0\r\n\r\n"
    bool echo_active_ = false;
    bool delay_pending_ = false;
    uint64_t stray_ = 0;          // stray bytes still to send after this response
    bool stray_pending_ = false;  // waiting for stray_delay_ms
    bool head_sent_ = false;
    bool all_queued_ = false;
};

}  // namespace lb::demo
