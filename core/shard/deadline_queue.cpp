#include "core/shard/deadline_queue.h"

#include <stdexcept>

namespace lb::core {

DeadlineQueue::DeadlineQueue(uv_loop_t* loop, const Lanes& lanes)
    : loop_(loop), settings_(lanes.begin(), lanes.end()), lanes_(lanes.size()) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    // The timer alone must not keep a drained loop alive: connections hold it alive through their handles.
    uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
}

uint8_t DeadlineQueue::add_lane(LaneSetting setting) {
    for (size_t lane = 0; lane < settings_.size(); ++lane) {
        if (settings_[lane].duration_ms == setting.duration_ms && settings_[lane].fire == setting.fire) {
            return static_cast<uint8_t>(lane);
        }
    }
    if (settings_.size() >= kMaxLanes) throw std::length_error("too many timeout lanes");
    settings_.push_back(setting);
    lanes_.emplace_back();
    return static_cast<uint8_t>(settings_.size() - 1);
}

void DeadlineQueue::arm(DeadlineHook& hook, uint8_t lane) {
    disarm(hook);
    const size_t index = lane;
    List& list = lanes_[index];
    hook.lane_ = lane;
    hook.due_ms_ = uv_now(loop_) + settings_[index].duration_ms;
    hook.prev_ = list.tail;
    hook.next_ = nullptr;
    if (list.tail) {
        list.tail->next_ = &hook;
    } else {
        list.head = &hook;
    }
    list.tail = &hook;
    if (list.head == &hook) schedule(hook.due_ms_);
}

void DeadlineQueue::disarm(DeadlineHook& hook) {
    if (!hook.armed()) return;
    List& list = lanes_[hook.lane_];
    if (hook.prev_) {
        hook.prev_->next_ = hook.next_;
    } else {
        list.head = hook.next_;
    }
    if (hook.next_) {
        hook.next_->prev_ = hook.prev_;
    } else {
        list.tail = hook.prev_;
    }
    hook.prev_ = hook.next_ = nullptr;
    hook.lane_ = DeadlineHook::kNone;
    // The timer stays set: if it was for this hook it fires early, finds nothing due and re-aims.
}

void DeadlineQueue::schedule(uint64_t due_ms) {
    if (scheduled_due_ms_ != 0 && scheduled_due_ms_ <= due_ms) return;
    scheduled_due_ms_ = due_ms;
    uint64_t now = uv_now(loop_);
    uv_timer_start(&timer_, &DeadlineQueue::on_timer, due_ms > now ? due_ms - now : 0, 0);
}

void DeadlineQueue::on_timer(uv_timer_t* timer) { static_cast<DeadlineQueue*>(timer->data)->expire(); }

void DeadlineQueue::expire() {
    scheduled_due_ms_ = 0;
    uint64_t now = uv_now(loop_);
    for (size_t lane = 0; lane < lanes_.size(); ++lane) {
        List& list = lanes_[lane];
        while (list.head && list.head->due_ms_ <= now) {
            DeadlineHook& due = *list.head;
            disarm(due);
            settings_[lane].fire(due);
        }
    }
    uint64_t earliest = 0;
    for (const List& list : lanes_) {
        if (list.head && (earliest == 0 || list.head->due_ms_ < earliest)) earliest = list.head->due_ms_;
    }
    if (earliest != 0) schedule(earliest);
}

void DeadlineQueue::close() { uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr); }

}  // namespace lb::core
