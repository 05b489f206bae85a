#include "core/admin/admin_server.h"

#include <fmt/format.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <stdexcept>

#include "base/intrusive_list.h"
#include "core/admin/status_html.h"
#include "http/message_parser.h"

namespace lb::core {

namespace {

class AdminConnection;

constexpr size_t kMaxConnections = 64;  // more wait in the listen backlog
constexpr http::HeadLimits kRequestLimits{8 * 1024, 64, 4 * 1024, 0};
// The status page runs its own inline script and style and talks only to this listener; nothing else may load,
// and no other site may frame it (its buttons change backends' state).
constexpr std::string_view kPageHeaders =
    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
    "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
    "Cache-Control: no-store\r\n";

}  // namespace

struct AdminServer::Loop {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    Page metrics;
    Page status;
    AdminServer::Deadlines deadlines;
    AdminServer::Api api;
    base::IntrusiveList<AdminConnection> connections;
    bool accept_waiting = false;  // a connection was left unaccepted at the cap: libuv stopped polling until then
    bool stopping = false;
};

namespace {

// One admin request: read the head, answer, close. Owned by its handle; freed in its close callback.
class AdminConnection final : public http::MessageSink, public base::IntrusiveList<AdminConnection>::Hook {
  public:
    // From the listener's callback, or when a slot frees while a connection waits. At the cap the connection is
    // left in the backlog: libuv stops watching the listener until it is accepted.
    static void accept(AdminServer::Loop& server) {
        if (server.connections.size() >= kMaxConnections) {
            server.accept_waiting = true;
            return;
        }
        server.accept_waiting = false;
        auto* connection = new AdminConnection(server);  // owned by its handles from here
        uv_tcp_init(&server.loop, &connection->tcp_);
        uv_timer_init(&server.loop, &connection->timer_);
        connection->tcp_.data = connection;
        connection->timer_.data = connection;
        server.connections.push_front(connection);
        if (uv_accept(reinterpret_cast<uv_stream_t*>(&server.listener), connection->stream()) != 0 ||
            uv_read_start(connection->stream(), &on_alloc, &on_read) != 0) {
            connection->close();
            return;
        }
        uv_timer_start(&connection->timer_, &on_timeout, server.deadlines.request_ms, 0);
    }

    void close() {
        if (closing_) return;
        closing_ = true;
        server_.connections.remove(this);
        auto on_closed = [](uv_handle_t* handle) {
            auto* self = static_cast<AdminConnection*>(handle->data);
            if (--self->open_handles_ == 0) std::unique_ptr<AdminConnection> owned(self);
        };
        uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
        uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
        if (server_.accept_waiting && !server_.stopping) accept(server_);
    }

    http::HeadAction on_head(const http::MessageHead& head) override {
        head_request_ = head.method == HTTP_HEAD;
        std::string_view target = head.target();
        if (server_.api.control) {
            AdminRequest request{head.method, target, std::nullopt};
            std::string_view authorization;
            if (head.find("authorization", authorization)) request.authorization = authorization;
            std::string_view origin;
            if (head.find("origin", origin)) request.origin = origin;
            head.find("host", request.host);
            if (std::optional<AdminResponse> answer =
                    handle_admin_api(request, *server_.api.control, server_.api.token)) {
                std::string extra;
                if (!answer->allow.empty()) extra += fmt::format("Allow: {}\r\n", answer->allow);
                if (answer->ask_for_token) extra += "WWW-Authenticate: Bearer\r\n";
                respond(answer->status, reason_phrase(answer->status), "application/json", std::move(answer->body),
                        extra);
                return http::HeadAction::pause;
            }
        }
        target = target.substr(0, target.find('?'));
        if (head.method != HTTP_GET && head.method != HTTP_HEAD) {
            respond(405, "Method Not Allowed", "text/plain", "only GET\n", "Allow: GET, HEAD\r\n");
        } else if (target == "/metrics") {
            respond(200, "OK", server_.metrics.content_type, server_.metrics.render());
        } else if (target == "/status") {
            respond(200, "OK", server_.status.content_type, server_.status.render());
        } else if (target == "/" || target == "/index.html") {
            respond(200, "OK", "text/html; charset=utf-8", std::string(status_page_html()), kPageHeaders);
        } else {
            respond(404, "Not Found", "text/plain", "lb admin: try /, /metrics or /status\n");
        }
        return http::HeadAction::pause;
    }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}

  private:
    explicit AdminConnection(AdminServer::Loop& server)
        : server_(server), parser_(HTTP_REQUEST, *this, kRequestLimits) {}
    uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

    static void on_timeout(uv_timer_t* timer) { static_cast<AdminConnection*>(timer->data)->close(); }

    static void on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
        auto* self = static_cast<AdminConnection*>(handle->data);
        *buf = uv_buf_init(self->input_, sizeof self->input_);
    }

    static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        auto* self = static_cast<AdminConnection*>(stream->data);
        if (nread < 0) {
            self->close();
            return;
        }
        if (nread == 0 || self->responded_) return;
        auto result = self->parser_.feed({buf->base, static_cast<size_t>(nread)});
        if (result.status == http::FeedStatus::error) {
            bool too_large =
                result.error == http::ParseError::headers_too_large || result.error == http::ParseError::uri_too_long;
            self->respond(too_large ? 431 : 400, too_large ? "Request Header Fields Too Large" : "Bad Request",
                          "text/plain", too_large ? "request too large\n" : "malformed request\n");
        }
    }

    static std::string_view reason_phrase(int status) {
        switch (status) {
            case 200:
                return "OK";
            case 400:
                return "Bad Request";
            case 401:
                return "Unauthorized";
            case 403:
                return "Forbidden";
            case 404:
                return "Not Found";
            case 405:
                return "Method Not Allowed";
            default:
                return "Error";
        }
    }

    void respond(int status, std::string_view reason, std::string_view content_type, std::string body,
                 std::string_view extra_headers = {}) {
        responded_ = true;
        uv_read_stop(stream());
        uv_timer_start(&timer_, &on_timeout, server_.deadlines.response_ms, 0);
        response_ =
            fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                        status, reason, content_type, body.size(), extra_headers);
        // A HEAD gets the head GET would get, Content-Length included, and no body (RFC 9110 §9.3.2).
        if (!head_request_) response_ += body;
        uv_buf_t buf = uv_buf_init(response_.data(), static_cast<unsigned>(response_.size()));
        write_req_.data = this;
        int rc = uv_write(&write_req_, stream(), &buf, 1, [](uv_write_t* req, int) {
            auto* self = static_cast<AdminConnection*>(req->data);
            self->shutdown_req_.data = self;
            if (uv_shutdown(&self->shutdown_req_, self->stream(),
                            [](uv_shutdown_t* req, int) { static_cast<AdminConnection*>(req->data)->close(); }) != 0) {
                self->close();
            }
        });
        if (rc != 0) close();
    }

    AdminServer::Loop& server_;
    uv_tcp_t tcp_;
    uv_timer_t timer_;
    int open_handles_ = 2;
    uv_write_t write_req_;
    uv_shutdown_t shutdown_req_;
    http::MessageParser parser_;
    std::string response_;
    char input_[8192];
    bool responded_ = false;
    bool head_request_ = false;
    bool closing_ = false;
};

}  // namespace

AdminServer::AdminServer(int listen_fd, Page metrics, Page status, Deadlines deadlines, Api api)
    : loop_(std::make_unique<Loop>()) {
    loop_->api = std::move(api);
    loop_->metrics = std::move(metrics);
    loop_->status = std::move(status);
    loop_->deadlines = deadlines;
    uv_loop_init(&loop_->loop);
    uv_tcp_init(&loop_->loop, &loop_->listener);
    loop_->listener.data = loop_.get();
    loop_->stop.data = loop_.get();
    uv_async_init(&loop_->loop, &loop_->stop, [](uv_async_t* async) {
        auto* loop = static_cast<Loop*>(async->data);
        loop->stopping = true;
        uv_close(reinterpret_cast<uv_handle_t*>(&loop->listener), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&loop->stop), nullptr);
        loop->connections.for_each([](AdminConnection* c) { c->close(); });
    });
    int rc = uv_tcp_open(&loop_->listener, listen_fd);
    if (rc != 0) ::close(listen_fd);  // not the handle's yet
    if (rc == 0) {
        rc = uv_listen(reinterpret_cast<uv_stream_t*>(&loop_->listener), 128, [](uv_stream_t* listener, int status) {
            if (status == 0) AdminConnection::accept(*static_cast<Loop*>(listener->data));
        });
    }
    if (rc != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&loop_->listener), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&loop_->stop), nullptr);
        uv_run(&loop_->loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop_->loop);
        throw std::runtime_error(fmt::format("cannot listen (admin): {}", uv_strerror(rc)));
    }
    listen_fd_ = listen_fd;
    port_ = bound_address(listen_fd).port();
}

void AdminServer::start() {
    thread_ = std::thread([loop = loop_.get()] { uv_run(&loop->loop, UV_RUN_DEFAULT); });
}

void AdminServer::stop() {
    if (!loop_) return;
    if (thread_.joinable()) {
        uv_async_send(&loop_->stop);
        thread_.join();
    } else {
        uv_close(reinterpret_cast<uv_handle_t*>(&loop_->listener), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&loop_->stop), nullptr);
        uv_run(&loop_->loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop_->loop);
    loop_.reset();
    listen_fd_ = -1;
}

AdminServer::~AdminServer() { stop(); }

}  // namespace lb::core
