// Tells the service manager what lb is doing, through sd_notify(3): systemd's Type=notify waits for READY=1 before
// it starts units ordered after lb and shows STATUS= in `systemctl status`. Without NOTIFY_SOCKET in the
// environment (lb not started by systemd) every call does nothing.
#pragma once

#include <string_view>

namespace lb::core {

// The listeners are bound and the workers run: connections are accepted from now on.
void notify_ready(std::string_view status);
// A reload (SIGHUP) has begun; notify_ready() ends it, whether the new configuration was taken or not. Carries
// MONOTONIC_USEC, which systemd 253's Type=notify-reload requires and older versions ignore.
void notify_reloading();
// The drain has begun (SIGINT, SIGTERM): lb accepts nothing more and exits once in-flight requests finish.
void notify_stopping(std::string_view status);
// A line for `systemctl status`, with no change of state.
void notify_status(std::string_view status);

}  // namespace lb::core
