// A demo backend that is listening once constructed, for tests that run lb against real backends.
#pragma once

#include <string>

#include "demo/demo_backend.h"

namespace lb::test {

struct StartedBackend : lb::demo::DemoBackend {
    explicit StartedBackend(std::string id = "b1") : DemoBackend({.id = std::move(id)}) { start(); }
    // host:port as lb.yaml names it.
    std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
};

}  // namespace lb::test
