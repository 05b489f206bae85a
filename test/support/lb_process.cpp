#include "test/support/lb_process.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "test/support/metrics_text.h"

namespace lb::test {

RunningLb::RunningLb(const std::string& name, const std::string& yaml, std::vector<std::string> prefix)
    : config_path_(write_temp_file(name + ".yaml", yaml)), log_path_(write_temp_file(name + ".log", "")) {
    prefix.insert(prefix.end(), {LB_BINARY, "-c", config_path_});
    process_ = std::make_unique<Process>(prefix, log_path_);
    port_ = wait_for_lb_port(log_path_);
    // The same line names the admin listener when there is one: "...; admin on 127.0.0.1:PORT".
    std::string text = log();
    const std::string marker = "; admin on ";
    size_t at = text.find(marker);
    if (at != std::string::npos) {
        std::string address = text.substr(at + marker.size(), text.find('\n', at) - at - marker.size());
        admin_port_ = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    }
}

std::string RunningLb::log() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void RunningLb::wait_for_log(const std::string& text, std::chrono::milliseconds limit) const {
    wait_until([&] { return log().find(text) != std::string::npos; }, ("lb logs '" + text + "'").c_str(), limit);
}

double RunningLb::metric(const std::string& series) const {
    REQUIRE(admin_port_ != 0);
    return scrape_metric(admin_port_, series);
}

}  // namespace lb::test
