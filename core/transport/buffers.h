// Read buffers and outgoing writes for one shard. Bytes read from one side are written to the other without a
// copy: a write holds a reference to the buffer it came from until libuv has finished with it.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lb::core {

class BufferPool;

// A fixed-size, reference-counted read buffer. Lives in its pool's free list when unused.
class Buffer {
  public:
    static constexpr size_t kSize = 64 * 1024;
    char* data() { return bytes_; }

  private:
    friend class BufferPool;
    friend class BufferRef;
    BufferPool* pool_ = nullptr;
    uint32_t refs_ = 0;
    alignas(64) char bytes_[kSize];
};

// Shared ownership of a Buffer within one shard (no atomics: a buffer never leaves its shard).
class BufferRef {
  public:
    BufferRef() = default;
    BufferRef(const BufferRef& other) : buffer_(other.buffer_) { retain(); }
    BufferRef(BufferRef&& other) noexcept : buffer_(other.buffer_) { other.buffer_ = nullptr; }
    BufferRef& operator=(BufferRef other) noexcept {
        std::swap(buffer_, other.buffer_);
        return *this;
    }
    ~BufferRef() { reset(); }

    void reset();
    char* data() const { return buffer_->data(); }
    explicit operator bool() const { return buffer_ != nullptr; }

  private:
    friend class BufferPool;
    explicit BufferRef(Buffer* buffer) : buffer_(buffer) { retain(); }
    void retain() {
        if (buffer_) ++buffer_->refs_;
    }
    Buffer* buffer_ = nullptr;
};

class BufferPool {
  public:
    explicit BufferPool(size_t max_cached = 64) : max_cached_(max_cached) {}
    ~BufferPool();
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    BufferRef acquire();
    size_t cached() const { return free_.size(); }

  private:
    friend class BufferRef;
    void recycle(Buffer* buffer);

    std::vector<std::unique_ptr<Buffer>> free_;
    size_t max_cached_;
};

// Receives the completion of a write it queued.
class WriteTarget {
  public:
    virtual void on_write_done(int status) = 0;

  protected:
    ~WriteTarget() = default;
};

// One uv_write in flight: owns the copied bytes and the buffer references until libuv calls back. Recycled by the
// shard's WritePool with its capacity kept, so a steady stream of requests allocates nothing here.
struct WriteRequest {
    struct Segment {
        const char* base;  // nullptr: `offset` indexes `owned`
        size_t offset;
        size_t length;
    };
    uv_write_t req;
    WriteTarget* target = nullptr;
    class WritePool* pool = nullptr;
    std::string owned;
    std::vector<Segment> segments;
    std::vector<BufferRef> refs;
    std::vector<uv_buf_t> bufs;
    size_t total = 0;

    void clear();
};

class WritePool {
  public:
    explicit WritePool(size_t max_cached = 256) : max_cached_(max_cached) {}
    std::unique_ptr<WriteRequest> acquire();
    void recycle(std::unique_ptr<WriteRequest> request);

  private:
    std::vector<std::unique_ptr<WriteRequest>> free_;
    size_t max_cached_;
};

// Bytes gathered while parsing one read, sent with a single uv_write (writev). Owned bytes (heads, chunk
// framing) are copied in; body bytes are referenced in their read buffer.
class WriteBatch {
  public:
    explicit WriteBatch(WritePool& pool) : pool_(pool) {}
    ~WriteBatch() { clear(); }
    WriteBatch(const WriteBatch&) = delete;
    WriteBatch& operator=(const WriteBatch&) = delete;

    void append_copy(std::string_view bytes);
    // Lets `write(std::string&)` append bytes straight into the batch's own storage (no temporary string).
    template <typename Writer>
    void append_written(Writer&& write) {
        WriteRequest& r = request();
        size_t offset = r.owned.size();
        write(r.owned);
        add({nullptr, offset, r.owned.size() - offset});
    }
    void append_static(std::string_view bytes);  // storage that outlives every write (literals)
    void append_ref(const BufferRef& buffer, std::string_view bytes);
    bool empty() const { return !current_ || current_->segments.empty(); }
    size_t bytes() const { return current_ ? current_->total : 0; }
    void clear();

    // Writes what the socket takes at once and queues the rest; `target` hears of the completion of a queued
    // remainder only (a write that went out whole completes silently). Returns the libuv error if it could not
    // write or queue (then no callback comes). The batch is empty afterwards either way.
    int flush(uv_stream_t* stream, WriteTarget* target);

  private:
    WriteRequest& request() {
        if (!current_) current_ = pool_.acquire();
        return *current_;
    }
    void add(WriteRequest::Segment segment) {
        current_->segments.push_back(segment);
        current_->total += segment.length;
    }

    WritePool& pool_;
    std::unique_ptr<WriteRequest> current_;
};

}  // namespace lb::core
