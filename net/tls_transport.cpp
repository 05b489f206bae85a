#include "net/tls_transport.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstring>

namespace lb::net {

namespace {

// One TLS record's worth of plaintext: larger writes are cut into records of this size.
constexpr size_t kRecordBytes = 16 * 1024;

constexpr std::string_view kPlainHttpAnswer =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 54\r\nConnection: close\r\n\r\n"
    "lb: this port speaks HTTPS; send the request with TLS\n";

std::string take_openssl_error() {
    unsigned long code = ERR_peek_last_error();
    std::string text;
    if (code != 0) {
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        const char* reason = ERR_reason_error_string(code);
        text = reason ? reason : buffer;
    }
    ERR_clear_error();
    return text;
}

HandshakeResult classify(unsigned long code, long verify_result) {
    if (verify_result != X509_V_OK) return HandshakeResult::unknown_ca;
    if (ERR_GET_LIB(code) != ERR_LIB_SSL) return HandshakeResult::other;
    switch (ERR_GET_REASON(code)) {
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_VERSION_TOO_LOW:
        case SSL_R_WRONG_VERSION_NUMBER:
        case SSL_R_NO_PROTOCOLS_AVAILABLE:
        case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
            return HandshakeResult::no_shared_cipher;
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
            return HandshakeResult::unknown_ca;
        case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:  // a client that sent none, told lb requires one
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:  // a backend that requires one lb did not send
            return HandshakeResult::no_client_certificate;
        default:
            return HandshakeResult::other;
    }
}

std::string subject_of(X509* cert) {
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    if (!out || X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) return {};
    char* data = nullptr;
    long length = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<size_t>(length));
}

}  // namespace

// One BIO for both directions of a connection, as a socket BIO is; its data is the TlsTransport.
struct TransportBio {
    static TlsTransport& of(BIO* bio) { return *static_cast<TlsTransport*>(BIO_get_data(bio)); }

    static int read(BIO* bio, char* into, size_t size, size_t* read) {
        TlsTransport& t = of(bio);
        BIO_clear_retry_flags(bio);
        if (t.input_.empty()) {
            BIO_set_retry_read(bio);  // "not yet", never EOF: the socket's end is reported apart
            return 0;
        }
        size_t n = std::min(size, t.input_.size());
        std::memcpy(into, t.input_.data(), n);
        t.input_.remove_prefix(n);
        if (t.input_.empty()) {
            t.input_buffer_.reset();
            std::string().swap(t.input_copy_);
        }
        *read = n;
        return 1;
    }

    static int write(BIO* bio, const char* bytes, size_t size, size_t* written) {
        BIO_clear_retry_flags(bio);
        of(bio).output_.append_written([&](std::string& out) { out.append(bytes, size); });
        *written = size;
        return 1;
    }

    static long ctrl(BIO* bio, int command, long, void*) {
        switch (command) {
            case BIO_CTRL_FLUSH:  // the bytes go out with flush_output(), after the OpenSSL call
                return 1;
            case BIO_CTRL_PENDING:
                return static_cast<long>(of(bio).input_.size());
            case BIO_CTRL_WPENDING:
                return static_cast<long>(of(bio).output_.bytes());
            default:
                return 0;
        }
    }

    static int create(BIO* bio) {
        BIO_set_init(bio, 1);
        return 1;
    }

    static BIO_METHOD* method() {
        static BIO_METHOD* const m = [] {
            BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "lb transport");
            BIO_meth_set_read_ex(made, &TransportBio::read);
            BIO_meth_set_write_ex(made, &TransportBio::write);
            BIO_meth_set_ctrl(made, &TransportBio::ctrl);
            BIO_meth_set_create(made, &TransportBio::create);
            return made;
        }();
        return m;
    }
};

TlsTransport::TlsTransport(TransportEnv& env, TransportEvents& owner, SSL* ssl, Role role, const void* context,
                           Reporter reporter)
    : env_(env),
      owner_(owner),
      inner_(env, *this),
      ssl_(ssl),
      output_(env.writes),
      role_(role),
      context_(context),
      reporter_(reporter) {
    BIO* bio = BIO_new(TransportBio::method());
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

int TlsTransport::open(int fd) {
    int rc = inner_.open(fd);
    if (rc == 0) inner_.start_reading();  // the ClientHello
    return rc;
}

int TlsTransport::connect(const sockaddr* address) { return inner_.connect(address); }

void TlsTransport::on_transport_connected(int status) {
    if (status != 0) {
        owner_.on_transport_connected(status);
        return;
    }
    inner_.start_reading();
    advance_handshake();  // the ClientHello
}

// ---- handshake ----

void TlsTransport::report(HandshakeResult result) {
    HandshakeReport report{result, false, {}, {}};
    if (result == HandshakeResult::success) {
        report.resumed = info_.resumed;
        report.version = info_.version;
        report.cipher = info_.cipher;
    }
    reporter_(context_, report);
}

void TlsTransport::advance_handshake() {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    if (flush_output() != 0) return;  // the connection failed; the owner has heard or will
    if (rc == 1) {
        handshake_done();
        return;
    }
    int error = SSL_get_error(ssl_, rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return;
    unsigned long code = ERR_peek_last_error();
    long verify = SSL_get_verify_result(ssl_);
    // OpenSSL's own reason for a certificate that does not verify says only "certificate verify failed": the
    // verification result says why (an unknown issuer, a name that does not match, an expired certificate).
    error_ = verify != X509_V_OK
                 ? std::string("certificate verify failed (") + X509_verify_cert_error_string(verify) + ")"
                 : take_openssl_error();
    if (error_.empty()) error_ = "the peer ended the handshake";
    handshake_failed(classify(code, verify), UV_EPROTO);
}

void TlsTransport::handshake_done() {
    handshaking_ = false;
    opened_ = true;
    info_.version = SSL_get_version(ssl_);
    info_.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_));
    if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) info_.server_name = name;
    info_.resumed = SSL_session_reused(ssl_) == 1;
    if (role_ == Role::server && SSL_get_verify_result(ssl_) == X509_V_OK) {
        if (X509* peer = SSL_get0_peer_certificate(ssl_)) info_.verified_subject = subject_of(peer);
    }
    report(HandshakeResult::success);
    if (role_ == Role::client) {
        owner_.on_transport_connected(0);
        if (closing_) return;
        if (early_) {
            std::unique_ptr<WriteBatch> early = std::move(early_);
            if (int rc = write(*early); rc != 0) owner_.on_transport_end(rc);
            if (closing_) return;
        }
    }
    update_reading();
    deliver();  // application data that came with the last handshake flight
}

void TlsTransport::handshake_failed(HandshakeResult result, int status) {
    handshaking_ = false;
    report(result);
    inner_.stop_reading();
    if (role_ == Role::client) {
        owner_.on_transport_connected(status);
    } else {
        owner_.on_transport_end(status);
    }
}

void TlsTransport::answer_plain_http() {
    // A browser or curl pointed at https's port with http://: say so rather than send it a TLS alert it cannot
    // show. Written in the clear, then the connection ends.
    plain_http_ = true;
    handshaking_ = false;
    report(HandshakeResult::plain_http);
    inner_.stop_reading();
    WriteBatch answer(env_.writes);
    answer.append_static(kPlainHttpAnswer);
    if (inner_.write(answer) != 0 || inner_.shutdown() != 0) owner_.on_transport_end(UV_EPROTO);
}

// ---- reading ----

void TlsTransport::on_transport_read(const BufferRef& buffer, std::string_view bytes) {
    if (closing_ || plain_http_) return;
    if (role_ == Role::server && handshaking_ && !saw_bytes_) {
        // A TLS connection opens with a handshake record (22); a request line starts with a letter.
        saw_bytes_ = true;
        if (bytes.front() >= 'A' && bytes.front() <= 'Z') {
            answer_plain_http();
            return;
        }
    }
    saw_bytes_ = true;
    take_input(bytes);
    if (handshaking_) {
        advance_handshake();
    } else if (opened_) {
        deliver();
    }
    // What OpenSSL did not take yet (the owner paused) keeps its read buffer until it does.
    if (!input_.empty() && input_copy_.empty() && !input_buffer_) input_buffer_ = buffer;
}

void TlsTransport::take_input(std::string_view bytes) {
    if (input_.empty()) {
        input_ = bytes;  // the caller holds `buffer` while OpenSSL reads from it
        return;
    }
    // Bytes still waiting, and more: rare (reading stops while any wait), so copied together.
    std::string joined;
    joined.reserve(input_.size() + bytes.size());
    joined.append(input_).append(bytes);
    input_copy_ = std::move(joined);
    input_ = input_copy_;
    input_buffer_.reset();
}

void TlsTransport::deliver() {
    while (opened_ && want_reading_ && !closing_ && !waiting_for_memory_) {
        if (env_.buffers.budget().exhausted()) {
            waiting_for_memory_ = true;
            env_.memory_waiters.push_front(this);
            break;
        }
        BufferRef buffer = env_.buffers.acquire();
        ERR_clear_error();
        int n = SSL_read(ssl_, buffer.data(), static_cast<int>(Buffer::kSize));
        if (n > 0) {
            owner_.on_transport_read(buffer, {buffer.data(), static_cast<size_t>(n)});
            continue;
        }
        int error = SSL_get_error(ssl_, n);
        flush_output();  // what reading may have produced (a key update answered)
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            if (end_pending_) {
                end_pending_ = false;
                owner_.on_transport_end(end_status_);
            }
            break;
        }
        if (error == SSL_ERROR_ZERO_RETURN) {
            owner_.on_transport_end(UV_EOF);  // close_notify
        } else {
            error_ = take_openssl_error();
            owner_.on_transport_end(UV_EPROTO);
        }
        break;
    }
    update_reading();
}

void TlsTransport::on_transport_end(int status) {
    if (closing_) return;
    if (handshaking_) {
        error_ = "the connection ended during the handshake";
        handshake_failed(HandshakeResult::other, status);
        return;
    }
    if (plain_http_) return;
    // Whatever was decrypted before the end goes first; an EOF without close_notify is treated as one, as
    // browsers do (a close-delimited body over TLS relies on it).
    end_pending_ = true;
    end_status_ = status;
    if (want_reading_) {
        deliver();
    }
}

void TlsTransport::start_reading() {
    want_reading_ = true;
    // Plaintext may be waiting already: hand it over on a later turn, never inside the owner's own call.
    if (opened_ && (SSL_pending(ssl_) > 0 || !input_.empty() || end_pending_)) {
        env_.later.defer(*this);
    }
    update_reading();
}

void TlsTransport::stop_reading() {
    want_reading_ = false;
    update_reading();
}

void TlsTransport::on_later_turn() {
    if (want_reading_) deliver();
}

void TlsTransport::resume_after_memory() {
    waiting_for_memory_ = false;
    if (want_reading_) deliver();
}

void TlsTransport::update_reading() {
    if (closing_ || plain_http_) return;
    // The socket is read while a handshake needs bytes, or while the owner wants plaintext and none is left
    // undecrypted: what waits in the BIO is at most one read.
    bool want = handshaking_ || (want_reading_ && !waiting_for_memory_ && input_.empty() && !end_pending_);
    if (want) {
        inner_.start_reading();
    } else {
        inner_.stop_reading();
    }
}

bool TlsTransport::has_unread_input() {
    if (!opened_ || end_pending_ || SSL_pending(ssl_) > 0) return true;
    // Pull in what the socket holds: a TLS 1.3 server's late session tickets are no application data, a record
    // of data or a close_notify is.
    if (input_.empty()) {
        BufferRef buffer = env_.buffers.acquire();
        ssize_t n = inner_.read_available(buffer.data(), Buffer::kSize);
        if (n == 0) return true;                                   // EOF
        if (n < 0) return false;                                   // nothing there
        if (static_cast<size_t>(n) == Buffer::kSize) return true;  // more than late tickets: not an idle peer
        input_ = {buffer.data(), static_cast<size_t>(n)};
        input_buffer_ = std::move(buffer);
    }
    char byte;
    ERR_clear_error();
    int n = SSL_peek(ssl_, &byte, 1);
    flush_output();
    if (n > 0) return true;
    int error = SSL_get_error(ssl_, n);
    return !(error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE);
}

// ---- writing ----

int TlsTransport::encrypt(const char* data, size_t length) {
    while (length > 0) {
        size_t piece = std::min(length, kRecordBytes);
        ERR_clear_error();
        if (SSL_write(ssl_, data, static_cast<int>(piece)) <= 0) {
            error_ = take_openssl_error();
            return UV_EPROTO;
        }
        data += piece;
        length -= piece;
    }
    return 0;
}

int TlsTransport::write(WriteBatch& batch) {
    if (closing_) {
        batch.clear();
        return UV_ECANCELED;
    }
    if (!opened_) {
        if (role_ != Role::client || !handshaking_) {
            batch.clear();
            return UV_ENOTCONN;
        }
        // Written before the handshake finished: sent once it has.
        if (!early_) early_ = std::make_unique<WriteBatch>(env_.writes);
        std::unique_ptr<WriteRequest> request = batch.take();
        if (request) {
            request->fill_bufs(0);
            for (const auto& b : request->bufs) early_->append_copy({b.base, b.len});
            env_.writes.recycle(std::move(request));
        }
        return 0;
    }
    std::unique_ptr<WriteRequest> request = batch.take();
    if (!request) return 0;
    request->fill_bufs(0);
    // Small pieces (a head, chunk framing) gather into one record; large ones are encrypted where they lie.
    thread_local char scratch[kRecordBytes];
    size_t gathered = 0;
    int rc = 0;
    for (const auto& b : request->bufs) {
        if (rc != 0) break;
        if (gathered == 0 && b.len >= kRecordBytes) {
            rc = encrypt(b.base, b.len);
            continue;
        }
        size_t offset = 0;
        while (offset < b.len && rc == 0) {
            size_t piece = std::min<size_t>(b.len - offset, sizeof scratch - gathered);
            std::memcpy(scratch + gathered, b.base + offset, piece);
            gathered += piece;
            offset += piece;
            if (gathered == sizeof scratch) {
                rc = encrypt(scratch, gathered);
                gathered = 0;
            }
        }
    }
    if (rc == 0 && gathered > 0) rc = encrypt(scratch, gathered);
    env_.writes.recycle(std::move(request));
    if (rc != 0) return rc;
    return flush_output();
}

int TlsTransport::flush_output() {
    if (output_.empty()) return 0;
    return inner_.write(output_);
}

void TlsTransport::on_transport_written(int status) {
    if (opened_ || status < 0) owner_.on_transport_written(status);
}

// ---- ending ----

int TlsTransport::shutdown() {
    if (closing_) return UV_ECANCELED;
    if (opened_) {
        ERR_clear_error();
        SSL_shutdown(ssl_);  // close_notify
        if (int rc = flush_output(); rc != 0) return rc;
    }
    return inner_.shutdown();
}

void TlsTransport::end_and_close() {
    if (opened_ && !closing_) {
        // close_notify: a client reading to the end sees a clean end (OpenSSL 3 reports a bare EOF as an error
        // and drops the session). The alert goes out with the socket's next write, at once on an idle one.
        ERR_clear_error();
        SSL_shutdown(ssl_);
        ERR_clear_error();
        (void)flush_output();
    }
    close();
}

void TlsTransport::on_transport_shutdown(int status) {
    if (plain_http_) {
        owner_.on_transport_end(UV_EPROTO);
        return;
    }
    owner_.on_transport_shutdown(status);
}

void TlsTransport::close() {
    if (closing_) return;
    // The owner gave up on a handshake still under way: its header deadline passed (or the worker drains).
    if (handshaking_ && !plain_http_) {
        handshaking_ = false;
        report(HandshakeResult::timeout);
    }
    // OpenSSL marks the session of an SSL freed without a shutdown as not resumable, and a client context keeps
    // that very session for its next connection. A connection the owner closes after a good handshake and no TLS
    // error ended well (a response read whole, an idle one no longer kept), so its session stays resumable, as
    // nginx keeps it: a quiet shutdown only sets the flags, it sends nothing.
    if (opened_ && error_.empty()) {
        SSL_set_quiet_shutdown(ssl_, 1);
        SSL_shutdown(ssl_);
        ERR_clear_error();
    }
    closing_ = true;
    env_.memory_waiters.remove(this);
    env_.later.cancel(*this);
    inner_.close();
}

void TlsTransport::on_transport_closed() {
    owner_.on_transport_closed();  // may free this transport: nothing after it
}

}  // namespace lb::net
