#include "core/shard/shard_inbox.h"

namespace lb::core {

void ShardInbox::init(uv_loop_t* loop, Shard& shard) {
    shard_ = &shard;
    async_.data = this;
    uv_async_init(loop, &async_, &ShardInbox::on_wakeup);
}

bool ShardInbox::post(Task task) {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    tasks_.push_back(std::move(task));
    // Under the lock, so close() cannot slip between the check and the send.
    uv_async_send(&async_);
    return true;
}

void ShardInbox::on_wakeup(uv_async_t* async) {
    auto* self = static_cast<ShardInbox*>(async->data);
    std::vector<Task> tasks;
    {
        std::lock_guard lock(self->mutex_);
        tasks.swap(self->tasks_);
    }
    for (auto& task : tasks) task(*self->shard_);
}

void ShardInbox::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        tasks_.clear();
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

}  // namespace lb::core
