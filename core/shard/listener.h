// Listening sockets for the shards: every shard binds its own socket to the same address with SO_REUSEPORT,
// and the kernel spreads incoming connections across them.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "core/config/config.h"

namespace lb::core {

// A resolved socket address.
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    uint16_t port() const;
    std::string to_string() const;
};

// Resolves host:port (a literal address or a name) to its first address. Throws std::runtime_error.
SocketAddress resolve(const HostPort& endpoint);

enum class PortSharing {
    shared,     // SO_REUSEPORT: every shard binds its own socket and the kernel spreads connections
    exclusive,  // a second bind fails: the admin port, where two processes answering scrapes would mislead
};

// A non-blocking listening socket on `address` with SO_REUSEADDR (and SO_REUSEPORT when shared). Throws
// std::runtime_error naming the address and the reason.
int open_listener(const SocketAddress& address, int backlog, PortSharing sharing);

// A second descriptor for a listening socket (close-on-exec), sharing its accept queue: how a reload takes
// over the sockets. Throws std::runtime_error.
int duplicate_listener(int fd);

// The address a socket is bound to.
SocketAddress bound_address(int fd);

}  // namespace lb::core
