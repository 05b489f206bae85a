#include "health/carry_over.h"

#include <map>
#include <string>

namespace lb::health {

void carry_over_health(const HealthConfig& config, const std::vector<BackendHealth>& previous,
                       std::vector<HealthTarget>& targets) {
    if (!config.enabled) return;
    std::map<std::string, bool, std::less<>> known;
    for (const BackendHealth& b : previous) known[b.name] = b.healthy;
    bool known_up = false;
    for (HealthTarget& target : targets) {
        if (auto it = known.find(target.name); it != known.end()) {
            target.starts_healthy = it->second;
            known_up = known_up || it->second;
        }
    }
    if (!known_up) return;
    for (HealthTarget& target : targets) {
        if (!target.starts_healthy) target.starts_healthy = false;
    }
}

}  // namespace lb::health
