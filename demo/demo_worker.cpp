#include "demo/demo_worker.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <system_error>

namespace lb::demo {

namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
constexpr int kBacklog = 1024;

uv_handle_t* as_handle(auto* h) { return reinterpret_cast<uv_handle_t*>(h); }

}  // namespace

Worker::Worker(BackendState& backend) : backend_(backend), read_buffer_(std::make_unique<char[]>(kReadBufferSize)) {
    if (int rc = uv_loop_init(&loop_); rc != 0) {
        throw std::system_error(-rc, std::generic_category(), "uv_loop_init");
    }
    loop_.data = this;
}

Worker::~Worker() {
    if (thread_.joinable()) {
        request_stop();
        thread_.join();
    }
    close_all();  // only does something when the thread never ran
    uv_run(&loop_, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop_) != 0) {
        std::fprintf(stderr, "lb-demo-backend: a loop still has handles after stop (leak):\n");
        uv_print_all_handles(&loop_, stderr);
        std::abort();
    }
}

int Worker::listen(int fd) {
    if (!async_open_) {
        if (int rc = uv_async_init(&loop_, &stop_async_, on_stop); rc != 0) {
            ::close(fd);
            return rc;
        }
        stop_async_.data = this;
        async_open_ = true;
    }
    if (int rc = uv_tcp_init(&loop_, &listener_); rc != 0) {
        ::close(fd);
        return rc;
    }
    listener_.data = this;
    listener_open_ = true;
    if (int rc = uv_tcp_open(&listener_, fd); rc != 0) {
        ::close(fd);  // not adopted by the handle
        return rc;
    }
    return uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), kBacklog, on_connection);
}

void Worker::start() {
    thread_ = std::thread([this] { run(); });
}

void Worker::run() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
}

void Worker::request_stop() {
    // Sent once: the loop closes the async when it handles it.
    if (!stop_requested_.exchange(true)) uv_async_send(&stop_async_);
}

void Worker::join() {
    if (thread_.joinable()) thread_.join();
}

void Worker::on_stop(uv_async_t* async) { static_cast<Worker*>(async->data)->close_all(); }

void Worker::close_all() {
    if (listener_open_) {
        listener_open_ = false;
        uv_close(as_handle(&listener_), nullptr);
    }
    for (auto& [raw, connection] : connections_) connection->close();  // freed later, from their close callbacks
    if (async_open_) {
        async_open_ = false;
        uv_close(as_handle(&stop_async_), nullptr);
    }
}

void Worker::on_connection(uv_stream_t* listener, int status) {
    auto& self = *static_cast<Worker*>(listener->data);
    if (status < 0) return;  // e.g. EMFILE: libuv keeps listening
    auto connection = std::make_unique<Connection>(&self.loop_, self.backend_, self,
                                                   std::span<char>(self.read_buffer_.get(), kReadBufferSize));
    Connection* raw = connection.get();
    self.connections_.emplace(raw, std::move(connection));
    if (raw->accept(listener) != 0) raw->close();
}

void Worker::on_connection_closed(Connection& connection) { connections_.erase(&connection); }

}  // namespace lb::demo
