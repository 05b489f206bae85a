// TLS for the demo backend (HTTPS: HTTP/1.1 over TLS 1.2 or 1.3), with OpenSSL over memory BIOs: a connection
// hands the ciphertext it reads to its TlsSession and writes out the ciphertext the session produces, so OpenSSL
// never touches the socket and the connection keeps its own reading, writing and backpressure as they are.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

// OpenSSL's types, declared as its own headers do, so that this header does not pull them in.
struct ssl_ctx_st;
struct ssl_st;

namespace lb::demo {

// The server side's SSL_CTX: a certificate chain and key, and optionally the CAs a client certificate must chain
// to (then one is required). Shared, read-only, by every thread of a backend.
class TlsServerContext {
  public:
    // `cert_file`: PEM, the leaf first then its chain; `key_file`: its PEM key; `client_ca_file`: PEM CA
    // certificates, or empty for no client certificates. Throws std::runtime_error naming the file that OpenSSL
    // could not use, with its reason.
    TlsServerContext(const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file);
    ~TlsServerContext();
    TlsServerContext(const TlsServerContext&) = delete;
    TlsServerContext& operator=(const TlsServerContext&) = delete;

    ssl_ctx_st* get() const { return context_; }

  private:
    ssl_ctx_st* context_ = nullptr;
};

// One connection's TLS state. Not thread-safe: used on its connection's loop only.
class TlsSession {
  public:
    explicit TlsSession(const TlsServerContext& context);
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Ciphertext read from the peer, all of it kept until read() has decrypted it.
    void put_ciphertext(const char* data, size_t size);

    enum class ReadResult {
        data,       // `n` bytes of plaintext are in `out`
        want_more,  // everything received so far is used up (the handshake may have moved on: see output())
        closed,     // the peer sent close_notify: no more data will come
        failed,     // a protocol error or a refused handshake (an alert may be in output()); the connection is done
    };
    // Decrypts into `out`, driving the handshake first. Call until it returns something other than `data`.
    ReadResult read(std::span<char> out, size_t& n);

    // Encrypts all of `data` into output(). False on a protocol error (the connection is done).
    bool write(std::string_view data);
    // Queues close_notify into output(): the peer learns that the response ended where it did.
    void shutdown();

    // Ciphertext to send, in order; clear_output() once it is taken.
    std::string_view output() const;
    void clear_output();

    bool handshake_done() const;
    // Once the handshake is done: "TLSv1.3", the SNI name the client sent (empty if none), the subject of the
    // client certificate that was verified (empty if none), whether the session was resumed.
    std::string version() const;
    std::string server_name() const;
    std::string client_subject() const;
    bool resumed() const;
    // Why the last read() failed, for logs: OpenSSL's reason ("certificate verify failed", "wrong version number").
    const std::string& failure() const { return failure_; }

  private:
    ssl_st* ssl_ = nullptr;
    std::string failure_;
};

}  // namespace lb::demo
