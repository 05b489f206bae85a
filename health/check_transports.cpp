#include "health/check_transports.h"

#include <stdexcept>

#include "net/tcp_transport.h"
#include "net/tls_transport.h"

namespace lb::health {

CheckTransports::CheckTransports(size_t backends) : tls_(backends) {}

CheckTransports::~CheckTransports() = default;

void CheckTransports::use_tls(size_t backend, const net::TlsUpstreamConfig& config, const std::string& host) {
    if (host.empty()) throw std::invalid_argument("health: a TLS backend needs its host name");
    // No handshake observer: the workers count upstream handshakes; a check's outcome is its own result.
    tls_[backend] = std::make_unique<net::TlsClientContext>(config, host, nullptr, backend);
}

int CheckTransports::start(uv_loop_t* loop) {
    int rc = uv_idle_init(loop, &later_);
    if (rc < 0) return rc;
    later_.data = this;
    env_.loop = loop;
    started_ = true;
    return 0;
}

void CheckTransports::close() {
    if (!started_ || closed_) return;
    closed_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&later_), nullptr);
}

std::unique_ptr<net::Transport> CheckTransports::make(size_t backend, net::TransportEvents& events) {
    net::TlsClientContext* tls = tls_[backend].get();
    if (!tls) return std::make_unique<net::TcpTransport>(env_, events);
    SSL* ssl = tls->new_session();
    if (!ssl) return nullptr;
    return std::make_unique<net::TlsTransport>(env_, events, ssl, net::TlsTransport::Role::client, tls,
                                               [](const void* context, const net::HandshakeReport& report) {
                                                   static_cast<const net::TlsClientContext*>(context)->report(report);
                                               });
}

void CheckTransports::defer(net::Transport& transport) {
    if (closed_ || static_cast<base::IntrusiveList<net::Transport, net::LaterTag>::Hook&>(transport).linked()) return;
    deferred_.push_front(&transport);
    uv_idle_start(&later_, &CheckTransports::on_later);
}

void CheckTransports::cancel(net::Transport& transport) { deferred_.remove(&transport); }

void CheckTransports::on_later(uv_idle_t* idle) {
    auto* self = static_cast<CheckTransports*>(idle->data);
    uv_idle_stop(idle);
    while (net::Transport* transport = self->deferred_.pop_back()) transport->on_later_turn();
}

}  // namespace lb::health
