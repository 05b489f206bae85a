#include "test/support/tls_bridge.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace lb::test {

namespace {

constexpr size_t kPiece = 16 * 1024;

sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

std::string openssl_reason() {
    unsigned long last = 0;
    while (unsigned long e = ERR_get_error()) last = e;
    if (last == 0) return std::strerror(errno);
    const char* reason = ERR_reason_error_string(last);
    return reason ? reason : "OpenSSL error";
}

// The Client sees a reset, as it would from a server whose TLS broke.
void close_with_reset(int fd) {
    linger abort{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    ::close(fd);
}

struct SslContextFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};

}  // namespace

TlsBridge::TlsBridge(Options options) : options_(std::move(options)) {
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(0);
    socklen_t size = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 4) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
        int saved = errno;
        if (listener_ >= 0) ::close(listener_);
        ::close(wake_[0]);
        ::close(wake_[1]);
        throw std::system_error(saved, std::generic_category(), "TlsBridge: listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
}

TlsBridge::~TlsBridge() {
    char stop = 's';
    (void)!::write(wake_[1], &stop, 1);
    thread_.join();
    ::close(listener_);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

std::string TlsBridge::error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

std::string TlsBridge::version() const {
    std::lock_guard lock(mutex_);
    return version_;
}

void TlsBridge::finish(End end, const std::string& error) {
    {
        std::lock_guard lock(mutex_);
        error_ = error;
    }
    end_.store(end);
}

void TlsBridge::run() {
    pollfd first[2] = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    while (::poll(first, 2, -1) < 0 && errno == EINTR) {
    }
    if (first[1].revents != 0) return;
    int plain = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (plain < 0) return;

    int tls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in server = loopback(options_.tls_port);
    if (tls < 0 || ::connect(tls, reinterpret_cast<sockaddr*>(&server), sizeof server) != 0) {
        finish(End::handshake_failed, std::string("connect: ") + std::strerror(errno));
        if (tls >= 0) ::close(tls);
        close_with_reset(plain);
        return;
    }
    int one = 1;
    ::setsockopt(tls, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(tls, F_SETFL, ::fcntl(tls, F_GETFL) | O_NONBLOCK);

    std::unique_ptr<SSL_CTX, SslContextFree> context(SSL_CTX_new(TLS_client_method()));
    std::unique_ptr<SSL, SslFree> ssl;
    std::string setup_error;
    if (context) {
        SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
        if (options_.tls1_2_only) SSL_CTX_set_max_proto_version(context.get(), TLS1_2_VERSION);
        if (!options_.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(context.get(), options_.ca_file.c_str(), nullptr) != 1) {
                setup_error = "ca_file: " + openssl_reason();
            }
            SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
        }
        if (!options_.client_cert.empty() &&
            (SSL_CTX_use_certificate_chain_file(context.get(), options_.client_cert.c_str()) != 1 ||
             SSL_CTX_use_PrivateKey_file(context.get(), options_.client_key.c_str(), SSL_FILETYPE_PEM) != 1)) {
            setup_error = "client certificate: " + openssl_reason();
        }
        static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        SSL_CTX_set_alpn_protos(context.get(), kHttp11, sizeof kHttp11);
        ssl.reset(SSL_new(context.get()));
    }
    if (!ssl || !setup_error.empty()) {
        finish(End::handshake_failed, setup_error.empty() ? "SSL_new failed" : setup_error);
        ::close(tls);
        close_with_reset(plain);
        return;
    }
    SSL* s = ssl.get();
    SSL_set_fd(s, tls);
    if (!options_.server_name.empty()) {
        SSL_set_tlsext_host_name(s, options_.server_name.c_str());
        if (!options_.ca_file.empty()) SSL_set1_host(s, options_.server_name.c_str());
    }
    SSL_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_connect_state(s);

    bool handshake_done = false;
    std::string to_tls;    // from the Client, waiting for SSL_write
    std::string to_plain;  // from the server, waiting for the Client to take it
    bool plain_eof = false;
    bool plain_closed = false;  // the server's end was passed on (FIN or reset)
    bool server_done = false;   // nothing more will come from the server
    End server_end = End::open;
    std::string server_error;
    bool notify_sent = false;
    char buffer[kPiece];

    for (;;) {
        bool want_read = false;
        bool want_write = false;
        ERR_clear_error();
        if (!handshake_done) {
            int rc = SSL_connect(s);
            if (rc == 1) {
                handshake_done = true;
                std::lock_guard lock(mutex_);
                version_ = SSL_get_version(s);
            } else {
                int e = SSL_get_error(s, rc);
                if (e == SSL_ERROR_WANT_READ) {
                    want_read = true;
                } else if (e == SSL_ERROR_WANT_WRITE) {
                    want_write = true;
                } else {
                    finish(End::handshake_failed, openssl_reason());
                    close_with_reset(plain);
                    plain = -1;
                    break;
                }
            }
        }
        if (handshake_done) {
            // Server to Client: one piece at a time, the next only once the Client has taken it.
            while (!server_done && to_plain.empty()) {
                int rc = SSL_read(s, buffer, sizeof buffer);
                if (rc > 0) {
                    to_plain.assign(buffer, static_cast<size_t>(rc));
                    break;
                }
                int e = SSL_get_error(s, rc);
                if (e == SSL_ERROR_WANT_READ) {
                    want_read = true;
                    break;
                }
                if (e == SSL_ERROR_WANT_WRITE) {
                    want_write = true;
                    break;
                }
                server_done = true;
                if (e == SSL_ERROR_ZERO_RETURN) {
                    server_end = End::close_notify;
                } else if (e == SSL_ERROR_SYSCALL) {
                    server_end = errno == 0 ? End::eof_without_notify : End::reset;
                } else if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                    server_end = End::eof_without_notify;
                    ERR_clear_error();
                } else {
                    server_end = End::tls_error;
                    server_error = openssl_reason();
                }
            }
            if (!to_plain.empty() && plain >= 0) {
                ssize_t n = ::send(plain, to_plain.data(), to_plain.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                    to_plain.erase(0, static_cast<size_t>(n));
                } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    to_plain.clear();  // the Client is gone
                    plain_eof = true;
                }
            }
            if (server_done && to_plain.empty() && !plain_closed) {
                // The end is recorded before the Client can see it, so a test that saw it may ask end().
                finish(server_end, server_error);
                plain_closed = true;
                if (server_end == End::reset || server_end == End::tls_error) {
                    close_with_reset(plain);
                    plain = -1;
                } else {
                    ::shutdown(plain, SHUT_WR);
                }
            }
            // Client to server, likewise one piece at a time.
            if (to_tls.empty() && !plain_eof && plain >= 0) {
                ssize_t n = ::recv(plain, buffer, sizeof buffer, MSG_DONTWAIT);
                if (n > 0) {
                    to_tls.assign(buffer, static_cast<size_t>(n));
                } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    plain_eof = true;
                }
            }
            if (!to_tls.empty()) {
                int rc = server_done ? -1 : SSL_write(s, to_tls.data(), static_cast<int>(to_tls.size()));
                if (rc > 0) {
                    to_tls.erase(0, static_cast<size_t>(rc));
                } else if (server_done) {
                    to_tls.clear();
                } else {
                    int e = SSL_get_error(s, rc);
                    if (e == SSL_ERROR_WANT_WRITE) {
                        want_write = true;
                    } else if (e == SSL_ERROR_WANT_READ) {
                        want_read = true;
                    } else {
                        to_tls.clear();  // the server is gone; its end shows on the read side
                        ERR_clear_error();
                    }
                }
            }
            if (plain_eof && to_tls.empty() && !notify_sent && !server_done) {
                notify_sent = true;
                SSL_shutdown(s);  // close_notify; the server may still answer
                ERR_clear_error();
            }
            if (plain_closed && (plain_eof || plain < 0)) break;
            // Whenever the Client has taken everything, wait for more from the server (SSL_read may have returned
            // data without reaching WANT_READ).
            if (!server_done && to_plain.empty()) want_read = true;
        }

        pollfd fds[3];
        nfds_t count = 0;
        fds[count++] = {wake_[0], POLLIN, 0};
        if (plain >= 0) {
            short events = static_cast<short>((handshake_done && to_tls.empty() && !plain_eof ? POLLIN : 0) |
                                              (!to_plain.empty() ? POLLOUT : 0));
            if (events != 0) fds[count++] = {plain, events, 0};
        }
        short tls_events = static_cast<short>((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
        if (tls_events != 0) fds[count++] = {tls, tls_events, 0};
        if (count == 1) break;  // nothing left to wait for
        // Decrypted bytes OpenSSL already holds do not make the socket readable: look again at once.
        int timeout = handshake_done && to_plain.empty() && SSL_pending(s) > 0 ? 0 : -1;
        int rc = ::poll(fds, count, timeout);
        if (rc < 0 && errno != EINTR) break;
        if (fds[0].revents != 0) break;
    }
    ssl.reset();
    ::close(tls);
    if (plain >= 0) ::close(plain);
}

}  // namespace lb::test
