// The demo backend: a small, fast HTTP/1.1 server whose responses are steered by query parameters (status, delay,
// size, chunking, echo, drops...; see request_controls.h). It says who served each request (X-Backend-Id,
// X-Conn-Id, X-Conn-Request) so tests can assert what a proxy did. With a certificate it serves HTTPS instead
// (HTTP/1.1 over TLS 1.2 or 1.3, every control the same), optionally requiring a client certificate. Used in-process by
// tests (port 0), as the lb-demo-backend executable by the run command and benchmarks.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lb::demo {

struct BackendState;
class TlsServerContext;
class Worker;

struct DemoBackendOptions {
    std::string host = "127.0.0.1";  // IPv4 or IPv6 literal
    uint16_t port = 0;               // 0: an ephemeral port, see DemoBackend::port()
    std::string id = "b1";           // X-Backend-Id and the default body "<id>\n"
    unsigned threads = 1;            // loops, each with its own SO_REUSEPORT listener on the same port (0 means 1)
    bool silent = false;             // accept connections but never read from them nor answer (until stop())
    // HTTPS when tls_cert is set: PEM files of the certificate (leaf first, then its chain) and its key. With
    // tls_client_ca (PEM CA certificates) every client must present a certificate that chains to one of them.
    // Every response on a TLS connection then says what was agreed: X-TLS-Version ("TLSv1.3"), X-TLS-SNI (the
    // name the client sent, if any) and X-TLS-Client (the verified client certificate's subject, RFC 2253).
    std::string tls_cert{};
    std::string tls_key{};
    std::string tls_client_ca{};
};

// Not thread-safe itself: start() and stop() are called from one controlling thread. The counters may be read
// from any thread.
class DemoBackend {
  public:
    explicit DemoBackend(DemoBackendOptions options);
    ~DemoBackend();  // stop() if running
    DemoBackend(const DemoBackend&) = delete;
    DemoBackend& operator=(const DemoBackend&) = delete;

    // Binds every thread's listener and starts the loop threads. On return port() is valid and connections are
    // accepted. Throws std::system_error (bind failure...), std::runtime_error (a TLS file OpenSSL cannot use) or
    // std::logic_error (already running); on a throw nothing is left running or open.
    void start();
    // Closes every listener and connection, joins the threads; each loop ends with uv_loop_close() == 0.
    // Idempotent; a stopped backend may be started again (connection serials continue).
    void stop();

    uint16_t port() const { return port_; }
    uint64_t connections_accepted() const;
    int64_t connections_open() const;  // accepted and not yet closed
    uint64_t requests_served() const;  // responses started, error responses included; drops are not counted
    // Backpressure as the backend sees it (see BackendState): how many times a connection stopped reading because
    // its peer was not reading its responses, how many are stopped now, and the longest write queue seen (bytes
    // accepted but not yet taken by the kernel).
    uint64_t backpressure_stops() const;
    int64_t connections_held_back() const;
    uint64_t write_queue_peak_bytes() const;
    // TLS: handshakes completed, of them the resumed sessions, and connections that failed TLS (a refused
    // handshake, a protocol error). Zero without TLS.
    uint64_t tls_handshakes() const;
    uint64_t tls_resumed() const;
    uint64_t tls_failures() const;
    // Any thread: delays every later response by `ms` more (0 restores normal speed).
    void set_extra_delay(std::chrono::milliseconds ms);
    const DemoBackendOptions& options() const { return options_; }

  private:
    DemoBackendOptions options_;
    std::unique_ptr<BackendState> state_;
    std::unique_ptr<TlsServerContext> tls_;  // made by the first start() with tls_cert set
    std::vector<std::unique_ptr<Worker>> workers_;
    uint16_t port_ = 0;
};

// The lb-demo-backend command line: --port N --id ID [--host H] [--threads N] [--silent] [--tls-cert FILE
// --tls-key FILE [--tls-client-ca FILE]] [--help]. Prints
// "lb-demo-backend <id> listening on <host>:<port>" once accepting, runs until SIGINT or SIGTERM, then stops
// cleanly and returns 0; returns 2 on bad arguments, 1 when it cannot start.
int demo_backend_main(int argc, char** argv);

}  // namespace lb::demo
