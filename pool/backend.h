// The pool's vocabulary: backends as configured (shared, read-only) and what each shard knows of them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lb::pool {

using BackendId = uint32_t;  // index into the pool's backend list

// A backend as configured. Shared read-only by every shard.
struct Backend {
    std::string name;  // "host:port" as written in lb.yaml
    uint32_t weight = 1;
};

// What one shard knows of a backend. Written only by the owning shard's loop.
struct BackendState {
    uint32_t in_flight = 0;  // requests this shard has dispatched and not yet finished
    bool healthy = true;
};

enum class Outcome {
    success,          // a response came back
    connect_failure,  // refused, unreachable or connect timeout
    timeout,          // no response in time
    reset,            // connection lost before the response completed
    cancelled,        // the client went away or the request was refused: says nothing about the backend
};

// A small set of backend ids: inline for the few ids a request tries, a bitmap beyond that.
class BackendSet {
public:
    bool contains(BackendId id) const;
    void insert(BackendId id);
    size_t size() const { return size_; }
    void clear();

private:
    static constexpr size_t kInline = 8;
    std::array<BackendId, kInline> inline_{};
    std::vector<uint64_t> bits_;  // used once more than kInline ids are held
    size_t size_ = 0;
};

}  // namespace lb::pool
