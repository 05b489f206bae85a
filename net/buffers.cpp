#include "net/buffers.h"

namespace lb::net {

namespace {

// A recycled write request keeps this much of its copy storage; a larger one (a backlog that grew while a peer
// read slowly) gives it back, so the free list never holds more than this per request.
constexpr size_t kKeptCapacity = 4096;

}  // namespace

void BufferRef::reset() {
    if (buffer_ && --buffer_->refs_ == 0) buffer_->pool_->recycle(buffer_);
    buffer_ = nullptr;
}

BufferPool::~BufferPool() = default;

BufferRef BufferPool::acquire() {
    if (free_.empty()) {
        auto fresh = std::make_unique<Buffer>();
        fresh->pool_ = this;
        free_.push_back(std::move(fresh));
    }
    Buffer* buffer = free_.back().release();
    free_.pop_back();
    ++in_use_;
    budget_.charge(Buffer::kSize);
    return BufferRef(buffer);
}

void BufferPool::recycle(Buffer* buffer) {
    std::unique_ptr<Buffer> owned(buffer);
    if (free_.size() < max_cached_) free_.push_back(std::move(owned));
    --in_use_;
    budget_.release(Buffer::kSize);
}

void WriteRequest::append_copy(std::string_view bytes) {
    if (bytes.empty()) return;
    if (owned.capacity() < owned.size() + bytes.size()) {
        std::string larger;
        larger.reserve(owned.size() + bytes.size() + kGrowth);  // exact on an empty string: no doubling
        larger.append(owned);
        owned.swap(larger);
    }
    // Consecutive copies become one segment, so a backlog of many small pieces is one iovec.
    if (!segments.empty() && segments.back().kind == Kind::owned &&
        segments.back().offset + segments.back().length == owned.size()) {
        owned.append(bytes);
        segments.back().length += bytes.size();
        total += bytes.size();
        return;
    }
    size_t offset = owned.size();
    owned.append(bytes);
    add({nullptr, offset, bytes.size(), Kind::owned, 0});
}

void WriteRequest::append_ref(const BufferRef& buffer, std::string_view bytes) {
    // Pieces of one read come in order, so a buffer already referenced is the last one.
    if (refs.empty() || !refs.back().same_as(buffer)) refs.push_back(buffer);
    add({bytes.data(), 0, bytes.size(), Kind::referenced, static_cast<uint16_t>(refs.size() - 1)});
}

void WriteRequest::append_compacted(const WriteRequest& from, size_t skip) {
    for (const auto& s : from.segments) {
        if (skip >= s.length) {
            skip -= s.length;
            continue;
        }
        size_t length = s.length - skip;
        switch (s.kind) {
            case Kind::owned:
                append_copy({from.owned.data() + s.offset + skip, length});
                break;
            case Kind::literal:
                append_static({s.base + skip, length});
                break;
            case Kind::referenced:
                if (length >= kKeepReferenced) {
                    append_ref(from.refs[s.ref], {s.base + skip, length});
                } else {
                    append_copy({s.base + skip, length});
                }
                break;
        }
        skip = 0;
    }
}

void WriteRequest::fill_bufs(size_t skip) {
    bufs.clear();
    bufs.reserve(segments.size());
    for (const auto& s : segments) {
        if (skip >= s.length) {
            skip -= s.length;
            continue;
        }
        const char* base = (s.kind == Kind::owned ? owned.data() + s.offset : s.base) + skip;
        bufs.push_back(uv_buf_init(const_cast<char*>(base), static_cast<unsigned>(s.length - skip)));
        skip = 0;
    }
}

void WriteRequest::clear() {
    if (owned.capacity() > kKeptCapacity) {
        std::string().swap(owned);
    } else {
        owned.clear();
    }
    segments.clear();
    refs.clear();
    bufs.clear();
    total = 0;
    owner = nullptr;
}

std::unique_ptr<WriteRequest> WritePool::acquire() {
    if (free_.empty()) {
        auto fresh = std::make_unique<WriteRequest>();
        fresh->pool = this;
        return fresh;
    }
    auto request = std::move(free_.back());
    free_.pop_back();
    return request;
}

void WritePool::recycle(std::unique_ptr<WriteRequest> request) {
    if (request->charged != 0) {
        budget_.release(request->charged);
        request->charged = 0;
    }
    request->clear();
    if (free_.size() < max_cached_) free_.push_back(std::move(request));
}

void WriteBatch::clear() {
    if (current_) pool_.recycle(std::move(current_));
}

}  // namespace lb::net
