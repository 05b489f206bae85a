#include "test/support/tls_responder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "net/tls_transport.h"

namespace lb::test {

namespace {

constexpr std::string_view kKeepAliveAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
constexpr std::string_view kCloseDelimitedAnswer = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok";

}  // namespace

// One accepted connection: answers each request head it reads, in order. Freed once its transport has closed.
class TlsResponder::Connection final : public net::TransportEvents {
  public:
    Connection(TlsResponder& owner, SSL* ssl)
        : owner_(owner),
          transport_(owner.env_, *this, ssl, net::TlsTransport::Role::server, owner.context_.get(),
                     [](const void* context, const net::HandshakeReport& report) {
                         static_cast<const net::TlsServerContext*>(context)->report(report);
                     }) {}

    bool open(int fd) {
        if (transport_.open(fd) != 0) return false;
        transport_.start_reading();
        return true;
    }
    void close() {
        if (closing_) return;
        closing_ = true;
        transport_.close();
    }

  private:
    void on_transport_read(const net::BufferRef&, std::string_view bytes) override {
        if (closing_ || shutting_down_) return;
        if (!saw_data_) {
            saw_data_ = true;
            if (const net::TlsSessionInfo* info = transport_.tls_info()) {
                std::lock_guard lock(owner_.mutex_);
                owner_.last_server_name_ = std::string(info->server_name);
            }
        }
        pending_.append(bytes);
        size_t end;
        while ((end = pending_.find("\r\n\r\n")) != std::string::npos) {
            pending_.erase(0, end + 4);
            ++owner_.requests_;
            size_t limit = owner_.options_.answers_per_connection;
            if (limit != 0 && answered_ == limit) {
                close();  // unanswered
                return;
            }
            ++answered_;
            net::WriteBatch answer(owner_.writes_);
            answer.append_static(owner_.options_.close_delimited ? kCloseDelimitedAnswer : kKeepAliveAnswer);
            if (transport_.write(answer) != 0) {
                close();
                return;
            }
            if (owner_.options_.close_delimited) {
                shutting_down_ = true;
                if (transport_.shutdown() != 0) close();
                return;
            }
        }
    }
    void on_transport_end(int) override { close(); }
    void on_transport_written(int status) override {
        if (status < 0) close();
    }
    void on_transport_shutdown(int) override { close(); }
    void on_transport_closed() override {
        owner_.open_.erase(this);
        delete this;
    }

    TlsResponder& owner_;
    net::TlsTransport transport_;
    std::string pending_;
    size_t answered_ = 0;
    bool saw_data_ = false;
    bool shutting_down_ = false;
    bool closing_ = false;
};

TlsResponder::TlsResponder(Options options) : options_(std::move(options)) {
    net::TlsListenerConfig tls;
    tls.certificates.push_back({options_.cert, options_.key, ""});
    if (!options_.client_ca.empty()) {
        tls.client_ca = options_.client_ca;
        tls.verify_client = net::ClientVerification::required;
    }
    context_ = std::make_unique<net::TlsServerContext>(tls, net::TicketSecret::load("", std::chrono::hours(1)),
                                                       static_cast<net::HandshakeObserver*>(this), 0);

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listen_fd_, 64) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length)) {
        int error = errno;
        ::close(listen_fd_);
        throw std::runtime_error(std::string("listen: ") + std::strerror(error));
    }
    port_ = ntohs(address.sin_port);

    // Cannot fail on Linux but for memory, which a test does not run short of.
    uv_loop_init(&loop_);
    uv_poll_init(&loop_, &listener_, listen_fd_);
    listener_.data = this;
    uv_poll_start(&listener_, UV_READABLE, &TlsResponder::on_listener_readable);
    uv_async_init(&loop_, &stop_, &TlsResponder::on_stop);
    stop_.data = this;
    uv_idle_init(&loop_, &later_);
    later_.data = this;
    thread_ = std::thread([this] {
        uv_run(&loop_, UV_RUN_DEFAULT);
        closed_cleanly_ = uv_loop_close(&loop_) == 0;
    });
}

TlsResponder::~TlsResponder() { stop(); }

bool TlsResponder::stop() {
    if (thread_.joinable()) {
        uv_async_send(&stop_);
        thread_.join();
        ::close(listen_fd_);
    }
    return closed_cleanly_;
}

std::string TlsResponder::last_server_name() const {
    std::lock_guard lock(mutex_);
    return last_server_name_;
}

void TlsResponder::on_listener_readable(uv_poll_t* poll, int status, int) {
    auto* self = static_cast<TlsResponder*>(poll->data);
    if (status < 0 || self->stopping_) return;
    for (;;) {
        int fd = ::accept4(self->listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN: all taken; anything else: the next wake tries again
        ++self->connections_;
        SSL* ssl = self->context_->new_session();
        if (!ssl) {
            ::close(fd);
            continue;
        }
        auto* connection = new Connection(*self, ssl);
        self->open_.insert(connection);
        if (!connection->open(fd)) connection->close();  // freed in its close callback
    }
}

void TlsResponder::on_stop(uv_async_t* async) {
    auto* self = static_cast<TlsResponder*>(async->data);
    self->stopping_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&self->listener_), nullptr);
    // close() does not free a connection at once, but its closed callback erases it from open_ later: walk a copy.
    std::vector<Connection*> open(self->open_.begin(), self->open_.end());
    for (Connection* connection : open) connection->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&self->stop_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->later_), nullptr);
}

void TlsResponder::defer(net::Transport& transport) {
    if (stopping_ || static_cast<base::IntrusiveList<net::Transport, net::LaterTag>::Hook&>(transport).linked()) {
        return;
    }
    deferred_.push_front(&transport);
    uv_idle_start(&later_, &TlsResponder::on_later);
}

void TlsResponder::cancel(net::Transport& transport) { deferred_.remove(&transport); }

void TlsResponder::on_later(uv_idle_t* idle) {
    auto* self = static_cast<TlsResponder*>(idle->data);
    uv_idle_stop(idle);
    while (net::Transport* transport = self->deferred_.pop_back()) transport->on_later_turn();
}

void TlsResponder::on_handshake(size_t, const net::HandshakeReport& report) {
    if (report.result != net::HandshakeResult::success) {
        ++failed_;
        return;
    }
    ++handshakes_;
    if (report.resumed) ++resumed_;
}

}  // namespace lb::test
