// The pool's vocabulary: backends as configured (shared, read-only) and what each shard knows of them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lb::pool {

using BackendId = uint32_t;  // index into the pool's backend list

// A backend as configured. Shared read-only by every shard. `name` and `weight` come first so that
// `Backend{name, weight}` keeps meaning what it meant before the other fields existed.
struct Backend {
    std::string name;     // "host:port" as written in lb.yaml; also the backend's identity across snapshots
    uint32_t weight = 1;  // relative share for the weighted algorithms; 0 is treated as 1
    // Most requests in flight to this backend across all shards; 0 = unlimited. Each ShardPool enforces its
    // share of it (see ShardPoolOptions), because a shard counts only its own requests.
    uint32_t max_connections = 0;
    // A backup receives traffic only while no primary backend is eligible (all unhealthy, draining, full or
    // already tried for the request), as nginx's and HAProxy's `backup` servers do.
    bool backup = false;
};

// What one shard knows of a backend. Written only by the owning shard's loop.
struct BackendState {
    uint32_t in_flight = 0;  // requests this shard has dispatched and not yet finished
    bool healthy = true;     // as the health checks decided; see ShardPool for panic mode
    bool draining = false;   // takes no new requests; those in flight finish normally
};

enum class Outcome {
    success,          // a response came back
    connect_failure,  // refused, unreachable or connect timeout
    timeout,          // no response in time
    reset,            // connection lost before the response completed
    cancelled,        // the client went away or the request was refused: says nothing about the backend
};

// What an algorithm learns when a request it proposed has finished.
struct Result {
    Outcome outcome = Outcome::success;
    // From dispatch to the response head (or to the failure). Empty when the caller did not measure it.
    std::optional<std::chrono::nanoseconds> latency;
    // The caller's monotonic clock when the request finished, on the same scale as PickContext::now.
    std::chrono::nanoseconds now{0};
};

// A small set of backend ids: inline for the few ids a request tries, a bitmap beyond that.
// Copy-assigning into an existing set reuses its storage, so a set kept as a member does not allocate on
// the request path once it has grown to its working size.
class BackendSet {
  public:
    // Inline: every algorithm calls it once per backend it considers, usually on an empty set.
    bool contains(BackendId id) const {
        if (size_ == 0) return false;
        if (!bits_.empty()) return id / 64 < bits_.size() && (bits_[id / 64] >> (id % 64) & 1) != 0;
        for (size_t i = 0; i < size_; ++i) {
            if (inline_[i] == id) return true;
        }
        return false;
    }
    void insert(BackendId id);
    void insert_all(const BackendSet& other);
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    void clear();

    // Calls `visit(id)` for every member, in no particular order.
    template <typename Visit>
    void for_each(Visit&& visit) const {
        if (bits_.empty()) {
            for (size_t i = 0; i < size_; ++i) visit(inline_[i]);
            return;
        }
        for (size_t word = 0; word < bits_.size(); ++word) {
            for (uint64_t rest = bits_[word]; rest != 0; rest &= rest - 1) {
                visit(static_cast<BackendId>(word * 64 + static_cast<size_t>(__builtin_ctzll(rest))));
            }
        }
    }

  private:
    static constexpr size_t kInline = 8;
    std::array<BackendId, kInline> inline_{};
    std::vector<uint64_t> bits_;  // used once more than kInline ids are held
    size_t size_ = 0;
};

}  // namespace lb::pool
