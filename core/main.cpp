// lb: the command line. Loads lb.yaml, starts the shards, and turns SIGINT/SIGTERM into a graceful drain.
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "core/config.h"
#include "core/log.h"
#include "core/server.h"

namespace {

constexpr const char* kUsage = R"(Usage: lb [-c FILE] [--check]
  -c, --config FILE  configuration file (default: lb.yaml)
      --check        validate the configuration and exit: 0 if valid, 1 if not
  -h, --help         show this help
  -V, --version      show the version

SIGINT or SIGTERM stops accepting, lets in-flight requests finish (up to timeouts.drain), then exits 0.
A second signal exits at once.
)";

struct Options {
    std::string config_path = "lb.yaml";
    bool check_only = false;
};

int run(const lb::core::Config& config) {
    lb::core::Server server(config);
    try {
        server.start();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lb: %s\n", e.what());
        return 1;
    }
    lb::core::log(lb::core::LogLevel::info, "lb {} listening on {}:{} with {} workers and {} backends", LB_VERSION,
                  config.listen.host, server.port(), server.shard_count(), config.backends.size());

    // The main thread only waits for signals; the shards do all the work.
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_signal_t sigint, sigterm;
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    sigint.data = sigterm.data = &server;
    auto on_signal = [](uv_signal_t* handle, int signum) {
        static bool stopping = false;
        if (stopping) {
            lb::core::log(lb::core::LogLevel::warn, "second signal: exiting without waiting for the drain");
            std::_Exit(1);
        }
        stopping = true;
        lb::core::log(lb::core::LogLevel::info, "{}: draining connections", strsignal(signum));
        static_cast<lb::core::Server*>(handle->data)->request_shutdown();
    };
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    // The shards end on their own once drained; a thread waiting for them ends this loop.
    uv_async_t done;
    uv_async_init(&loop, &done, [](uv_async_t* handle) { uv_stop(handle->loop); });
    std::thread waiter([&] {
        server.wait();
        uv_async_send(&done);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    waiter.join();
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&done), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    lb::core::log(lb::core::LogLevel::info, "stopped");
    return 0;
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
        std::printf("%s: OK (%zu backends)\n", options.config_path.c_str(), config.backends.size());
        return 0;
    }
    return run(config);
}
