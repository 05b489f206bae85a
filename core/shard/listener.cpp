#include "core/shard/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace lb::core {

uint16_t SocketAddress::port() const {
    if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string SocketAddress::to_string() const {
    char text[INET6_ADDRSTRLEN] = "";
    if (storage.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, text, sizeof text);
        return fmt::format("[{}]:{}", text, port());
    }
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, text, sizeof text);
    return fmt::format("{}:{}", text, port());
}

SocketAddress resolve(const HostPort& endpoint) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port = std::to_string(endpoint.port);
    int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0 || !found) {
        throw std::runtime_error(fmt::format("cannot resolve '{}': {}", endpoint.host, gai_strerror(rc)));
    }
    SocketAddress address;
    std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
    address.length = found->ai_addrlen;
    freeaddrinfo(found);
    return address;
}

int open_listener(const SocketAddress& address, int backlog, PortSharing sharing) {
    int fd = ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(fmt::format("socket(): {}", std::strerror(errno)));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((sharing == PortSharing::shared && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        ::bind(fd, address.get(), address.length) != 0 || ::listen(fd, backlog) != 0) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error(fmt::format("cannot listen on {}: {}", address.to_string(), std::strerror(err)));
    }
    return fd;
}

int duplicate_listener(int fd) {
    // dup3() onto a number that socket() just handed out, rather than fcntl(F_DUPFD): libuv closes sockets with a
    // raw syscall that ThreadSanitizer does not see, so a number it last saw from another thread's accept() would
    // read as a race. socket() makes the number new in its eyes; the kernel needs none of this.
    int copy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (copy < 0 || ::dup3(fd, copy, O_CLOEXEC) < 0) {
        int err = errno;
        if (copy >= 0) ::close(copy);
        throw std::runtime_error(fmt::format("cannot take over a listening socket: {}", std::strerror(err)));
    }
    return copy;
}

SocketAddress bound_address(int fd) {
    SocketAddress address;
    address.length = sizeof address.storage;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length);
    return address;
}

}  // namespace lb::core
