// Plain non-blocking loopback sockets for the fuzz driver: no libuv, so the driver's side of each connection is
// a few syscalls it controls byte for byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lb::fuzz {

// A listening socket on 127.0.0.1 and an ephemeral port; aborts if it cannot have one.
int listen_on_loopback(uint16_t& port);
// A non-blocking connection to 127.0.0.1:port (connected when it returns); aborts on failure.
int connect_to_loopback(uint16_t port);
// The next pending connection on `listener`, non-blocking, or -1 when none is waiting.
int accept_pending(int listener);

enum class IoResult { progress, would_block, closed };
// Appends whatever can be read without blocking to `into`; `closed` on EOF or a reset.
IoResult read_available(int fd, std::string& into);
// Writes as much of `bytes` as fits without blocking and removes it from the front; `closed` if the peer is gone.
IoResult write_some(int fd, std::string_view& bytes);
// Closes with a reset rather than a FIN, so the driver's side leaves no TIME_WAIT behind.
void close_now(int fd);

}  // namespace lb::fuzz
