// What an operator decided about a backend through the admin API (drain, disable, enable, a weight), and the pure
// rules that combine it with health: whether the backend takes new requests, the weight the algorithms see and the
// state an operator is shown. Kept next to the pool's other eligibility rules so they are unit-tested together
// (test/unit/test_pool_admin_state.cpp); core applies them on each shard and renders them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lb::pool {

// The bounds of a backend's weight, in lb.yaml and through the admin API alike.
inline constexpr uint32_t kMinWeight = 1;
inline constexpr uint32_t kMaxWeight = 1000;

enum class AdminState : uint8_t {
    enabled,   // as health decides
    draining,  // no new requests; those in flight finish, idle keep-alive connections stay until they expire
    disabled,  // out now: no new requests and its idle keep-alive connections are closed
};

// One backend's operator overrides. Carried over a reload by host:port.
struct AdminOverride {
    AdminState state = AdminState::enabled;
    std::optional<uint32_t> weight;  // empty: the configured weight
    bool operator==(const AdminOverride&) const = default;
};

// "enabled", "draining", "disabled".
std::string_view admin_state_name(AdminState state);
// The API's verbs: "drain", "disable", "enable"; empty for anything else.
std::optional<AdminState> admin_action(std::string_view verb);
// Whether the pick path may send a new request there. Panic mode never overrides it: an operator's "out" is out.
inline bool takes_new_requests(AdminState state) { return state == AdminState::enabled; }
// A weight as the API receives it (decimal digits only, kMinWeight..kMaxWeight); empty when it is not one.
std::optional<uint32_t> parse_weight(std::string_view text);
// The weight the algorithms start from: the override when there is one, else the configured one, never 0.
uint32_t base_weight(uint32_t configured, const AdminOverride& admin);

// The health side of what an operator is shown (health::BackendHealth, flattened).
struct HealthView {
    bool healthy = true;
    bool ejected = false;     // a passive ejection is in force
    std::string_view reason;  // why, as the health monitor said it; may be empty
};

struct ReportedState {
    std::string_view state;  // "up", "down", "ejected", "draining", "disabled"
    std::string_view why;    // never empty
};

// An operator's decision outranks health (a disabled backend is "disabled" whether it is up or not); then an
// ejection, then the active checks.
ReportedState reported_state(const AdminOverride& admin, const HealthView& health);

}  // namespace lb::pool
