#include "demo/demo_backend.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <stdexcept>
#include <system_error>

#include "demo/backend_state.h"
#include "demo/demo_tls.h"
#include "demo/demo_worker.h"

namespace lb::demo {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

// A socket bound to host:port (SO_REUSEADDR, plus SO_REUSEPORT when several threads share the port). The caller
// owns the returned descriptor.
int bind_socket(const std::string& host, uint16_t port, bool reuse_port) {
    sockaddr_storage addr{};
    if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
        uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
        throw std::system_error(EINVAL, std::generic_category(), "not an IP address: '" + host + "'");
    }
    int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno("socket");
    int one = 1;
    bool ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              (!reuse_port || ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    socklen_t size = addr.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (!ok || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), size) != 0) {
        int saved = errno;
        ::close(fd);
        throw std::system_error(saved, std::generic_category(), "bind " + host + ":" + std::to_string(port));
    }
    return fd;
}

uint16_t local_port(int fd) {
    sockaddr_storage addr{};
    socklen_t size = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0) throw_errno("getsockname");
    return ntohs(addr.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&addr)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

}  // namespace

DemoBackend::DemoBackend(DemoBackendOptions options)
    : options_(std::move(options)), state_(std::make_unique<BackendState>(options_.id, options_.silent)) {}

DemoBackend::~DemoBackend() { stop(); }

void DemoBackend::start() {
    if (!workers_.empty()) throw std::logic_error("DemoBackend::start: already running");
    if (!options_.tls_cert.empty() && !tls_) {
        tls_ = std::make_unique<TlsServerContext>(options_.tls_cert, options_.tls_key, options_.tls_client_ca);
        state_->tls = tls_.get();  // before any thread starts, which orders it before their reads
    }
    const unsigned threads = options_.threads == 0 ? 1 : options_.threads;
    // Built in a local vector: if anything throws, its destructor closes and joins what was started.
    std::vector<std::unique_ptr<Worker>> workers;
    uint16_t port = options_.port;
    for (unsigned i = 0; i < threads; ++i) {
        auto worker = std::make_unique<Worker>(*state_);
        int fd = bind_socket(options_.host, port, threads > 1);
        if (port == 0) {
            try {
                port = local_port(fd);
            } catch (...) {
                ::close(fd);
                throw;
            }
        }
        if (int rc = worker->listen(fd); rc != 0) {
            throw std::system_error(-rc, std::generic_category(), std::string("listen: ") + uv_strerror(rc));
        }
        workers.push_back(std::move(worker));
    }
    for (auto& worker : workers) worker->start();
    workers_ = std::move(workers);
    port_ = port;
}

void DemoBackend::stop() {
    for (auto& worker : workers_) worker->request_stop();
    for (auto& worker : workers_) worker->join();
    workers_.clear();  // each worker checks uv_loop_close() == 0
}

uint64_t DemoBackend::connections_accepted() const {
    return state_->connections_accepted.load(std::memory_order_relaxed);
}

int64_t DemoBackend::connections_open() const { return state_->connections_open.load(std::memory_order_relaxed); }

uint64_t DemoBackend::requests_served() const { return state_->requests_served.load(std::memory_order_relaxed); }

uint64_t DemoBackend::backpressure_stops() const { return state_->backpressure_stops.load(std::memory_order_relaxed); }

int64_t DemoBackend::connections_held_back() const {
    return state_->connections_held_back.load(std::memory_order_relaxed);
}

uint64_t DemoBackend::write_queue_peak_bytes() const {
    return state_->write_queue_peak_bytes.load(std::memory_order_relaxed);
}

uint64_t DemoBackend::tls_handshakes() const { return state_->tls_handshakes.load(std::memory_order_relaxed); }

uint64_t DemoBackend::tls_resumed() const { return state_->tls_resumed.load(std::memory_order_relaxed); }

uint64_t DemoBackend::tls_failures() const { return state_->tls_failures.load(std::memory_order_relaxed); }

void DemoBackend::set_extra_delay(std::chrono::milliseconds ms) {
    state_->extra_delay_ms.store(static_cast<uint64_t>(ms.count()), std::memory_order_relaxed);
}

}  // namespace lb::demo
