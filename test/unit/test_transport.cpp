// The TCP transport on a real loop over a socket pair: what waits to be written is kept compactly and charged for
// what it holds, unread input is seen before a pooled connection is reused, and the budget stops reading when
// it runs out.
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "net/tcp_transport.h"

using namespace lb;

namespace {

struct Recorder : net::TransportEvents {
    std::string read;
    int ended = 0;
    int written = 0;
    bool closed = false;
    void on_transport_read(const net::BufferRef&, std::string_view bytes) override { read.append(bytes); }
    void on_transport_end(int) override { ++ended; }
    void on_transport_written(int) override { ++written; }
    void on_transport_closed() override { closed = true; }
};

// A loop, a shard's buffers and one transport over one end of a socket pair; the test holds the other end.
struct Bench {
    uv_loop_t loop;
    net::MemoryBudget budget;
    net::BufferPool buffers{budget};
    net::WritePool writes{budget};
    net::MemoryWaiters waiters;
    // Deferred work runs when the test asks (run_later()), on the test's own turn.
    struct Later final : net::LaterTurn {
        std::vector<net::Transport*> queued;
        void defer(net::Transport& t) override { queued.push_back(&t); }
        void cancel(net::Transport& t) override { std::erase(queued, &t); }
    } later;
    net::TransportEnv env{&loop, buffers, writes, waiters, later};
    Recorder events;
    std::unique_ptr<net::TcpTransport> transport;
    int peer = -1;

    explicit Bench(size_t budget_limit = SIZE_MAX) : budget(budget_limit) {
        REQUIRE(uv_loop_init(&loop) == 0);
        int pair[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0);
        peer = pair[1];
        transport = std::make_unique<net::TcpTransport>(env, events);
        REQUIRE(transport->open(pair[0]) == 0);
    }
    ~Bench() {
        transport->close();
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(events.closed);
        transport.reset();
        if (peer >= 0) ::close(peer);
        CHECK(uv_loop_close(&loop) == 0);
    }
    void spin() { uv_run(&loop, UV_RUN_NOWAIT); }
};

}  // namespace

TEST_CASE("bytes that wait for a slow peer are compacted and charged for what they hold", "[transport]") {
    Bench bench;
    // Fill the socket so that everything after waits.
    net::WriteBatch fill(bench.writes);
    std::string big(4 << 20, 'f');
    fill.append_copy(big);
    REQUIRE(bench.transport->write(fill) == 0);
    REQUIRE(bench.transport->queued_bytes() > 0);

    // 1,000 pieces of 64 bytes, each referenced in its own 64 KiB read buffer, as small reads would give them.
    for (int i = 0; i < 1000; ++i) {
        net::BufferRef buffer = bench.buffers.acquire();
        std::memset(buffer.data(), 'a' + i % 26, 64);
        net::WriteBatch piece(bench.writes);
        piece.append_ref(buffer, {buffer.data(), 64});
        REQUIRE(bench.transport->write(piece) == 0);
    }
    // The pieces were copied: no read buffer is pinned by them, and the charge is their bytes, not 1,000 buffers.
    CHECK(bench.buffers.in_use() == 0);
    size_t queued = bench.transport->queued_bytes();
    INFO("queued " << queued);
    CHECK(queued < big.size() + 64 * 1000 + 2 * net::WriteRequest::kGrowth);
    CHECK(bench.budget.used() == queued);

    // Everything arrives, in order, once the peer reads.
    std::string received;
    while (received.size() < big.size() + 64 * 1000) {
        char chunk[65536];
        ssize_t n = ::recv(bench.peer, chunk, sizeof chunk, 0);
        if (n > 0) received.append(chunk, static_cast<size_t>(n));
        bench.spin();
    }
    CHECK(received.substr(0, big.size()) == big);
    CHECK(received.substr(big.size(), 64) == std::string(64, 'a'));
    CHECK(received.substr(big.size() + 64 * 999, 64) == std::string(64, 'a' + 999 % 26));
    while (bench.transport->queued_bytes() != 0) bench.spin();
    CHECK(bench.budget.used() == 0);
}

TEST_CASE("a large waiting piece stays referenced in its read buffer", "[transport]") {
    Bench bench;
    net::WriteBatch fill(bench.writes);
    fill.append_copy(std::string(4 << 20, 'f'));
    REQUIRE(bench.transport->write(fill) == 0);
    net::BufferRef buffer = bench.buffers.acquire();
    net::WriteBatch piece(bench.writes);
    piece.append_ref(buffer, {buffer.data(), net::Buffer::kSize});
    buffer.reset();
    REQUIRE(bench.transport->write(piece) == 0);
    CHECK(bench.buffers.in_use() == 1);  // kept, not copied: one buffer for a buffer's worth of bytes
}

TEST_CASE("input that arrived unread, or the peer's close, is seen before reuse", "[transport]") {
    Bench bench;
    CHECK_FALSE(bench.transport->has_unread_input());
    REQUIRE(::send(bench.peer, "x", 1, 0) == 1);
    CHECK(bench.transport->has_unread_input());
    Bench closed;
    ::close(closed.peer);
    closed.peer = -1;
    CHECK(closed.transport->has_unread_input());
}

TEST_CASE("a transport out of memory stops reading, waits, and resumes when relieved", "[transport]") {
    Bench bench(net::Buffer::kSize);                // room for one read buffer
    net::BufferRef held = bench.buffers.acquire();  // ... which is taken
    bench.transport->start_reading();
    REQUIRE(::send(bench.peer, "hello", 5, 0) == 5);
    for (int i = 0; i < 20 && bench.waiters.empty(); ++i) bench.spin();
    CHECK_FALSE(bench.waiters.empty());
    CHECK(bench.events.read.empty());
    held.reset();
    while (net::Transport* waiter = bench.waiters.pop_front()) waiter->resume_after_memory();
    for (int i = 0; i < 20 && bench.events.read.empty(); ++i) bench.spin();
    CHECK(bench.events.read == "hello");
}
