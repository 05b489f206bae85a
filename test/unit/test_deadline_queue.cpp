// The shard's timeout queue on a real loop: deadlines fire in order across lanes, re-arming moves a deadline,
// disarming cancels it, and the loop closes clean.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/shard/deadline_queue.h"

using namespace lb::core;

namespace {

struct Timed : DeadlineHook {
    std::string name;
};

std::vector<std::string>* fired = nullptr;

void record(DeadlineHook& hook) { fired->push_back(static_cast<Timed&>(hook).name); }

}  // namespace

TEST_CASE("deadlines fire in due order across lanes, re-arming and disarming move and cancel them", "[deadlines]") {
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    std::vector<std::string> order;
    fired = &order;
    DeadlineQueue::Lanes lanes{};
    for (auto& lane : lanes) lane = {1000, &record};
    lanes[static_cast<size_t>(Lane::client_header)].duration_ms = 60;
    lanes[static_cast<size_t>(Lane::connect)].duration_ms = 20;
    lanes[static_cast<size_t>(Lane::upstream_response)].duration_ms = 40;
    {
        DeadlineQueue queue(&loop, lanes);
        Timed a, b, c, d;
        a.name = "a";
        b.name = "b";
        c.name = "c";
        d.name = "d";
        queue.arm(a, Lane::client_header);      // 60 ms
        queue.arm(b, Lane::connect);            // 20 ms
        queue.arm(c, Lane::upstream_response);  // 40 ms
        queue.arm(d, Lane::connect);            // 20 ms, then cancelled
        queue.arm(b, Lane::client_header);      // moved: now 60 ms, after a
        queue.disarm(d);
        CHECK_FALSE(d.armed());
        // Keeps the loop alive until the last deadline (the queue's own timer does not).
        uv_timer_t keep_alive;
        uv_timer_init(&loop, &keep_alive);
        uv_timer_start(
            &keep_alive, [](uv_timer_t*) {}, 150, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        CHECK(order == std::vector<std::string>{"c", "a", "b"});
        CHECK_FALSE(a.armed());
        queue.close();
        uv_close(reinterpret_cast<uv_handle_t*>(&keep_alive), nullptr);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    CHECK(uv_loop_close(&loop) == 0);
}
