// OpenSSL contexts built from net/tls_config.h, one per listener (server side) or backend (client side) in each
// worker: each worker has its own, so its session cache is its own and no handshake waits on another worker's
// lock. What workers share is read-only: the ticket key secret, from which every worker derives the same keys.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/tls_config.h"

namespace lb::net {

// How one handshake ended, for metrics. A closed set: each failure kind is what operators tell apart.
enum class HandshakeResult : uint8_t {
    success,
    no_shared_cipher,       // no version, cipher or group both sides accept
    unknown_ca,             // a certificate that does not verify (the client's, or the backend's)
    no_client_certificate,  // a client certificate was required and none was given (by the client, or by lb)
    timeout,                // the peer stalled mid-handshake (timeouts.client_header on listeners)
    plain_http,             // plain HTTP sent to a TLS listener
    other,                  // any other protocol error, or the peer went away
    count
};
std::string_view to_string(HandshakeResult result);

struct HandshakeReport {
    HandshakeResult result = HandshakeResult::other;
    bool resumed = false;
    std::string_view version;  // "TLSv1.3"
    std::string_view cipher;   // "TLS_AES_128_GCM_SHA256"
};

// Told of every handshake a context's connections finish or fail (the shard records metrics).
class HandshakeObserver {
  public:
    virtual void on_handshake(size_t context_index, const HandshakeReport& report) = 0;

  protected:
    ~HandshakeObserver() = default;
};

// The secret session ticket keys derive from, shared read-only by every worker (and, from a file, by every lb
// instance given it). Keys rotate by time: the key for epoch N = now / rotation is derived, not stored, so no
// worker needs to be told of a rotation, and tickets of the previous epoch still decrypt.
class TicketSecret {
  public:
    // A random secret for this process, or the first 48 bytes of `file`. Throws std::runtime_error.
    static std::shared_ptr<const TicketSecret> load(const std::string& file, std::chrono::seconds rotation);
    // A secret of its own for one session context (what a session was authenticated under): tickets issued under
    // one context are unknown under another, though both come from this secret. Same rotation.
    std::shared_ptr<const TicketSecret> derive(const std::vector<unsigned char>& context) const;
    const std::vector<unsigned char>& bytes() const { return bytes_; }
    std::chrono::seconds rotation() const { return rotation_; }

  private:
    std::vector<unsigned char> bytes_;
    std::chrono::seconds rotation_{3600};
};

// A certificate's names and expiry, for /status and the expiry gauge.
struct CertificateInfo {
    std::string file;
    std::vector<std::string> names;  // DNS subject alternative names (or the common name when there are none)
    int64_t not_after_unix = 0;
};

// A TLS listener's contexts in one worker: the default certificate's and one per other name set, chosen by SNI.
class TlsServerContext {
  public:
    // Throws std::runtime_error naming the file and what is wrong.
    TlsServerContext(const TlsListenerConfig& config, std::shared_ptr<const TicketSecret> tickets,
                     HandshakeObserver* observer, size_t index);
    ~TlsServerContext();
    TlsServerContext(const TlsServerContext&) = delete;
    TlsServerContext& operator=(const TlsServerContext&) = delete;

    // A new server-side session, owned by the caller (SSL_free).
    SSL* new_session() const;
    const std::vector<CertificateInfo>& certificates() const { return infos_; }
    const TlsListenerConfig& config() const { return config_; }
    void report(const HandshakeReport& report) const;

  private:
    // An OCSP response (DER) and the certificate it speaks for: an RSA and an ECDSA certificate in one context
    // each staple their own, and one without a response staples none.
    struct Stapled {
        X509* cert;  // a reference of our own: a later certificate of the same type replaces it in the context
        std::vector<unsigned char> response;
    };
    struct Named {
        SSL_CTX* ctx;
        std::vector<std::string> names;
        std::unique_ptr<std::vector<Stapled>> stapled;  // on the heap: OpenSSL's status callback points at it
    };
    SSL_CTX* make_context();
    void release();  // frees every context and stapled certificate
    SSL_CTX* context_for(std::string_view server_name) const;
    static int on_servername(SSL* ssl, int* alert, void* arg);

    TlsListenerConfig config_;
    // What a resumed session must have been established under: whether and against which CAs client certificates
    // were verified. A session made without a client certificate never resumes where one is required, on another
    // listener sharing the ticket key file or after a reload that starts asking for certificates.
    std::vector<unsigned char> session_context_;
    std::shared_ptr<const TicketSecret> tickets_;  // derived for session_context_
    HandshakeObserver* observer_;
    size_t index_;
    std::vector<Named> contexts_;  // [0] is the default
    std::vector<CertificateInfo> infos_;
};

// TLS towards one backend in one worker: verification, SNI, a client certificate, and the last session kept for
// resumption on the next connection.
class TlsClientContext {
  public:
    // `host` is the backend's host as configured: the default SNI and the name verified. Throws.
    TlsClientContext(const TlsUpstreamConfig& config, std::string host, HandshakeObserver* observer, size_t index);
    ~TlsClientContext();
    TlsClientContext(const TlsClientContext&) = delete;
    TlsClientContext& operator=(const TlsClientContext&) = delete;

    SSL* new_session();
    void report(const HandshakeReport& report) const;

  private:
    static int on_new_session(SSL* ssl, SSL_SESSION* session);

    SSL_CTX* ctx_ = nullptr;
    std::string sni_;
    std::string verify_name_;
    bool verify_name_is_ip_ = false;
    bool verify_;
    SSL_SESSION* last_session_ = nullptr;
    HandshakeObserver* observer_;
    size_t index_;
};

// lb's ex data slots: in an SSL_CTX, its owning context object; in an SSL, the ticket secret.
int ctx_ex_index();
int ssl_ex_index();

}  // namespace lb::net
