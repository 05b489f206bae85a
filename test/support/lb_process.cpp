#include "test/support/lb_process.h"

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sstream>

#include "test/support/metrics_text.h"

namespace lb::test {

namespace {

size_t count_of(const std::string& text, const std::string& needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
    return count;
}

// The ports in "listening on 127.0.0.1:A, unix:/x, 127.0.0.1:B with ..." (a Unix socket counts as 0).
std::vector<uint16_t> logged_ports(const std::string& log) {
    const std::string marker = "listening on ";
    size_t at = log.find(marker);
    REQUIRE(at != std::string::npos);
    size_t begin = at + marker.size();
    std::string list = log.substr(begin, log.find(" with ", begin) - begin);
    std::vector<uint16_t> ports;
    for (size_t start = 0; start <= list.size();) {
        size_t end = list.find(", ", start);
        std::string address = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
        ports.push_back(address.rfind("unix:", 0) == 0
                            ? 0
                            : static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
        if (end == std::string::npos) break;
        start = end + 2;
    }
    return ports;
}

}  // namespace

RunningLb::RunningLb(const std::string& name, const std::string& yaml, std::vector<std::string> prefix)
    : config_path_(write_temp_file(name + ".yaml", yaml)), log_path_(write_temp_file(name + ".log", "")) {
    prefix.insert(prefix.end(), {LB_BINARY, "-c", config_path_});
    process_ = std::make_unique<Process>(prefix, log_path_);
    port_ = wait_for_lb_port(log_path_);
    // The same line names the admin listener when there is one: "...; admin on 127.0.0.1:PORT".
    std::string text = log();
    ports_ = logged_ports(text);
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

bool RunningLb::reload(const std::string& yaml) {
    auto outcomes = [&](const char* what) { return count_of(log(), what); };
    size_t succeeded = outcomes("reloaded "), failed = outcomes("reload failed");
    write_temp_file(config_path_.substr(config_path_.rfind('/') + 1), yaml);
    process_->signal(SIGHUP);
    wait_until([&] { return outcomes("reloaded ") + outcomes("reload failed") > succeeded + failed; },
               "lb logs the reload's outcome");
    return outcomes("reloaded ") > succeeded;
}

double RunningLb::metric(const std::string& series) const {
    REQUIRE(admin_port_ != 0);
    return scrape_metric(admin_port_, series);
}

}  // namespace lb::test
