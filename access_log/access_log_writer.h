// Getting access log lines from the workers to the file without a worker ever waiting for a disk: each worker
// appends whole lines to its own LineBuffer, a bounded ring that only it writes and only the writer thread reads;
// the Writer's thread takes what the rings hold to the file with writev(), every 100 ms or sooner when a ring is a
// quarter full. A line that does not fit in its ring is dropped and counted by the worker
// (lb_access_log_dropped_total), never waited for: memory stays at LineBuffer::kCapacity per worker.
//
// SIGUSR1 (reopen()) makes the writer open its path again before its next write, so that after logrotate has
// moved the file new lines go to a new one.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "access_log/access_log_config.h"
#include "access_log/access_log_line.h"

namespace lb::access_log {

// One worker's lines waiting for the writer: a single-producer, single-consumer ring of bytes with a fixed
// capacity. The producer publishes whole lines only, so what the consumer sees always ends at a line's end.
class LineBuffer {
  public:
    static constexpr size_t kCapacity = 1 << 20;  // bytes: about 3,000 JSON lines

    enum class Push {
        stored,
        stored_wake,  // stored, and the ring just passed a quarter full: wake the writer now
        dropped,      // no room: nothing was stored
    };

    LineBuffer();
    // The worker's thread only.
    Push push(std::string_view line);
    // The worker will push nothing more: once drained, the writer forgets the ring.
    void close() { closed_.store(true, std::memory_order_release); }

    // The writer's thread only: the bytes waiting, as at most two pieces (the ring wraps), and taking them away.
    struct Pending {
        std::string_view first;
        std::string_view second;
        size_t size() const { return first.size() + second.size(); }
    };
    Pending pending() const;
    void consume(size_t bytes) {
        tail_.store(tail_.load(std::memory_order_relaxed) + bytes, std::memory_order_release);
    }
    bool closed() const { return closed_.load(std::memory_order_acquire); }

  private:
    std::unique_ptr<char[]> storage_;
    alignas(64) std::atomic<uint64_t> head_{0};  // bytes ever pushed; written by the worker
    alignas(64) std::atomic<uint64_t> tail_{0};  // bytes ever written out; written by the writer
    std::atomic<bool> closed_{false};
};

class Writer {
  public:
    // Opens `path` for appending (kStdout: lb's standard output) and starts the thread. Throws std::runtime_error
    // naming the path and the reason when the file cannot be opened.
    explicit Writer(std::string path, std::chrono::milliseconds interval = std::chrono::milliseconds(100));
    // Writes out what every ring still holds, then stops the thread and closes the file.
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    const std::string& path() const { return path_; }
    // A ring for one more worker. Any thread.
    std::shared_ptr<LineBuffer> add_buffer();
    // Any thread, never blocks: the thread writes now instead of at its next interval.
    void wake();
    // Any thread, never blocks: the file is opened again by its path before the next write (after logrotate).
    void reopen();

  private:
    void run();
    void write_pending();
    void write_out(LineBuffer& buffer);
    void reopen_file();

    const std::string path_;
    const std::chrono::milliseconds interval_;
    int fd_ = -1;  // the writer thread's once it runs
    std::mutex buffers_mutex_;
    std::vector<std::shared_ptr<LineBuffer>> buffers_;  // guarded by buffers_mutex_
    std::mutex wake_mutex_;
    std::condition_variable wake_cv_;
    std::atomic<bool> wake_{false};
    std::atomic<bool> reopen_{false};
    std::atomic<bool> stop_{false};
    uint64_t write_errors_ = 0;  // the writer thread's, for its log lines
    std::thread thread_;
};

// One worker's side: formats its records into lines and pushes them to its ring. Owned by one shard and used
// only on its loop.
class WorkerLog {
  public:
    WorkerLog(std::shared_ptr<Writer> writer, Format format);
    ~WorkerLog();
    WorkerLog(const WorkerLog&) = delete;
    WorkerLog& operator=(const WorkerLog&) = delete;

    // Formats and queues one line, stamped with the current time. False when the ring had no room: the line is
    // dropped, and the caller counts it.
    bool write(const AccessRecord& record);

  private:
    std::shared_ptr<Writer> writer_;
    std::shared_ptr<LineBuffer> buffer_;
    Format format_;
    Timestamp timestamp_;
    std::string line_;  // reused: its capacity stays
};

}  // namespace lb::access_log
