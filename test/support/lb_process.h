// The lb executable as a child process, on a config the test writes: for what only the real binary shows (its
// memory, its signals, its log, its metrics as an operator scrapes them).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test/support/test_support.h"

namespace lb::test {

class RunningLb {
  public:
    // Writes `yaml` (which should listen on 127.0.0.1:0, and put admin on 127.0.0.1:0 for metric()) to NAME.yaml,
    // starts lb on it with its output in NAME.log, and waits until it listens. `prefix` goes before the binary
    // (prlimit, say).
    RunningLb(const std::string& name, const std::string& yaml, std::vector<std::string> prefix = {});

    uint16_t port() const { return port_; }
    uint16_t admin_port() const { return admin_port_; }  // 0 when lb logged no admin listener
    Process& process() { return *process_; }
    const std::string& config_path() const { return config_path_; }
    const std::string& log_path() const { return log_path_; }
    // Everything lb has logged so far.
    std::string log() const;
    // Waits until lb has logged a line containing `text`; fails the test after `limit`.
    void wait_for_log(const std::string& text, std::chrono::milliseconds limit = std::chrono::seconds{20}) const;
    // One series from a fresh scrape of /metrics; fails the test when it is missing (metrics_text.h).
    double metric(const std::string& series) const;

  private:
    std::string config_path_;
    std::string log_path_;
    std::unique_ptr<Process> process_;
    uint16_t port_ = 0;
    uint16_t admin_port_ = 0;
};

}  // namespace lb::test
