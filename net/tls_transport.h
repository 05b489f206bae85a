// TLS under the Transport interface, over a TcpTransport, on the worker's own loop: ciphertext goes through a BIO
// of lb's own, so OpenSSL never touches the socket and the owner (a client session, an upstream connection) sees
// plaintext only, exactly as over plain TCP. No thread, no lock.
//
// The BIO holds no buffer: OpenSSL reads ciphertext from the bytes the socket just gave (kept, with their read
// buffer, only while the owner is not reading), and writes it into the transport's next write. Memory BIOs kept
// the capacity of the largest flight they carried, about 2 KiB on every idle connection after its handshake.
//
// Server side: the handshake runs as bytes arrive (its time counts against the owner's header deadline); plain
// HTTP sent to the TLS port gets a 400 saying so, in plain text, and the connection ends. Client side: connect()
// is the TCP connect and the handshake; on_transport_connected reports both, a verification failure included.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "net/tcp_transport.h"
#include "net/tls_context.h"

namespace lb::net {

// What a TLS connection learned in its handshake, for the owner (headers to the backend, logs).
struct TlsSessionInfo {
    std::string_view version;
    std::string_view cipher;
    std::string_view server_name;  // SNI the client sent, or empty
    std::string verified_subject;  // the client certificate's subject (RFC 2253) when one verified, or empty
    bool resumed = false;
};

class TlsTransport final : public Transport, private TransportEvents {
  public:
    enum class Role { server, client };
    // Who hears how each handshake ended (the TLS context the session came from).
    using Reporter = void (*)(const void* context, const HandshakeReport& report);

    // Takes ownership of `ssl` (made by a TlsServerContext or TlsClientContext matching `role`).
    TlsTransport(TransportEnv& env, TransportEvents& owner, SSL* ssl, Role role, const void* context,
                 Reporter reporter);
    ~TlsTransport() override;
    TlsTransport(const TlsTransport&) = delete;
    TlsTransport& operator=(const TlsTransport&) = delete;

    // Server side: an accepted socket; the handshake starts with the client's first bytes. On failure the
    // descriptor is closed and the transport must still be closed.
    int open(int fd);

    int connect(const sockaddr* address) override;
    void start_reading() override;
    void stop_reading() override;
    int write(WriteBatch& batch) override;
    size_t queued_bytes() const override { return inner_.queued_bytes(); }
    int shutdown() override;
    void close() override;
    void end_and_close() override;
    bool has_unread_input() override;
    void resume_after_memory() override;
    void on_later_turn() override;
    const TlsSessionInfo* tls_info() const override { return opened_ ? &info_ : nullptr; }
    // The last TLS error, for a log line ("certificate verify failed", ...).
    std::string_view error_detail() const override { return error_; }

  private:
    // The TCP transport below.
    void on_transport_read(const BufferRef& buffer, std::string_view bytes) override;
    void on_transport_end(int status) override;
    void on_transport_connected(int status) override;
    void on_transport_written(int status) override;
    void on_transport_shutdown(int status) override;
    void on_transport_closed() override;

    void advance_handshake();
    void handshake_done();
    void handshake_failed(HandshakeResult result, int status);
    void deliver();
    int flush_output();
    void update_reading();
    void answer_plain_http();
    int encrypt(const char* data, size_t length);
    void report(HandshakeResult result);
    void take_input(std::string_view bytes);

    // The BIO method's callbacks: `bio`'s data is the transport.
    friend struct TransportBio;

    TransportEnv& env_;
    TransportEvents& owner_;
    TcpTransport inner_;
    SSL* ssl_;
    // Ciphertext read and not yet taken by OpenSSL: a view into input_buffer_ (or into input_copy_, in the rare
    // case of bytes arriving while some still wait). Empty almost always between reads.
    std::string_view input_;
    BufferRef input_buffer_;
    std::string input_copy_;
    WriteBatch output_;  // ciphertext OpenSSL wrote, for the socket's next write
    Role role_;
    const void* context_;
    Reporter reporter_;
    TlsSessionInfo info_;
    std::string error_;
    std::unique_ptr<WriteBatch> early_;  // written by the owner before the handshake finished (client side)
    bool handshaking_ = true;
    bool opened_ = false;
    bool want_reading_ = false;
    bool waiting_for_memory_ = false;
    bool end_pending_ = false;  // the peer finished: to tell the owner once it has read what came before
    int end_status_ = 0;
    bool plain_http_ = false;
    bool saw_bytes_ = false;
    bool closing_ = false;
};

}  // namespace lb::net
