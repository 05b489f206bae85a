// For config loader tests: what loading a YAML text says is wrong with it. Header only, so a unit test that links
// just lb_config can use it.
#pragma once

#include <string>

#include "core/config/config.h"

namespace lb::test {

// The what() of the ConfigError that loading `yaml` (named "t.yaml") throws, or "" when it loads.
inline std::string config_error_of(const std::string& yaml) {
    try {
        core::load_config_string(yaml, "t.yaml");
    } catch (const core::ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace lb::test
