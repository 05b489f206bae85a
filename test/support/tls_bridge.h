// A plaintext port in front of a TLS server, so that the blocking test Client (and its response parser, and its
// raw socket tricks) can speak HTTPS: connect a Client to bridge.port() and what it sends goes to the server over
// TLS, what the server sends comes back decrypted.
//
//     lb::test::TlsBridge bridge({.tls_port = server.port(), .ca_file = test_certs().ca.cert});
//     lb::test::Client client(bridge.port());
//     client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//     Response r = client.read_response();
//
// The bridge takes one connection and opens one TLS connection for it (verifying the server's certificate against
// `ca_file` and `server_name`, presenting a client certificate when given). It relays at most 16 KiB each way at a
// time and reads a side only when the other has taken what came before, so backpressure passes through: a Client
// that stops reading stops the bridge reading the server, as a direct TLS client would. How each side ends is
// passed on: the Client's FIN becomes close_notify (the server may still answer); the server's close_notify or
// FIN becomes a FIN to the Client, a reset or a TLS error a reset.
//
// The relay runs on a thread of its own (no Catch calls there); the destructor stops it and closes everything.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace lb::test {

class TlsBridge {
  public:
    struct Options {
        uint16_t tls_port = 0;                  // the TLS server, on 127.0.0.1
        std::string ca_file;                    // PEM CAs to verify the server against; empty: no verification
        std::string server_name = "localhost";  // SNI and the name verified; empty: no SNI, name not verified
        std::string client_cert{};              // PEM client certificate and key, or empty for none
        std::string client_key{};
        bool tls1_2_only = false;  // offer TLS 1.2 alone (the default offers 1.2 and 1.3)
    };

    // How the TLS connection ended, as the bridge saw it.
    enum class End {
        open,                // not yet
        close_notify,        // the server sent close_notify (then, or later, its FIN)
        eof_without_notify,  // the server closed TCP without close_notify (a cut response)
        reset,               // the server reset TCP
        handshake_failed,    // the handshake did not complete (see error())
        tls_error,           // a TLS alert or protocol error after the handshake (see error())
    };

    // Listens on 127.0.0.1 (an ephemeral port) and starts the relay thread. Throws std::runtime_error when it
    // cannot listen.
    explicit TlsBridge(Options options);
    ~TlsBridge();
    TlsBridge(const TlsBridge&) = delete;
    TlsBridge& operator=(const TlsBridge&) = delete;

    uint16_t port() const { return port_; }
    End end() const { return end_.load(); }
    // OpenSSL's reason for handshake_failed or tls_error ("tlsv13 alert certificate required").
    std::string error() const;
    // Once the handshake is done: the negotiated version ("TLSv1.3"), whether the session was resumed.
    std::string version() const;

  private:
    void run();
    void finish(End end, const std::string& error = "");

    Options options_;
    int listener_ = -1;
    int wake_[2] = {-1, -1};  // a pipe: the destructor writes to stop the relay
    uint16_t port_ = 0;
    std::atomic<End> end_{End::open};
    mutable std::mutex mutex_;  // guards error_ and version_
    std::string error_;
    std::string version_;
    std::thread thread_;
};

}  // namespace lb::test
