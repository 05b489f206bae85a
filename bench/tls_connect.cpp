// tls_connect: new TLS connections one after another, for bench/run's handshake scenarios. Each connection: TCP
// connect, TLS handshake, one keep-alive "GET / HTTP/1.1", its response read whole (Content-Length), then the
// client ends it as a browser ends an idle connection: close_notify, then close. The client closing first matters:
// a session stays resumable only where the connection ended cleanly, and a server's close without close_notify
// would leave nothing to resume (openssl s_time -www waits for the server to close).
//
// Usage: tls_connect HOST PORT SECONDS new|reuse [CIPHERSUITES]
//   new    a full handshake on every connection (no session offered)
//   reuse  the session (ticket) from the first connection offered on every later one
// Prints one line at the end:  BENCH {"full": N, "resumed": N, "errors": N, "seconds": S}
// The certificate is not verified: the bench checks each proxy's certificate before measuring.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kRequest = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

int connect_to(const sockaddr_in& address) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// The body length a response head announces, or -1.
long content_length(std::string_view head) {
    constexpr std::string_view kName = "content-length:";
    for (size_t start = head.find("\r\n"); start != std::string_view::npos;) {
        size_t end = head.find("\r\n", start + 2);
        std::string_view line = head.substr(start + 2, end == std::string_view::npos ? end : end - start - 2);
        if (line.size() > kName.size() && strncasecmp(line.data(), kName.data(), kName.size()) == 0) {
            return std::strtol(std::string(line.substr(kName.size())).c_str(), nullptr, 10);
        }
        start = end;
    }
    return -1;
}

// Reads one response whole. False on anything else.
bool read_response(SSL* ssl) {
    std::string data;
    char chunk[16384];
    size_t head_end = std::string::npos;
    long body = -1;
    for (;;) {
        if (head_end != std::string::npos && data.size() >= head_end + 4 + static_cast<size_t>(body)) return true;
        int n = SSL_read(ssl, chunk, sizeof chunk);
        if (n <= 0) return false;
        data.append(chunk, static_cast<size_t>(n));
        if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
            if (data.compare(0, 12, "HTTP/1.1 200") != 0) return false;
            body = content_length(std::string_view(data).substr(0, head_end + 2));
            if (body < 0) return false;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5 || (std::strcmp(argv[4], "new") != 0 && std::strcmp(argv[4], "reuse") != 0)) {
        std::fprintf(stderr, "usage: tls_connect HOST PORT SECONDS new|reuse [CIPHERSUITES]\n");
        return 2;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) {
        std::fprintf(stderr, "tls_connect: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    const double seconds = std::atof(argv[3]);
    const bool reuse = std::strcmp(argv[4], "reuse") == 0;

    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    if (argc > 5 && SSL_CTX_set_ciphersuites(ctx, argv[5]) != 1) {
        std::fprintf(stderr, "tls_connect: ciphersuites %s rejected\n", argv[5]);
        return 2;
    }
    // Sessions stay with this program, not in OpenSSL's client cache.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    SSL_SESSION* session = nullptr;
    long full = 0, resumed = 0, errors = 0;
    std::string first_error;
    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    while (elapsed() < seconds) {
        int fd = connect_to(address);
        if (fd < 0) {
            ++errors;
            if (first_error.empty()) first_error = std::string("connect: ") + std::strerror(errno);
            continue;
        }
        SSL* ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "localhost");
        if (session) SSL_set_session(ssl, session);
        ERR_clear_error();
        bool ok = SSL_connect(ssl) == 1 && SSL_write(ssl, kRequest.data(), static_cast<int>(kRequest.size())) > 0 &&
                  read_response(ssl);
        if (ok) {
            (SSL_session_reused(ssl) ? resumed : full) += 1;
            // The first session once its tickets have come (TLS 1.3 sends them after the handshake, before the
            // response), kept for every later connection, as openssl s_time -reuse does.
            if (reuse && !session) session = SSL_get1_session(ssl);
            SSL_shutdown(ssl);  // close_notify: a clean end, the session stays resumable
        } else {
            ++errors;
            if (first_error.empty()) {
                char text[256];
                ERR_error_string_n(ERR_peek_last_error(), text, sizeof text);
                first_error = text;
            }
        }
        SSL_free(ssl);
        close(fd);
    }
    std::printf("BENCH {\"full\": %ld, \"resumed\": %ld, \"errors\": %ld, \"seconds\": %.3f}\n", full, resumed, errors,
                elapsed());
    if (!first_error.empty()) std::fprintf(stderr, "tls_connect: first error: %s\n", first_error.c_str());
    if (session) SSL_SESSION_free(session);
    SSL_CTX_free(ctx);
    return 0;
}
