// Timeouts for many connections on one uv_timer_t. Every timeout of a given kind (a "lane") has the same
// duration, so a lane's deadlines are armed in the order they fall due: each lane is a FIFO list, arming is an
// append and disarming an unlink, both O(1) without allocation, and the one timer only ever needs the earliest
// head. A connection carries a 24-byte hook instead of a 152-byte uv_timer_t (and skips its heap operations).
// Owner loop only.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <vector>

namespace lb::core {

enum class Lane : uint8_t {
    client_header,      // a request head is arriving
    client_keepalive,   // a client connection idle between requests
    client_send,        // a response waits for a client that does not read
    connect,            // an upstream connect
    upstream_response,  // waiting for (more of) a backend's response
    queue,              // waiting in the shard's queue for a connection slot
    linger,             // discarding input after an error response, before closing
    upstream_idle,      // an idle pooled upstream connection
    drain_idle,         // a client connection with no request in progress while its shard drains
    tunnel,             // an upgraded connection with no byte relayed either way
    count
};

class DeadlineQueue;

// Embedded in whatever can time out.
class DeadlineHook {
  public:
    bool armed() const { return lane_ != kNone; }

  private:
    friend class DeadlineQueue;
    static constexpr uint8_t kNone = 0xff;
    DeadlineHook* prev_ = nullptr;
    DeadlineHook* next_ = nullptr;
    uint64_t due_ms_ = 0;
    uint8_t lane_ = kNone;
};

class DeadlineQueue {
  public:
    using Fire = void (*)(DeadlineHook& hook);
    struct LaneSetting {
        uint64_t duration_ms;
        Fire fire;  // called for each hook of the lane that falls due, after it has been disarmed; it may arm or
                    // disarm hooks
    };
    using Lanes = std::array<LaneSetting, static_cast<size_t>(Lane::count)>;

    DeadlineQueue(uv_loop_t* loop, const Lanes& lanes);
    DeadlineQueue(const DeadlineQueue&) = delete;
    DeadlineQueue& operator=(const DeadlineQueue&) = delete;

    // (Re)arms `hook` to fall due one lane's duration from now, replacing any deadline it had.
    void arm(DeadlineHook& hook, Lane lane) { arm(hook, static_cast<uint8_t>(lane)); }
    void arm(DeadlineHook& hook, uint8_t lane);
    // A lane beyond the fixed ones, for a timeout of another length (a route's own): its index for arm(). The same
    // setting twice gets the same lane. At most kMaxLanes lanes in all.
    static constexpr size_t kMaxLanes = 254;
    uint8_t add_lane(LaneSetting setting);
    void disarm(DeadlineHook& hook);
    // Closes the timer handle; nothing fires after this.
    void close();

  private:
    struct List {
        DeadlineHook* head = nullptr;
        DeadlineHook* tail = nullptr;
    };
    static void on_timer(uv_timer_t* timer);
    void schedule(uint64_t due_ms);
    void expire();

    uv_loop_t* loop_;
    uv_timer_t timer_;
    std::vector<LaneSetting> settings_;  // the fixed lanes, then the added ones
    std::vector<List> lanes_;
    uint64_t scheduled_due_ms_ = 0;  // when the timer is set to fire; 0 = not set
};

}  // namespace lb::core
