#include "access_log/access_log_writer.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "base/log.h"

namespace lb::access_log {

namespace {

constexpr uint64_t kMask = LineBuffer::kCapacity - 1;
static_assert((LineBuffer::kCapacity & kMask) == 0, "the ring's capacity is a power of two");

int open_log(const std::string& path) {
    if (path == kStdout) return STDOUT_FILENO;
    // O_APPEND: two generations of lb sharing a path during a reload, or logrotate's copytruncate, never overwrite.
    return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

}  // namespace

LineBuffer::LineBuffer() : storage_(new char[kCapacity]) {}

LineBuffer::Push LineBuffer::push(std::string_view line) {
    uint64_t head = head_.load(std::memory_order_relaxed);
    uint64_t used = head - tail_.load(std::memory_order_acquire);
    if (line.size() > kCapacity - used) return Push::dropped;
    size_t at = head & kMask;
    size_t first = std::min(line.size(), kCapacity - at);
    std::memcpy(storage_.get() + at, line.data(), first);
    std::memcpy(storage_.get(), line.data() + first, line.size() - first);
    head_.store(head + line.size(), std::memory_order_release);
    constexpr uint64_t kWakeAt = kCapacity / 4;
    return used < kWakeAt && used + line.size() >= kWakeAt ? Push::stored_wake : Push::stored;
}

LineBuffer::Pending LineBuffer::pending() const {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    uint64_t size = head_.load(std::memory_order_acquire) - tail;
    size_t at = tail & kMask;
    size_t first = std::min<uint64_t>(size, kCapacity - at);
    return {{storage_.get() + at, first}, {storage_.get(), size - first}};
}

Writer::Writer(std::string path, std::chrono::milliseconds interval)
    : path_(std::move(path)), interval_(interval), fd_(open_log(path_)) {
    if (fd_ < 0) throw std::runtime_error(fmt::format("access_log: cannot open '{}': {}", path_, std::strerror(errno)));
    thread_ = std::thread([this] { run(); });
}

Writer::~Writer() {
    stop_.store(true, std::memory_order_release);
    wake();
    thread_.join();
    if (fd_ != STDOUT_FILENO) ::close(fd_);
}

std::shared_ptr<LineBuffer> Writer::add_buffer() {
    auto buffer = std::make_shared<LineBuffer>();
    std::lock_guard lock(buffers_mutex_);
    buffers_.push_back(buffer);
    return buffer;
}

void Writer::wake() {
    wake_.store(true, std::memory_order_release);
    // Without the mutex, so a worker never waits for it: a wake-up the thread misses (it was about to sleep) is
    // taken at the end of its interval instead.
    wake_cv_.notify_one();
}

void Writer::reopen() {
    reopen_.store(true, std::memory_order_release);
    wake();
}

void Writer::run() {
    for (;;) {
        {
            std::unique_lock lock(wake_mutex_);
            wake_cv_.wait_for(lock, interval_, [this] { return wake_.load(std::memory_order_acquire); });
        }
        wake_.store(false, std::memory_order_relaxed);
        // Read before writing: the final pass after stop sees every line pushed before the stop.
        bool stopping = stop_.load(std::memory_order_acquire);
        if (reopen_.exchange(false, std::memory_order_acq_rel)) reopen_file();
        write_pending();
        if (stopping) return;
    }
}

void Writer::write_pending() {
    std::vector<std::shared_ptr<LineBuffer>> buffers;
    {
        std::lock_guard lock(buffers_mutex_);
        buffers = buffers_;
    }
    for (auto& buffer : buffers) {
        // Closed is read before the last drain: what the worker pushed before closing is written, then it goes.
        bool closed = buffer->closed();
        write_out(*buffer);
        if (closed) {
            std::lock_guard lock(buffers_mutex_);
            std::erase(buffers_, buffer);
        }
    }
}

void Writer::write_out(LineBuffer& buffer) {
    LineBuffer::Pending pending = buffer.pending();
    size_t total = pending.size();
    if (total == 0) return;
    iovec pieces[2] = {{const_cast<char*>(pending.first.data()), pending.first.size()},
                       {const_cast<char*>(pending.second.data()), pending.second.size()}};
    iovec* next = pieces;
    int count = pending.second.empty() ? 1 : 2;
    size_t written = 0;
    while (written < total) {
        ssize_t n = ::writev(fd_, next, count);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            // A full disk or a closed pipe: these lines are lost, the next ones may fare better. One line per
            // thousand failures keeps the error log readable.
            if (write_errors_++ % 1000 == 0) {
                base::log(base::LogLevel::error, "access_log: cannot write to '{}': {} ({} failed writes so far)",
                          path_, n < 0 ? std::strerror(errno) : "nothing written", write_errors_);
            }
            break;
        }
        written += static_cast<size_t>(n);
        // A short write: move on past what went out.
        for (auto left = static_cast<size_t>(n); left > 0;) {
            size_t step = std::min(left, next->iov_len);
            next->iov_base = static_cast<char*>(next->iov_base) + step;
            next->iov_len -= step;
            left -= step;
            if (next->iov_len == 0) {
                ++next;
                --count;
            }
        }
    }
    buffer.consume(total);
}

void Writer::reopen_file() {
    if (path_ == kStdout) return;
    int fd = open_log(path_);
    if (fd < 0) {
        // Keep writing to the file we have rather than lose lines.
        base::log(base::LogLevel::error, "access_log: cannot reopen '{}', still writing to the old file: {}", path_,
                  std::strerror(errno));
        return;
    }
    ::close(fd_);
    fd_ = fd;
    base::log(base::LogLevel::info, "access_log: reopened '{}'", path_);
}

WorkerLog::WorkerLog(std::shared_ptr<Writer> writer, Format format)
    : writer_(std::move(writer)), buffer_(writer_->add_buffer()), format_(format) {
    line_.reserve(512);
}

WorkerLog::~WorkerLog() {
    buffer_->close();
    writer_->wake();
}

bool WorkerLog::write(const AccessRecord& record) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    line_.clear();
    format_line(format_, record, timestamp_.format(now), line_);
    switch (buffer_->push(line_)) {
        case LineBuffer::Push::stored:
            return true;
        case LineBuffer::Push::stored_wake:
            writer_->wake();
            return true;
        case LineBuffer::Push::dropped:
            return false;
    }
    return false;
}

}  // namespace lb::access_log
