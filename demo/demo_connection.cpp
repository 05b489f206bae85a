#include "demo/demo_connection.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>

namespace lb::demo {

namespace {

constexpr size_t kPieceSize = 64 * 1024;        // body bytes per write (and per chunk)
constexpr size_t kHighWater = 1024 * 1024;      // queued bytes above which we wait for writes to complete
constexpr size_t kMaxPendingInput = 64 * 1024;  // input kept while a response is in progress, then reads stop
constexpr size_t kMaxHeadSize = 64 * 1024;      // request line and headers; beyond it: 431
constexpr uint64_t kLingerMs = 2000;            // how long a graceful close waits for the peer's FIN

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr std::string_view kHealthBody = "ok\n";

// kPieceSize + 26 bytes of 'a'..'z': the pattern body from offset o on starts at pattern_buffer() + o % 26.
const char* pattern_buffer() {
    static const std::array<char, kPieceSize + 26> buffer = [] {
        std::array<char, kPieceSize + 26> b{};
        for (size_t i = 0; i < b.size(); ++i) b[i] = pattern_byte(i);
        return b;
    }();
    return buffer.data();
}

// kMaxStray bytes of kStrayByte.
const char* stray_buffer() {
    static const std::array<char, kMaxStray> buffer = [] {
        std::array<char, kMaxStray> b{};
        b.fill(kStrayByte);
        return b;
    }();
    return buffer.data();
}

void raise_to(std::atomic<uint64_t>& peak, uint64_t value) {
    uint64_t seen = peak.load(std::memory_order_relaxed);
    while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
               return lower(x) == lower(y);
           });
}

Connection& of(llhttp_t* parser) { return *static_cast<Connection*>(parser->data); }

}  // namespace

struct Connection::WriteRequest {
    uv_write_t req{};
    Connection* connection = nullptr;
    std::string storage;  // copies of the transient pieces
};

Connection::Connection(uv_loop_t* loop, BackendState& backend, ConnectionOwner& owner, std::span<char> read_buffer)
    : backend_(backend), owner_(owner), read_buffer_(read_buffer) {
    // Neither call can fail: uv_tcp_init creates no socket, uv_timer_init has no failure path.
    if (uv_tcp_init(loop, &tcp_) != 0 || uv_timer_init(loop, &timer_) != 0) std::abort();
    open_handles_ = 2;
    tcp_.data = this;
    timer_.data = this;
    shutdown_req_.data = this;
    llhttp_init(&parser_, HTTP_REQUEST, &parser_settings());
    parser_.data = this;
}

int Connection::accept(uv_stream_t* listener) {
    if (int rc = uv_accept(listener, stream()); rc != 0) return rc;
    uv_tcp_nodelay(&tcp_, 1);
    conn_id_ = backend_.connections_accepted.fetch_add(1, std::memory_order_relaxed) + 1;
    backend_.connections_open.fetch_add(1, std::memory_order_relaxed);
    counted_open_ = true;
    if (backend_.tls) tls_ = std::make_unique<TlsSession>(*backend_.tls);
    reset_request();
    if (backend_.silent) phase_ = Phase::silent;  // and update_reading never starts reading
    update_reading();
    return closing_ ? UV_ECONNABORTED : 0;
}

void Connection::close() {
    if (closing_) return;
    closing_ = true;
    phase_ = Phase::closed;
    reading_ = false;
    set_held_back(false);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_close);
}

void Connection::close_with_reset() {
    if (closing_) return;
    closing_ = true;
    phase_ = Phase::closed;
    reading_ = false;
    set_held_back(false);
    // Fails only with a shutdown in progress, which no path that resets has started; then a plain close will do.
    if (uv_tcp_close_reset(&tcp_, on_close) != 0) uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_close);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_close);
}

void Connection::on_close(uv_handle_t* handle) {
    auto& self = *static_cast<Connection*>(handle->data);
    if (--self.open_handles_ > 0) return;
    if (self.counted_open_) self.backend_.connections_open.fetch_sub(1, std::memory_order_relaxed);
    self.owner_.on_connection_closed(self);  // frees self: touch nothing after
}

// ---- Input ----------------------------------------------------------------------------------------------------

void Connection::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto& self = *static_cast<Connection*>(handle->data);
    *buf = uv_buf_init(self.read_buffer_.data(), static_cast<unsigned>(self.read_buffer_.size()));
}

void Connection::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    auto& self = *static_cast<Connection*>(stream->data);
    if (nread == 0) return;
    if (nread < 0) {
        self.on_read_end(nread);
        return;
    }
    if (self.phase_ == Phase::lingering || self.phase_ == Phase::silent) return;  // draining until the peer's FIN
    auto size = static_cast<size_t>(nread);
    if (self.tls_) {
        self.on_tls_input(buf->base, size);
    } else {
        self.on_input(buf->base, size);
    }
}

// Request bytes (plaintext), in the shared read buffer or in a TLS connection's.
void Connection::on_input(const char* data, size_t size) {
    if (phase_ == Phase::websocket) {
        websocket_input(data, size);
        return;
    }
    if (!pending_.empty()) {
        pending_.append(data, size);
        process_pending();
        return;
    }
    // Common case: parse straight from the shared buffer and keep only what is left over.
    feeding_ = true;
    size_t consumed = feed(data, size);
    feeding_ = false;
    if (phase_ != Phase::lingering && !closing_ && consumed < size) pending_.append(data + consumed, size - consumed);
    after_input();
}

// Ciphertext just read: the session takes all of it, which frees the shared read buffer to receive the plaintext,
// parsed piece by piece as plain reads would be. What the session has to send meanwhile (its handshake, session
// tickets, an alert) goes out at the end. All of a read is decrypted even when parsing pauses: the plaintext waits
// in pending_ as a plain read's rest would, so what one connection holds stays within one read's worth.
void Connection::on_tls_input(const char* data, size_t size) {
    tls_->put_ciphertext(data, size);
    while (!closing_ && phase_ != Phase::lingering && phase_ != Phase::silent) {
        size_t n = 0;
        TlsSession::ReadResult result = tls_->read(read_buffer_, n);
        if (!tls_counted_ && tls_->handshake_done()) {
            tls_counted_ = true;
            backend_.tls_handshakes.fetch_add(1, std::memory_order_relaxed);
            if (tls_->resumed()) backend_.tls_resumed.fetch_add(1, std::memory_order_relaxed);
        }
        switch (result) {
            case TlsSession::ReadResult::data:
                on_input(read_buffer_.data(), n);
                continue;
            case TlsSession::ReadResult::want_more:
                break;
            case TlsSession::ReadResult::closed:
                // close_notify: the end of the request stream, as a FIN is for plain HTTP.
                if (!flush_tls()) return;
                uv_read_stop(stream());
                on_read_end(UV_EOF);
                return;
            case TlsSession::ReadResult::failed:
                // A refused handshake (no client certificate, plain HTTP on this port...) or a broken stream: the
                // alert goes out if the socket takes it at once, then the connection closes.
                backend_.tls_failures.fetch_add(1, std::memory_order_relaxed);
                flush_tls();
                close();
                return;
        }
        break;
    }
    flush_tls();
}

void Connection::on_read_end(ssize_t status) {
    if (status != UV_EOF) {
        close();
        return;
    }
    peer_eof_ = true;
    reading_ = false;  // libuv stops reading at EOF
    if (phase_ == Phase::websocket) {
        close_gracefully();  // the client went without a closing handshake (or after it): end ours
        return;
    }
    // A response in progress is finished first (the peer may have half-closed after its request).
    if (phase_ == Phase::reading || phase_ == Phase::lingering || phase_ == Phase::silent) close();
}

// Feeds the parser while the connection is between responses; returns the bytes consumed. A response that starts
// (and possibly finishes at once) inside this loop changes phase_, which the loop re-checks.
size_t Connection::feed(const char* data, size_t size) {
    size_t done = 0;
    while (!closing_ && phase_ == Phase::reading && !read_paused_ && done < size) {
        size_t n = execute(data + done, size - done);
        done += n;
        // Defensive: no progress. A request resumed after a read pause may complete without consuming a byte.
        if (n == 0 && event_ == Event::none) break;
    }
    return done;
}

size_t Connection::execute(const char* data, size_t size) {
    event_ = Event::none;
    llhttp_errno_t err = llhttp_execute(&parser_, data, size);
    if (closing_) return size;
    size_t consumed = size;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
        if (err == HPE_PAUSED) {
            llhttp_resume(&parser_);
        } else {
            event_ = Event::message_complete;  // an upgrade: answer, then close
            keep_alive_ = false;
        }
    } else if (err != HPE_OK) {
        on_request_error();
        return size;
    }
    switch (event_) {
        case Event::drop:
            close();
            return size;
        case Event::silence:
            phase_ = Phase::silent;
            return size;
        case Event::read_pause:
            read_paused_ = true;
            // The loop's clock is cached from the start of this iteration; a stale one would cut the pause short.
            uv_update_time(tcp_.loop);
            uv_timer_start(&timer_, on_timer, controls_.read_pause_ms, 0);
            break;
        case Event::message_complete:
            on_request_complete();
            break;
        case Event::none:
            break;
    }
    return consumed;
}

// Parses input that arrived while a response was in progress. The feeding_ guard turns a response that completes
// synchronously inside feed() into another turn of feed()'s loop instead of a recursion.
void Connection::process_pending() {
    if (feeding_) return;
    feeding_ = true;
    size_t consumed = feed(pending_.data(), pending_.size());
    feeding_ = false;
    if (closing_) return;
    if (phase_ == Phase::lingering || phase_ == Phase::silent) {
        pending_.clear();
    } else {
        pending_.erase(0, consumed);
    }
    after_input();
}

void Connection::after_input() {
    if (closing_) return;
    if (phase_ == Phase::websocket && !pending_.empty()) {
        // Frames that came with the handshake, after its head.
        std::string first;
        first.swap(pending_);
        websocket_input(first.data(), first.size());
        return;
    }
    if (peer_eof_ && phase_ == Phase::reading) {
        close();  // nothing more can arrive, and nothing is being answered
        return;
    }
    update_reading();
}

// Reads while there is room for input: parsing continues during a request body (discarded or echoed, the latter
// only while the echo's write queue is short); during a response up to kMaxPendingInput bytes are kept. Not at
// all for a --silent backend, nor during a read pause.
void Connection::update_reading() {
    if (closing_) return;
    bool want = false;
    bool held = false;
    if (!peer_eof_ && !backend_.silent && !read_paused_) {
        if (phase_ == Phase::lingering || phase_ == Phase::silent) {
            want = true;
        } else {
            held = pending_.size() >= kMaxPendingInput || ((echo_active_ || phase_ == Phase::websocket) &&
                                                           uv_stream_get_write_queue_size(stream()) > kHighWater);
            want = !held;
        }
    }
    set_held_back(held);
    if (want == reading_) return;
    if (want) {
        if (uv_read_start(stream(), on_alloc, on_read) != 0) {
            close();
            return;
        }
    } else {
        uv_read_stop(stream());
    }
    reading_ = want;
}

void Connection::set_held_back(bool held) {
    if (held == held_back_) return;
    held_back_ = held;
    backend_.connections_held_back.fetch_add(held ? 1 : -1, std::memory_order_relaxed);
    if (held) backend_.backpressure_stops.fetch_add(1, std::memory_order_relaxed);
}

bool Connection::grow_head(size_t size) {
    head_bytes_ += size;
    if (head_bytes_ <= kMaxHeadSize) return true;
    error_status_ = 431;
    llhttp_set_error_reason(&parser_, "request head too large");
    return false;
}

// ---- llhttp callbacks: they record what they see and never start or finish a response themselves --------------

const llhttp_settings_t& Connection::parser_settings() {
    static const llhttp_settings_t settings = [] {
        llhttp_settings_t s;
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_url = on_url;
        s.on_url_complete = on_url_complete;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = on_header_field_complete;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = on_header_value_complete;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        return s;
    }();
    return settings;
}

int Connection::on_message_begin(llhttp_t* parser) {
    of(parser).reset_request();
    return HPE_OK;
}

int Connection::on_url(llhttp_t* parser, const char* at, size_t size) {
    auto& self = of(parser);
    if (!self.grow_head(size)) return HPE_USER;
    self.target_.append(at, size);
    return HPE_OK;
}

int Connection::on_url_complete(llhttp_t* parser) {
    auto& self = of(parser);
    self.controls_ = parse_request_controls(self.target_);
    self.record_headers_ = self.controls_.echo == EchoMode::headers;
    return HPE_OK;
}

int Connection::on_header_field(llhttp_t* parser, const char* at, size_t size) {
    auto& self = of(parser);
    if (!self.grow_head(size)) return HPE_USER;
    self.field_.append(at, size);
    if (self.record_headers_) self.echo_text_.append(at, size);
    return HPE_OK;
}

int Connection::on_header_field_complete(llhttp_t* parser) {
    auto& self = of(parser);
    if (self.record_headers_) self.echo_text_.append(": ");
    return HPE_OK;
}

int Connection::on_header_value(llhttp_t* parser, const char* at, size_t size) {
    auto& self = of(parser);
    if (!self.grow_head(size)) return HPE_USER;
    if (iequals(self.field_, "expect")) self.expect_value_.append(at, size);
    if (iequals(self.field_, "sec-websocket-key")) self.ws_key_.append(at, size);
    if (iequals(self.field_, "upgrade")) self.expect_value_.append(at, size);  // checked when the value is complete
    if (self.record_headers_) self.echo_text_.append(at, size);
    return HPE_OK;
}

int Connection::on_header_value_complete(llhttp_t* parser) {
    auto& self = of(parser);
    if (iequals(self.field_, "expect") && iequals(self.expect_value_, "100-continue")) self.expect_continue_ = true;
    if (iequals(self.field_, "upgrade") && iequals(self.expect_value_, "websocket")) self.ws_upgrade_ = true;
    if (self.record_headers_) self.echo_text_.push_back('\n');
    self.field_.clear();
    self.expect_value_.clear();
    return HPE_OK;
}

int Connection::on_headers_complete(llhttp_t* parser) {
    auto& self = of(parser);
    const RequestControls& controls = self.controls_;
    if (controls.drop || (controls.drop_if_reused && self.responses_done_ > 0)) {
        self.event_ = Event::drop;
        return HPE_PAUSED;
    }
    if (controls.silent) {
        self.event_ = Event::silence;
        return HPE_PAUSED;
    }
    self.keep_alive_ = llhttp_should_keep_alive(parser) != 0;
    if (self.record_headers_) {
        auto method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
        self.echo_text_.insert(
            0, fmt::format("{} {} HTTP/{}.{}\n", method, self.target_, parser->http_major, parser->http_minor));
    }
    bool has_body = (parser->flags & F_CHUNKED) != 0 || parser->content_length > 0;
    bool http11 = parser->http_major == 1 && parser->http_minor >= 1;
    if (self.expect_continue_ && has_body && http11) {
        if (!self.send(std::array{Piece{kContinue.data(), kContinue.size(), false}})) return -1;
    }
    if (controls.echo == EchoMode::body && parser->method != HTTP_HEAD && !status_forbids_body(controls.status)) {
        self.start_echo_response();
        if (self.closing_) return -1;
    }
    if (controls.read_pause_ms > 0) {
        self.event_ = Event::read_pause;
        return HPE_PAUSED;
    }
    return HPE_OK;
}

int Connection::on_body(llhttp_t* parser, const char* at, size_t size) {
    auto& self = of(parser);
    self.body_received_ += size;
    if (!self.echo_active_) return HPE_OK;
    std::array<char, 24> chunk_header;
    size_t header_size = 0;
    if (self.chunked_) header_size = fmt::format_to(chunk_header.data(), "{:x}\r\n", size) - chunk_header.data();
    std::array pieces{Piece{chunk_header.data(), header_size, true}, Piece{at, size, true},
                      Piece{kCrlf.data(), self.chunked_ ? kCrlf.size() : 0, false}};
    if (!self.send(pieces)) return HPE_USER;
    return HPE_OK;
}

int Connection::on_message_complete(llhttp_t* parser) {
    auto& self = of(parser);
    if (parser->upgrade) self.keep_alive_ = false;  // CONNECT or Upgrade: the bytes after it are not HTTP
    self.event_ = Event::message_complete;
    return HPE_PAUSED;
}

// ---- Responses --------------------------------------------------------------------------------------------------

void Connection::reset_request() {
    controls_ = RequestControls{};
    target_.clear();
    field_.clear();
    expect_value_.clear();
    ws_key_.clear();
    ws_upgrade_ = false;
    echo_text_.clear();
    head_bytes_ = 0;
    body_received_ = 0;
    record_headers_ = false;
    expect_continue_ = false;
    keep_alive_ = true;
    error_status_ = 0;
}

void Connection::on_request_error() {
    if (echo_active_) {
        close();  // the response has started: all we can do is cut it
        return;
    }
    if (error_status_ == 0) error_status_ = 400;
    keep_alive_ = false;
    start_response();
}

void Connection::on_request_complete() {
    if (is_websocket_handshake()) {
        start_websocket();
        return;
    }
    phase_ = Phase::responding;
    if (!echo_active_) {
        start_response();
        return;
    }
    if (last_chunk_) {
        send(std::array{Piece{kLastChunk.data(), kLastChunk.size(), false}});
        if (closing_) return;
    }
    all_queued_ = true;
    maybe_finish();
}

void Connection::build_head(int status, Framing framing, bool counted_body, bool close_header) {
    bool http11 = parser_.http_major == 1 && parser_.http_minor >= 1;
    head_.clear();
    // interim_body=1: the 1xx goes out with the final head, in the same write.
    if (controls_.interim_body && error_status_ == 0) head_.append(kInterimWithBody);
    auto out = std::back_inserter(head_);
    fmt::format_to(out, "HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    head_.append(backend_.id_header);
    fmt::format_to(out, "X-Conn-Id: {}\r\nX-Conn-Request: {}\r\nContent-Type: text/plain\r\n", conn_id_,
                   responses_done_ + 1);
    if (counted_body) fmt::format_to(out, "X-Received-Body-Bytes: {}\r\n", body_received_);
    if (tls_) append_tls_headers();
    switch (framing) {
        case Framing::chunked:
            head_.append("Transfer-Encoding: chunked\r\n");
            break;
        case Framing::content_length:
            fmt::format_to(out, "Content-Length: {}\r\n", body_size_);
            break;
        case Framing::none:
            break;
    }
    if (close_header) {
        head_.append("Connection: close\r\n");
    } else if (!http11) {
        head_.append("Connection: keep-alive\r\n");
    }
    head_.append("\r\n");
}

// What the TLS session agreed on, for tests of what a client (lb towards its backends) offered: the version, the
// SNI name it sent, the subject of the client certificate it presented. Only printable ASCII is copied.
void Connection::append_tls_headers() {
    auto append = [&](std::string_view name, const std::string& value) {
        if (value.empty()) return;
        head_.append(name);
        head_.append(": ");
        for (char c : value) head_.push_back(c >= 0x20 && c < 0x7f ? c : '?');
        head_.append("\r\n");
    };
    append("X-TLS-Version", tls_->version());
    append("X-TLS-SNI", tls_->server_name());
    append("X-TLS-Client", tls_->client_subject());
}

// Prepares the response to a complete request (or a malformed one) and starts writing it, after delay_ms if asked.
void Connection::start_response() {
    phase_ = Phase::responding;
    backend_.requests_served.fetch_add(1, std::memory_order_relaxed);
    const bool error = error_status_ != 0;
    const int status = error ? error_status_ : controls_.status;
    const bool http11 = parser_.http_major == 1 && parser_.http_minor >= 1;
    // bogus_body=N: a counted body whatever the status and method say.
    const bool bogus = !error && controls_.bogus_body.has_value();
    const bool send_body = bogus || (!status_forbids_body(status) && (error || parser_.method != HTTP_HEAD));

    if (error) {
        echo_text_.assign(reason_phrase(status));
        echo_text_.push_back('\n');
        body_data_ = echo_text_.data();
        body_size_ = echo_text_.size();
    } else if (bogus) {
        body_data_ = nullptr;
        body_size_ = *controls_.bogus_body;
    } else if (controls_.echo == EchoMode::headers) {
        body_data_ = echo_text_.data();
        body_size_ = echo_text_.size();
    } else if (controls_.bytes) {
        body_data_ = nullptr;
        body_size_ = *controls_.bytes;
    } else if (controls_.stats) {
        echo_text_ = fmt::format(
            "{{\"id\": \"{}\", \"connections_accepted\": {}, \"requests_served\": {}, \"connections_open\": {}",
            backend_.id, backend_.connections_accepted.load(std::memory_order_relaxed),
            backend_.requests_served.load(std::memory_order_relaxed),
            backend_.connections_open.load(std::memory_order_relaxed));
        if (backend_.tls) {
            fmt::format_to(std::back_inserter(echo_text_),
                           ", \"tls_handshakes\": {}, \"tls_resumed\": {}, \"tls_failures\": {}",
                           backend_.tls_handshakes.load(std::memory_order_relaxed),
                           backend_.tls_resumed.load(std::memory_order_relaxed),
                           backend_.tls_failures.load(std::memory_order_relaxed));
        }
        echo_text_.append("}\n");
        body_data_ = echo_text_.data();
        body_size_ = echo_text_.size();
    } else if (controls_.health) {
        body_data_ = kHealthBody.data();
        body_size_ = kHealthBody.size();
    } else {
        body_data_ = backend_.default_body.data();
        body_size_ = backend_.default_body.size();
    }
    const bool close_delimited = !error && !bogus && controls_.close_delimited;
    chunked_ = !error && !bogus && !close_delimited && controls_.chunked && http11 && !status_forbids_body(status);
    Framing framing = Framing::content_length;
    if (chunked_) {
        framing = Framing::chunked;
    } else if (close_delimited || (!bogus && status_forbids_body(status))) {
        framing = Framing::none;
    }
    const bool close_wanted = error || !keep_alive_ || controls_.close || close_delimited;
    const bool reset = !error && controls_.reset_mid_body;
    const bool mid_close = !error && controls_.mid_close && send_body;
    after_ = reset          ? After::reset
             : mid_close    ? After::close_abruptly
             : close_wanted ? After::close_gracefully
                            : After::keep_alive;
    body_limit_ = !send_body ? 0 : (reset || mid_close) ? body_size_ / 2 : body_size_;
    last_chunk_ = chunked_ && send_body && !mid_close && !reset;
    stray_ = (reset || mid_close) ? 0 : controls_.stray;
    stray_pending_ = false;
    body_sent_ = 0;
    head_sent_ = false;
    all_queued_ = false;
    build_head(status, framing, true, close_wanted);
    if (!error && controls_.invalid) {
        head_.assign(kInvalidResponse);
        body_limit_ = 0;
        last_chunk_ = false;
        after_ = After::close_gracefully;
    }

    const uint64_t delay = controls_.delay_ms + backend_.extra_delay_ms.load(std::memory_order_relaxed);
    if (!error && delay > 0) {
        delay_pending_ = true;
        // The loop's clock is cached from the start of this iteration; a stale one would cut the delay short.
        uv_update_time(tcp_.loop);
        uv_timer_start(&timer_, on_timer, delay, 0);
        return;
    }
    pump();
}

// echo=body: the head goes out as soon as the request head is complete; on_body streams each piece back.
void Connection::start_echo_response() {
    backend_.requests_served.fetch_add(1, std::memory_order_relaxed);
    const bool http11 = parser_.http_major == 1 && parser_.http_minor >= 1;
    echo_active_ = true;
    chunked_ = http11;  // an HTTP/1.0 client gets a body delimited by the close instead
    last_chunk_ = chunked_;
    after_ = keep_alive_ && http11 && !controls_.close ? After::keep_alive : After::close_gracefully;
    stray_ = controls_.stray;
    stray_pending_ = false;
    head_sent_ = true;
    all_queued_ = false;
    build_head(controls_.status, chunked_ ? Framing::chunked : Framing::none, false, after_ != After::keep_alive);
    send(std::array{Piece{head_.data(), head_.size(), false}});
}

const char* Connection::body_at(uint64_t offset) const {
    return body_data_ != nullptr ? body_data_ + offset : pattern_buffer() + offset % 26;
}

// ---- WebSocket (/ws) -----------------------------------------------------------------------------------------

bool Connection::is_websocket_handshake() const {
    // RFC 6455 §4.2.1: a GET (HTTP/1.1) with Upgrade: websocket and Connection: upgrade (llhttp's upgrade flag
    // says both were there) and a key.
    return controls_.websocket && parser_.upgrade && parser_.method == HTTP_GET && ws_upgrade_ && !ws_key_.empty();
}

void Connection::start_websocket() {
    phase_ = Phase::websocket;
    backend_.requests_served.fetch_add(1, std::memory_order_relaxed);
    head_.clear();
    auto out = std::back_inserter(head_);
    fmt::format_to(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    fmt::format_to(out, "Sec-WebSocket-Accept: {}\r\n", websocket_accept(ws_key_));
    head_.append(backend_.id_header);
    fmt::format_to(out, "X-Conn-Id: {}\r\n\r\n", conn_id_);
    ws_ = std::make_unique<WebSocketEcho>(controls_.ws_close_after);
    ws_flood_left_ = controls_.ws_flood;
    if (!send(std::array{Piece{head_.data(), head_.size(), false}})) return;
    websocket_pump();
}

void Connection::websocket_input(const char* data, size_t size) {
    ws_out_.clear();
    ws_->feed({data, size}, ws_out_);
    if (!ws_out_.empty() && !send(std::array{Piece{ws_out_.data(), ws_out_.size(), true}})) return;
    if (ws_->close_sent() && (ws_->close_received() || ws_->failed())) {
        close_gracefully();  // RFC 6455 §7.1.1: the server closes the TCP connection first
        return;
    }
    websocket_pump();
    if (!closing_) update_reading();
}

// ws_flood=N: binary frames while the write queue is short, never inside a frame being echoed.
void Connection::websocket_pump() {
    while (!closing_ && ws_flood_left_ > 0 && !ws_->close_sent() && ws_->between_frames() &&
           uv_stream_get_write_queue_size(stream()) <= kHighWater) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kPieceSize, ws_flood_left_));
        ws_flood_left_ -= n;
        std::string header;
        append_websocket_frame_header(header, WebSocketEcho::kBinary, n);  // the payload is the shared pattern
        if (!send(std::array{Piece{header.data(), header.size(), true}, Piece{pattern_buffer(), n, false}})) return;
    }
}

// Queues the head and the body in kPieceSize pieces while the write queue is below kHighWater; on_write calls it
// again as the queue drains. Finishes the response once everything is queued and written.
void Connection::pump() {
    while (!closing_ && !all_queued_ && !delay_pending_) {
        if (head_sent_ && uv_stream_get_write_queue_size(stream()) > kHighWater) return;
        std::array<Piece, kMaxPieces> pieces{};
        size_t count = 0;
        std::array<char, 24> chunk_header;
        if (!head_sent_) {
            pieces[count++] = {head_.data(), head_.size(), false};
            head_sent_ = true;
        }
        if (body_sent_ < body_limit_) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(kPieceSize, body_limit_ - body_sent_));
            if (chunked_) {
                size_t header_size = fmt::format_to(chunk_header.data(), "{:x}\r\n", n) - chunk_header.data();
                pieces[count++] = {chunk_header.data(), header_size, true};
            }
            pieces[count++] = {body_at(body_sent_), n, false};
            if (chunked_) pieces[count++] = {kCrlf.data(), kCrlf.size(), false};
            body_sent_ += n;
        }
        if (body_sent_ == body_limit_) {
            if (last_chunk_) pieces[count++] = {kLastChunk.data(), kLastChunk.size(), false};
            if (stray_ > 0 && controls_.stray_delay_ms == 0) {
                pieces[count++] = {stray_buffer(), static_cast<size_t>(stray_), false};
                stray_ = 0;
            }
            all_queued_ = true;
        }
        if (!send(std::span{pieces.data(), count})) return;
    }
    maybe_finish();
}

void Connection::maybe_finish() {
    if (closing_ || !all_queued_ || writes_in_flight_ > 0 || stray_pending_) return;
    if (stray_ > 0) {
        // stray_delay_ms (or an echo=body response, whose last write went out without them): the stray bytes
        // follow the complete response in a write of their own.
        stray_pending_ = true;
        uv_update_time(tcp_.loop);
        uv_timer_start(&timer_, on_timer, controls_.stray_delay_ms, 0);
        return;
    }
    finish_response();
}

void Connection::send_stray() {
    stray_pending_ = false;
    const uint64_t size = stray_;
    stray_ = 0;
    if (!send(std::array{Piece{stray_buffer(), static_cast<size_t>(size), false}})) return;
    maybe_finish();
}

void Connection::finish_response() {
    ++responses_done_;
    all_queued_ = false;
    head_sent_ = false;
    echo_active_ = false;
    switch (after_) {
        case After::close_abruptly:
            close();
            return;
        case After::reset:
            close_with_reset();
            return;
        case After::close_gracefully:
            close_gracefully();
            return;
        case After::keep_alive:
            phase_ = Phase::reading;
            reset_request();
            process_pending();
            return;
    }
}

// Sends FIN once everything is written, then reads and discards until the peer's FIN (or kLingerMs), so unread
// input does not turn our close into an RST that could destroy the response at the peer.
void Connection::close_gracefully() {
    phase_ = Phase::lingering;
    pending_.clear();
    if (tls_) {
        tls_->shutdown();  // close_notify: the client can tell this end from a cut connection
        if (!flush_tls()) return;
    }
    if (uv_shutdown(&shutdown_req_, stream(), on_shutdown) != 0) {
        close();
        return;
    }
    uv_timer_start(&timer_, on_timer, kLingerMs, 0);
    update_reading();
}

void Connection::on_shutdown(uv_shutdown_t* req, int status) {
    auto& self = *static_cast<Connection*>(req->data);
    if (status < 0 || self.peer_eof_) self.close();  // close() is a no-op when this is the cancel at close
}

void Connection::on_timer(uv_timer_t* timer) {
    auto& self = *static_cast<Connection*>(timer->data);
    if (self.phase_ == Phase::lingering) {
        self.close();
    } else if (self.phase_ == Phase::responding && self.delay_pending_) {
        self.delay_pending_ = false;
        self.pump();
    } else if (self.phase_ == Phase::responding && self.stray_pending_) {
        self.send_stray();
    } else if (self.read_paused_) {
        self.read_paused_ = false;
        self.process_pending();  // parses what arrived before the pause, then reads again
    }
}

// The pieces go out in order: as they are, or encrypted into one TLS write (small pieces such as chunk headers
// would otherwise make records of their own).
bool Connection::send(std::span<const Piece> pieces) {
    if (!tls_) return send_raw(pieces);
    if (closing_) return false;
    tls_plain_.clear();
    for (const Piece& piece : pieces) tls_plain_.append(piece.data, piece.size);
    if (!tls_->write(tls_plain_)) {
        backend_.tls_failures.fetch_add(1, std::memory_order_relaxed);
        close();
        return false;
    }
    return flush_tls();
}

// Sends the ciphertext the TLS session has produced. False when the connection is closing (or now closes).
bool Connection::flush_tls() {
    std::string_view ciphertext = tls_->output();
    if (ciphertext.empty()) return !closing_;
    bool sent = send_raw(std::array{Piece{ciphertext.data(), ciphertext.size(), true}});
    tls_->clear_output();
    return sent;
}

bool Connection::send_raw(std::span<const Piece> pieces) {
    if (closing_) return false;
    std::array<Piece, kMaxPieces> rest{};
    std::array<uv_buf_t, kMaxPieces> bufs{};
    size_t count = 0;
    size_t total = 0;
    for (const Piece& piece : pieces) {
        if (piece.size == 0) continue;
        rest[count] = piece;
        bufs[count] = uv_buf_init(const_cast<char*>(piece.data), static_cast<unsigned>(piece.size));
        total += piece.size;
        ++count;
    }
    if (count == 0) return true;
    size_t written = 0;
    if (uv_stream_get_write_queue_size(stream()) == 0 && writes_in_flight_ == 0) {
        int rc = uv_try_write(stream(), bufs.data(), static_cast<unsigned>(count));
        if (rc >= 0) {
            written = static_cast<size_t>(rc);
        } else if (rc != UV_EAGAIN) {
            close();
            return false;
        }
    }
    if (written == total) return true;

    // Queue what did not go out. Copy the transient bytes first; the buffers are built once storage is final.
    size_t first = 0;
    while (written >= rest[first].size) written -= rest[first++].size;
    rest[first].data += written;
    rest[first].size -= written;
    auto request = std::make_unique<WriteRequest>();
    request->connection = this;
    request->req.data = request.get();
    std::array<size_t, kMaxPieces> offsets{};
    for (size_t i = first; i < count; ++i) {
        if (!rest[i].transient) continue;
        offsets[i] = request->storage.size();
        request->storage.append(rest[i].data, rest[i].size);
    }
    size_t queued = 0;
    for (size_t i = first; i < count; ++i) {
        const char* data = rest[i].transient ? request->storage.data() + offsets[i] : rest[i].data;
        bufs[queued++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(rest[i].size));
    }
    if (uv_write(&request->req, stream(), bufs.data(), static_cast<unsigned>(queued), on_write) != 0) {
        close();  // the callback will not run: the request is freed here
        return false;
    }
    request.release();  // libuv holds it until on_write
    ++writes_in_flight_;
    raise_to(backend_.write_queue_peak_bytes, uv_stream_get_write_queue_size(stream()));
    return true;
}

void Connection::on_write(uv_write_t* req, int status) {
    // Copy out, release, then act (the request's buffers are no longer needed).
    std::unique_ptr<WriteRequest> request(static_cast<WriteRequest*>(req->data));
    Connection& self = *request->connection;
    request.reset();
    --self.writes_in_flight_;
    if (status < 0) {
        self.close();  // includes UV_ECANCELED while closing; the connection lives until its close callbacks
        return;
    }
    if (self.closing_) return;
    if (self.phase_ == Phase::responding) {
        self.pump();
    } else if (self.phase_ == Phase::websocket) {
        self.websocket_pump();
        if (!self.closing_) self.update_reading();
    } else if (self.phase_ == Phase::reading) {
        self.update_reading();  // an echo may resume reading as its queue drains
    }
}

}  // namespace lb::demo
