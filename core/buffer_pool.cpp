#include "core/buffer_pool.h"

namespace lb::core {

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
    return BufferRef(buffer);
}

void BufferPool::recycle(Buffer* buffer) {
    std::unique_ptr<Buffer> owned(buffer);
    if (free_.size() < max_cached_) free_.push_back(std::move(owned));
}

void WriteBatch::append_copy(std::string_view bytes) {
    segments_.push_back({nullptr, owned_.size(), bytes.size()});
    owned_.append(bytes);
    total_ += bytes.size();
}

void WriteBatch::append_static(std::string_view bytes) {
    segments_.push_back({bytes.data(), 0, bytes.size()});
    total_ += bytes.size();
}

void WriteBatch::append_ref(const BufferRef& buffer, std::string_view bytes) {
    if (bytes.empty()) return;
    segments_.push_back({bytes.data(), 0, bytes.size()});
    refs_.push_back(buffer);
    total_ += bytes.size();
}

void WriteBatch::clear() {
    owned_.clear();
    segments_.clear();
    refs_.clear();
    total_ = 0;
}

namespace {

// One uv_write in flight: owns the bytes and buffer references until libuv calls back.
struct WriteRequest {
    uv_write_t req;
    WriteTarget* target;
    std::string owned;
    std::vector<BufferRef> refs;
    std::vector<uv_buf_t> bufs;
};

void on_write(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> write(static_cast<WriteRequest*>(req->data));
    WriteTarget* target = write->target;
    write.reset();  // release the buffers before the target reacts (it may read more)
    target->on_write_done(status);
}

}  // namespace

int WriteBatch::flush(uv_stream_t* stream, WriteTarget* target) {
    auto write = std::make_unique<WriteRequest>();
    write->target = target;
    write->owned = std::move(owned_);
    write->refs = std::move(refs_);
    write->bufs.reserve(segments_.size());
    for (const auto& s : segments_) {
        const char* base = s.base ? s.base : write->owned.data() + s.offset;
        write->bufs.push_back(uv_buf_init(const_cast<char*>(base), static_cast<unsigned>(s.length)));
    }
    clear();
    write->req.data = write.get();
    int rc = uv_write(&write->req, stream, write->bufs.data(), static_cast<unsigned>(write->bufs.size()), on_write);
    if (rc == 0) write.release();  // on_write owns it from here
    return rc;
}

}  // namespace lb::core
