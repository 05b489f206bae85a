// One shard's idle upstream connections, per backend, most recently used first (a warm connection is reused
// before a cold one, and the cold ones time out after timeouts.upstream_keepalive).
#pragma once

#include <atomic>
#include <vector>

#include "base/intrusive_list.h"
#include "core/proxy/upstream_connection.h"

namespace lb::core {

class IdleUpstreams {
  public:
    // `max_idle_per_backend`, per backend (its pool's upstream.keepalive): SIZE_MAX keeps every connection that
    // comes back, as HAProxy and Envoy do, so the pool follows demand (it can never exceed the connections open at
    // the busiest moment).
    explicit IdleUpstreams(std::vector<size_t> max_idle_per_backend);

    // A usable idle connection to `backend`, detached from the pool, or nullptr. `for_unrepeatable`: the request
    // could not be sent again if the connection failed (it has a body), so each candidate is checked for a close
    // or bytes the loop has not seen yet (see UpstreamConnection::unpark).
    UpstreamConnection* take(pool::BackendId backend, bool for_unrepeatable);
    // Keeps `connection` for reuse, or closes it when the backend's list is full.
    void put(UpstreamConnection* connection);
    // Called by a connection that closes while idle.
    void forget(UpstreamConnection* connection);
    void close_all();
    // Closes `backend`'s idle connections (it was taken out by the admin API).
    void close_backend(pool::BackendId backend);
    // Any thread: idle connections over all backends (written only by the owning shard).
    uint64_t idle_total() const { return idle_total_.load(std::memory_order_relaxed); }

  private:
    void count(int64_t delta) {
        idle_total_.store(idle_total_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
    }

    std::vector<base::IntrusiveList<UpstreamConnection>> idle_;
    std::vector<size_t> max_idle_;
    std::atomic<uint64_t> idle_total_{0};
};

}  // namespace lb::core
