#include "core/runtime/service_notify.h"

#include <fmt/format.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstring>
#include <string>

#include "base/log.h"

namespace lb::core {

namespace {

// STATUS= ends at a newline: one in the text would start a field systemd does not know.
std::string status_field(std::string_view status) {
    std::string line(status);
    for (char& c : line) {
        if (c == '\n') c = ' ';
    }
    return "STATUS=" + line;
}

void notify(const std::string& fields) {
    // Negative: the socket named in NOTIFY_SOCKET could not be written. Worth a line, never worth stopping for.
    int result = sd_notify(0, fields.c_str());
    if (result < 0) base::log(base::LogLevel::warn, "sd_notify failed: {}", std::strerror(-result));
}

uint64_t monotonic_usec() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
}

}  // namespace

void notify_ready(std::string_view status) { notify("READY=1\n" + status_field(status)); }

void notify_reloading() {
    notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration", monotonic_usec()));
}

void notify_stopping(std::string_view status) { notify("STOPPING=1\n" + status_field(status)); }

void notify_status(std::string_view status) { notify(status_field(status)); }

}  // namespace lb::core
