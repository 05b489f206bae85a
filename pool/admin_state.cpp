#include "pool/admin_state.h"

#include <algorithm>
#include <charconv>

namespace lb::pool {

std::string_view admin_state_name(AdminState state) {
    switch (state) {
        case AdminState::enabled:
            return "enabled";
        case AdminState::draining:
            return "draining";
        case AdminState::disabled:
            return "disabled";
    }
    return "enabled";
}

std::optional<AdminState> admin_action(std::string_view verb) {
    if (verb == "drain") return AdminState::draining;
    if (verb == "disable") return AdminState::disabled;
    if (verb == "enable") return AdminState::enabled;
    return std::nullopt;
}

std::optional<uint32_t> parse_weight(std::string_view text) {
    // from_chars alone would accept a leading '-' for signed types and stop at the first non-digit: refuse both.
    if (text.empty() || text.size() > 4 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    uint32_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value < kMinWeight || value > kMaxWeight) return std::nullopt;
    return value;
}

uint32_t base_weight(uint32_t configured, const AdminOverride& admin) {
    return std::max<uint32_t>(admin.weight.value_or(configured), 1);
}

ReportedState reported_state(const AdminOverride& admin, const HealthView& health) {
    if (admin.state == AdminState::disabled) return {"disabled", "disabled by the admin API"};
    if (admin.state == AdminState::draining) return {"draining", "drained by the admin API"};
    if (!health.healthy && health.ejected) {
        return {"ejected", health.reason.empty() ? "ejected after failed requests" : health.reason};
    }
    if (!health.healthy) return {"down", health.reason.empty() ? "failed its health checks" : health.reason};
    return {"up", health.reason.empty() ? "no check has failed" : health.reason};
}

}  // namespace lb::pool
