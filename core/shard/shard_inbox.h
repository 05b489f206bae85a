// The only way into a shard from another thread: a locked queue of tasks plus a uv_async_t doorbell. Sends
// coalesce (a doorbell, not a queue), so the shard drains every queued task each time it wakes.
#pragma once

#include <uv.h>

#include <functional>
#include <mutex>
#include <vector>

namespace lb::core {

class Shard;

class ShardInbox {
  public:
    using Task = std::function<void(Shard&)>;

    // Any thread. Returns false once the inbox is closed (the shard has stopped): the task will not run.
    bool post(Task task);

    // Owner loop only.
    void init(uv_loop_t* loop, Shard& shard);
    void close();

  private:
    static void on_wakeup(uv_async_t* async);

    std::mutex mutex_;
    std::vector<Task> tasks_;  // guarded by mutex_
    bool closed_ = false;      // guarded by mutex_
    uv_async_t async_;
    Shard* shard_ = nullptr;
};

}  // namespace lb::core
