#include "core/shard/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace lb::core {

uint16_t SocketAddress::port() const {
    if (storage.ss_family == AF_UNIX) return 0;
    if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string SocketAddress::to_string() const {
    if (storage.ss_family == AF_UNIX) {
        const auto* unix_address = reinterpret_cast<const sockaddr_un*>(&storage);
        size_t path_bytes = length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
        return fmt::format("unix:{}", std::string(unix_address->sun_path, strnlen(unix_address->sun_path, path_bytes)));
    }
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

UnixSocketFile::UnixSocketFile(std::string path, dev_t device, ino_t inode)
    : path_(std::move(path)), device_(device), inode_(inode) {}

UnixSocketFile::~UnixSocketFile() { remove(); }

void UnixSocketFile::remove() {
    if (std::exchange(removed_, true)) return;
    struct stat now {};
    if (::lstat(path_.c_str(), &now) == 0 && now.st_dev == device_ && now.st_ino == inode_) ::unlink(path_.c_str());
}

namespace {

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    // The config loader has checked that the path fits with its NUL.
    std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof address.sun_path - 1));
    return address;
}

enum class Occupant { none, live, stale, not_a_socket };

// What sits at `path`: nothing, a socket something accepts on, a socket nothing accepts on (its process died
// without removing it), or another kind of file (which lb must never delete).
Occupant occupant_of(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return Occupant::none;
    if (!S_ISSOCK(st.st_mode)) return Occupant::not_a_socket;
    // Non-blocking, so a live listener with a full backlog answers EAGAIN at once instead of making lb wait.
    // Anything but a refusal counts as live.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0) return Occupant::live;  // cannot tell: leave it alone
    sockaddr_un address = unix_address(path);
    int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    int err = errno;
    ::close(probe);
    return rc != 0 && err == ECONNREFUSED ? Occupant::stale : Occupant::live;
}

}  // namespace

UnixListener open_unix_listener(const std::string& path, int backlog) {
    auto fail = [&](const std::string& why) {
        return std::runtime_error(fmt::format("cannot listen on unix:{}: {}", path, why));
    };
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw fail(fmt::format("socket(): {}", std::strerror(errno)));
    sockaddr_un address = unix_address(path);
    int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    if (rc != 0 && errno == EADDRINUSE) {
        switch (occupant_of(path)) {
            case Occupant::live:
                ::close(fd);
                throw fail("Address already in use (another process accepts on it)");
            case Occupant::not_a_socket:
                ::close(fd);
                throw fail("the path exists and is not a socket");
            case Occupant::stale:
                ::unlink(path.c_str());
                break;
            case Occupant::none:  // removed in between
                break;
        }
        rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    }
    struct stat bound {};
    if (rc != 0 || ::lstat(path.c_str(), &bound) != 0) {
        int err = errno;
        ::close(fd);
        throw fail(std::strerror(err));
    }
    UnixListener listener{fd, std::make_unique<UnixSocketFile>(path, bound.st_dev, bound.st_ino)};
    if (::listen(fd, backlog) != 0) {
        int err = errno;
        ::close(fd);
        throw fail(std::strerror(err));  // the file goes with `listener`
    }
    return listener;
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
