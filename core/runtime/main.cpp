// lb: the command line. Loads lb.yaml, starts the shards, turns SIGHUP into a reload, SIGUSR1 into reopening the
// access log and SIGINT/SIGTERM into a graceful drain.
#include <fmt/format.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "base/log.h"
#include "core/config/config.h"
#include "core/runtime/heap_trim.h"
#include "core/runtime/process_limits.h"
#include "core/runtime/service_notify.h"
#include "core/runtime/supervisor.h"

namespace {

constexpr const char* kUsage = R"(Usage: lb [-c FILE] [--check]
  -c, --config FILE  configuration file (default: lb.yaml)
      --check        validate the configuration and exit: 0 if valid, 1 if not
  -h, --help         show this help
  -V, --version      show the version

SIGHUP reloads FILE: new connections go to the new configuration at once, connections in progress finish
under the old one (up to its timeouts.drain). A file with an error is reported and the old configuration kept.
SIGUSR1 opens the access log file again (after logrotate has moved it).
SIGINT or SIGTERM stops accepting, lets in-flight requests finish (up to timeouts.drain), then exits 0.
A second signal exits at once.
)";

struct Options {
    std::string config_path = "lb.yaml";
    bool check_only = false;
};

int run(const std::string& config_path, lb::core::Config config) {
    lb::core::Supervisor supervisor(config_path, std::move(config));
    // The main thread only handles signals; the shards do all the work.
    uv_loop_t loop;
    uv_loop_init(&loop);
    std::optional<lb::core::HeapTrimmer> heap_trimmer(std::in_place, loop);
    struct Control {
        lb::core::Supervisor& supervisor;
        uv_async_t drained{};
        std::thread waiter;  // started by the first SIGINT/SIGTERM
    } control{supervisor, {}, {}};
    uv_async_init(&loop, &control.drained, [](uv_async_t* handle) { uv_stop(handle->loop); });
    control.drained.data = &control;

    // Handlers are in place before lb says it is listening, so a SIGHUP sent on that line is a reload, not the
    // default action (exit). Signals wait for uv_run.
    uv_signal_t sigint, sigterm, sighup, sigusr1;
    for (uv_signal_t* handle : {&sigint, &sigterm, &sighup, &sigusr1}) {
        uv_signal_init(&loop, handle);
        handle->data = &control;
    }
    auto on_stop_signal = [](uv_signal_t* handle, int signum) {
        auto& control = *static_cast<Control*>(handle->data);
        if (control.waiter.joinable()) {
            lb::base::log(lb::base::LogLevel::warn, "second signal: exiting without waiting for the drain");
            std::_Exit(1);
        }
        lb::base::log(lb::base::LogLevel::info, "{}: draining connections", strsignal(signum));
        lb::core::notify_stopping(fmt::format("{}: draining connections", strsignal(signum)));
        control.supervisor.request_shutdown();
        // The generations end on their own once drained; this thread tells the loop.
        control.waiter = std::thread([&control] {
            control.supervisor.wait();
            uv_async_send(&control.drained);
        });
    };
    uv_signal_start(&sigint, on_stop_signal, SIGINT);
    uv_signal_start(&sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(
        &sighup,
        [](uv_signal_t* handle, int) {
            lb::base::log(lb::base::LogLevel::info, "SIGHUP: reloading the configuration");
            auto& supervisor = static_cast<Control*>(handle->data)->supervisor;
            // READY=1 ends the reload either way: a refused file leaves the old generation serving.
            lb::core::notify_reloading();
            supervisor.reload();
            lb::core::notify_ready(supervisor.status());
        },
        SIGHUP);
    uv_signal_start(
        &sigusr1,
        [](uv_signal_t* handle, int) {
            lb::base::log(lb::base::LogLevel::info, "SIGUSR1: reopening the access log");
            static_cast<Control*>(handle->data)->supervisor.reopen_access_logs();
        },
        SIGUSR1);

    // Every connection costs a descriptor or two: take what the hard limit allows, as nginx and HAProxy do.
    lb::core::OpenFileLimit files = lb::core::raise_open_file_limit();
    lb::base::log(lb::base::LogLevel::info, "open-file limit {} (hard limit {})", files.soft, files.hard);

    int exit_code = 0;
    try {
        supervisor.start();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lb: %s\n", e.what());
        exit_code = 1;
    }
    if (exit_code == 0) {
        // The listeners are bound and the workers' loops run: from here connections are served.
        lb::core::notify_ready(supervisor.status());
        uv_run(&loop, UV_RUN_DEFAULT);
        control.waiter.join();
    }
    for (uv_signal_t* handle : {&sigint, &sigterm, &sighup, &sigusr1})
        uv_close(reinterpret_cast<uv_handle_t*>(handle), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&control.drained), nullptr);
    heap_trimmer.reset();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (exit_code == 0) lb::base::log(lb::base::LogLevel::info, "stopped");
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (arg == "-V" || arg == "--version") {
            std::printf("lb %s\n", LB_VERSION);
            return 0;
        }
        if (arg == "--check") {
            options.check_only = true;
        } else if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
            options.config_path = argv[++i];
        } else {
            std::fprintf(stderr, "lb: unknown argument '%s'\n\n%s", arg.c_str(), kUsage);
            return 2;
        }
    }

    lb::core::Config config;
    try {
        config = lb::core::load_config_file(options.config_path);
    } catch (const lb::core::ConfigError& e) {
        std::fprintf(stderr, "lb: invalid configuration: %s\n", e.what());
        return 1;
    }
    if (options.check_only) {
        for (const lb::core::ConfigWarning& warning : config.warnings) {
            std::printf("lb: warning: %s\n", warning.to_string().c_str());
        }
        std::printf("%s: OK (%zu backends)\n", options.config_path.c_str(), config.backends.size());
        return 0;
    }
    return run(options.config_path, std::move(config));
}
