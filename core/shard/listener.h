// Listening sockets for the shards: on TCP every shard binds its own socket to the same address with
// SO_REUSEPORT, and the kernel spreads incoming connections across them; a Unix domain socket has no such option,
// so it is bound once and every shard gets its own descriptor for it (duplicate_listener).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/config/config.h"

namespace lb::core {

// A resolved socket address.
struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    uint16_t port() const;          // 0 for a Unix domain socket
    std::string to_string() const;  // "127.0.0.1:8080", "[::1]:8080" or "unix:/run/lb.sock"
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

// The socket file a Unix domain listener was bound to, as lb created it: remove() deletes the file only while it
// is still that socket (same inode), so it never deletes a file another process has put at the path since.
class UnixSocketFile {
  public:
    UnixSocketFile(std::string path, dev_t device, ino_t inode);
    ~UnixSocketFile();  // remove()
    UnixSocketFile(const UnixSocketFile&) = delete;
    UnixSocketFile& operator=(const UnixSocketFile&) = delete;

    const std::string& path() const { return path_; }
    void remove();

  private:
    std::string path_;
    dev_t device_;
    ino_t inode_;
    bool removed_ = false;
};

struct UnixListener {
    int fd = -1;
    std::unique_ptr<UnixSocketFile> file;
};

// A non-blocking listening Unix domain socket at `path`. A socket file already there is replaced only when
// nothing accepts on it (a connect is refused: left behind by a process that died); one that accepts, or a
// file that is not a socket, is an error. Throws std::runtime_error naming "unix:PATH" and the reason.
UnixListener open_unix_listener(const std::string& path, int backlog);

// A second descriptor for a listening socket (close-on-exec), sharing its accept queue: how a reload takes
// over the sockets. Throws std::runtime_error.
int duplicate_listener(int fd);

// The address a socket is bound to.
SocketAddress bound_address(int fd);

}  // namespace lb::core
