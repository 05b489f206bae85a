#include "metrics/shard_metrics.h"

namespace lb::metrics {

ShardMetrics::ShardMetrics(size_t backend_count, bool enabled) : enabled_(enabled), backends_(backend_count) {}

MethodClass method_class(std::string_view method) {
    // Called once per response; a length switch first keeps it to one or two short compares.
    switch (method.size()) {
        case 3:
            if (method == "GET") return MethodClass::get;
            if (method == "PUT") return MethodClass::put;
            break;
        case 4:
            if (method == "HEAD") return MethodClass::head;
            if (method == "POST") return MethodClass::post;
            break;
        case 6:
            if (method == "DELETE") return MethodClass::delete_;
            break;
        default:
            break;
    }
    return MethodClass::other;
}

}  // namespace lb::metrics
