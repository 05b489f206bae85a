#include "core/proxy/exchange.h"

namespace lb::core {

std::unique_ptr<Exchange> ExchangePool::acquire(http::MessageSink& sink) {
    if (free_.empty()) return std::make_unique<Exchange>(sink, limits_);
    std::unique_ptr<Exchange> exchange = std::move(free_.back());
    free_.pop_back();
    exchange->request.set_sink(sink);
    return exchange;
}

void ExchangePool::recycle(std::unique_ptr<Exchange> exchange) {
    if (free_.size() >= max_cached_) return;
    // Everything but the parser's storage starts over.
    exchange->request.reset();
    exchange->request.trim_storage(4096);
    static_cast<ExchangeState&>(*exchange) = ExchangeState{};
    free_.push_back(std::move(exchange));
}

}  // namespace lb::core
