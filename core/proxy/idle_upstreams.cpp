#include "core/proxy/idle_upstreams.h"

namespace lb::core {

IdleUpstreams::IdleUpstreams(std::vector<size_t> max_idle_per_backend)
    : idle_(max_idle_per_backend.size()), max_idle_(std::move(max_idle_per_backend)) {}

UpstreamConnection* IdleUpstreams::take(pool::BackendId backend, bool for_unrepeatable) {
    while (UpstreamConnection* connection = idle_[backend].pop_front()) {
        count(-1);
        if (connection->unpark(for_unrepeatable)) return connection;
    }
    return nullptr;
}

void IdleUpstreams::put(UpstreamConnection* connection) {
    auto& list = idle_[connection->backend()];
    if (list.size() >= max_idle_[connection->backend()]) {
        connection->close();
        return;
    }
    list.push_front(connection);
    count(+1);
    connection->park();
}

void IdleUpstreams::forget(UpstreamConnection* connection) {
    if (!connection->linked()) return;
    idle_[connection->backend()].remove(connection);
    count(-1);
}

void IdleUpstreams::close_all() {
    for (pool::BackendId backend = 0; backend < idle_.size(); ++backend) close_backend(backend);
}

void IdleUpstreams::close_backend(pool::BackendId backend) {
    if (backend >= idle_.size()) return;
    while (UpstreamConnection* connection = idle_[backend].pop_front()) {
        count(-1);
        connection->close();
    }
}

}  // namespace lb::core
