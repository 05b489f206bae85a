#include "core/transport/buffers.h"

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

void WriteRequest::clear() {
    owned.clear();
    segments.clear();
    refs.clear();
    bufs.clear();
    total = 0;
    target = nullptr;
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
    request->clear();
    if (free_.size() < max_cached_) free_.push_back(std::move(request));
}

void WriteBatch::append_copy(std::string_view bytes) {
    WriteRequest& r = request();
    size_t offset = r.owned.size();
    r.owned.append(bytes);
    add({nullptr, offset, bytes.size()});
}

void WriteBatch::append_static(std::string_view bytes) {
    request();
    add({bytes.data(), 0, bytes.size()});
}

void WriteBatch::append_ref(const BufferRef& buffer, std::string_view bytes) {
    if (bytes.empty()) return;
    request().refs.push_back(buffer);
    add({bytes.data(), 0, bytes.size()});
}

void WriteBatch::clear() {
    if (current_) pool_.recycle(std::move(current_));
}

namespace {

void on_write(uv_write_t* req, int status) {
    std::unique_ptr<WriteRequest> write(static_cast<WriteRequest*>(req->data));
    WriteTarget* target = write->target;
    // Release the buffers before the target reacts (it may read more into them).
    write->pool->recycle(std::move(write));
    target->on_write_done(status);
}

}  // namespace

int WriteBatch::flush(uv_stream_t* stream, WriteTarget* target) {
    if (!current_) return 0;
    std::unique_ptr<WriteRequest> write = std::move(current_);
    write->target = target;
    write->bufs.reserve(write->segments.size());
    for (const auto& s : write->segments) {
        const char* base = s.base ? s.base : write->owned.data() + s.offset;
        write->bufs.push_back(uv_buf_init(const_cast<char*>(base), static_cast<unsigned>(s.length)));
    }
    // Most writes fit in the socket buffer: try them straight away. A write that completes here needs no
    // request in libuv's queue, no callback and no epoll_ctl (uv_write re-arms the watcher even when it
    // writes everything at once).
    int written = uv_try_write(stream, write->bufs.data(), static_cast<unsigned>(write->bufs.size()));
    if (written < 0 && written != UV_EAGAIN) {
        pool_.recycle(std::move(write));
        return written;
    }
    size_t done = written > 0 ? static_cast<size_t>(written) : 0;
    if (done == write->total) {
        pool_.recycle(std::move(write));
        return 0;
    }
    // Queue what is left, from the first byte not yet written.
    size_t skip = 0;
    while (done >= write->bufs[skip].len) done -= write->bufs[skip++].len;
    write->bufs[skip].base += done;
    write->bufs[skip].len -= static_cast<unsigned>(done);
    write->req.data = write.get();
    int rc = uv_write(&write->req, stream, write->bufs.data() + skip, static_cast<unsigned>(write->bufs.size() - skip),
                      on_write);
    if (rc == 0) {
        write.release();  // on_write owns it from here
    } else {
        pool_.recycle(std::move(write));
    }
    return rc;
}

}  // namespace lb::core
