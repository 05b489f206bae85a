// Read buffers, outgoing writes and the memory they hold, for one shard. Bytes read from one side are written to the
// other without a copy when the socket takes them at once; bytes that must wait are kept compactly (small pieces
// copied, large ones referenced in their read buffer), and every byte held is charged to the shard's MemoryBudget,
// so that what a connection holds is what it is charged for.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lb::net {

class BufferPool;

// The memory a shard may hold in read buffers and queued writes: its share of `limits.buffer_memory`. When it is
// used up, connections stop reading and the shard stops accepting until enough is freed (see MemoryRelief).
class MemoryBudget {
  public:
    // Told, once per shortage, that usage fell back under the low-water mark (three quarters of the limit).
    class Listener {
      public:
        virtual void on_memory_relief() = 0;

      protected:
        ~Listener() = default;
    };

    explicit MemoryBudget(size_t limit = SIZE_MAX) : limit_(limit) {}
    void set_listener(Listener* listener) { listener_ = listener; }

    void charge(size_t bytes) { store(load() + bytes); }
    void release(size_t bytes) {
        store(load() - bytes);
        if (short_ && load() <= limit_ / 4 * 3) {
            short_ = false;
            if (listener_) listener_->on_memory_relief();
        }
    }
    // True when nothing more should be read or accepted. Records the shortage, so relief is announced.
    bool exhausted() {
        if (load() < limit_) return false;
        short_ = true;
        return true;
    }
    // Any thread (a scrape); the rest is owner loop only.
    size_t used() const { return load(); }
    size_t limit() const { return limit_; }

  private:
    // One writer (the shard), so a load and a store need no read-modify-write; atomic only for scrapes.
    size_t load() const { return used_.load(std::memory_order_relaxed); }
    void store(size_t value) { used_.store(value, std::memory_order_relaxed); }

    std::atomic<size_t> used_{0};
    size_t limit_;
    bool short_ = false;
    Listener* listener_ = nullptr;
};

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
    bool same_as(const BufferRef& other) const { return buffer_ == other.buffer_; }

  private:
    friend class BufferPool;
    explicit BufferRef(Buffer* buffer) : buffer_(buffer) { retain(); }
    void retain() {
        if (buffer_) ++buffer_->refs_;
    }
    Buffer* buffer_ = nullptr;
};

// Read buffers for one shard. A buffer in use is charged to the budget; the free list keeps a few for reuse.
class BufferPool {
  public:
    explicit BufferPool(MemoryBudget& budget, size_t max_cached = 64) : budget_(budget), max_cached_(max_cached) {}
    ~BufferPool();
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    BufferRef acquire();
    size_t cached() const { return free_.size(); }
    size_t in_use() const { return in_use_; }
    MemoryBudget& budget() { return budget_; }

  private:
    friend class BufferRef;
    void recycle(Buffer* buffer);

    MemoryBudget& budget_;
    std::vector<std::unique_ptr<Buffer>> free_;
    size_t max_cached_;
    size_t in_use_ = 0;
};

// Bytes for one writev: owned copies (heads, chunk framing, small pieces), static strings, and pieces of read
// buffers held by reference. Recycled by the shard's WritePool, so a steady stream of requests allocates nothing.
struct WriteRequest {
    enum class Kind : uint8_t { owned, literal, referenced };
    struct Segment {
        const char* base;  // owned: nullptr, and `offset` indexes `owned`
        size_t offset;
        size_t length;
        Kind kind;
        uint16_t ref;  // referenced: index into `refs`
    };
    uv_write_t req;
    class WritePool* pool = nullptr;
    void* owner = nullptr;  // the transport whose write this is, while libuv holds it
    std::string owned;
    std::vector<Segment> segments;
    std::vector<BufferRef> refs;  // each distinct buffer once
    std::vector<uv_buf_t> bufs;
    size_t total = 0;    // bytes to write
    size_t charged = 0;  // bytes charged to the budget for `owned` while queued

    // Copies grow the storage in steps of kGrowth, never by doubling: a backlog kept for a slow peer holds at most
    // kGrowth more than its bytes.
    void append_copy(std::string_view bytes);
    static constexpr size_t kGrowth = 16 * 1024;
    void append_static(std::string_view bytes) { add({bytes.data(), 0, bytes.size(), Kind::literal, 0}); }
    void append_ref(const BufferRef& buffer, std::string_view bytes);
    // Appends the bytes of `from` after its first `skip`, compactly, for keeping while a peer is slow: pieces of a
    // read buffer at least kKeepReferenced long stay referenced, smaller ones are copied (a 64-byte piece must not
    // pin a 64 KiB buffer), owned bytes are copied and literals stay as they are.
    void append_compacted(const WriteRequest& from, size_t skip);
    static constexpr size_t kKeepReferenced = Buffer::kSize / 4;
    void add(Segment segment) {
        segments.push_back(segment);
        total += segment.length;
    }
    // Memory this request holds while it waits: its copies, and a whole read buffer per buffer it references.
    size_t held_bytes() const { return owned_heap_bytes() + refs.size() * Buffer::kSize; }
    // The heap memory of `owned` (a short string lives inside the object).
    size_t owned_heap_bytes() const { return owned.capacity() > std::string().capacity() ? owned.capacity() : 0; }
    // uv_buf_t views of the segments, from byte `skip` on.
    void fill_bufs(size_t skip);
    void clear();
};

class WritePool {
  public:
    explicit WritePool(MemoryBudget& budget, size_t max_cached = 256) : budget_(budget), max_cached_(max_cached) {}
    std::unique_ptr<WriteRequest> acquire();
    void recycle(std::unique_ptr<WriteRequest> request);
    MemoryBudget& budget() { return budget_; }

  private:
    MemoryBudget& budget_;
    std::vector<std::unique_ptr<WriteRequest>> free_;
    size_t max_cached_;
};

// Bytes gathered while handling one read, handed to a Transport in one write. Owned bytes (heads, chunk framing)
// are copied in; body bytes are referenced in their read buffer.
class WriteBatch {
  public:
    explicit WriteBatch(WritePool& pool) : pool_(pool) {}
    ~WriteBatch() { clear(); }
    WriteBatch(const WriteBatch&) = delete;
    WriteBatch& operator=(const WriteBatch&) = delete;

    void append_copy(std::string_view bytes) { request().append_copy(bytes); }
    // Lets `write(std::string&)` append bytes straight into the batch's own storage (no temporary string).
    template <typename Writer>
    void append_written(Writer&& write) {
        WriteRequest& r = request();
        size_t offset = r.owned.size();
        write(r.owned);
        r.add({nullptr, offset, r.owned.size() - offset, WriteRequest::Kind::owned, 0});
    }
    // The same, placed before everything gathered so far (a head written once its body has been parsed).
    template <typename Writer>
    void prepend_written(Writer&& write) {
        WriteRequest& r = request();
        size_t offset = r.owned.size();
        write(r.owned);
        r.segments.insert(r.segments.begin(), {nullptr, offset, r.owned.size() - offset, WriteRequest::Kind::owned, 0});
        r.total += r.owned.size() - offset;
    }
    void append_static(std::string_view bytes) { request().append_static(bytes); }  // literals only
    void append_ref(const BufferRef& buffer, std::string_view bytes) {
        if (!bytes.empty()) request().append_ref(buffer, bytes);
    }
    bool empty() const { return !current_ || current_->segments.empty(); }
    size_t bytes() const { return current_ ? current_->total : 0; }
    void clear();
    // The gathered request, leaving the batch empty (null when nothing was gathered).
    std::unique_ptr<WriteRequest> take() { return std::move(current_); }

  private:
    WriteRequest& request() {
        if (!current_) current_ = pool_.acquire();
        return *current_;
    }

    WritePool& pool_;
    std::unique_ptr<WriteRequest> current_;
};

}  // namespace lb::net
