// The health thread: one loop, one Checker per backend (its timers and its current connection), one inbox for
// passive reports, admin changes and the stop request. Everything in MonitorState and the classes here runs on the
// health thread, except where a comment says otherwise; HealthMonitor's functions at the end say which thread calls
// them.
#include "health/health_monitor.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "health/check_transports.h"
#include "http/message_parser.h"
#include "net/transport.h"
#include "pool/random_source.h"

namespace lb::health {

namespace {

class Checker;

// One connection to a backend's check port, kept alive between checks: a TcpTransport, or a TlsTransport for a
// backend with TLS (connected once its handshake is done). It owns itself from open() on and is freed only when
// its transport has closed. The link to its Checker is cut both ways when it closes: close() clears checker_, and
// whoever calls close() on the checker's current connection clears the checker's pointer too.
// Paths to close(): the checker (timeout, failure, response without keep-alive, stop), and the connection
// itself (idle connection closed by the backend or sent unasked-for bytes), which tells the checker.
class CheckConnection final : public http::MessageSink, private net::TransportEvents {
  public:
    // Starts connecting to `address` (and, for TLS, the handshake) and sends `request` once connected. Returns
    // nullptr with `error` set when the connect fails synchronously (no event follows; the connection cleans
    // itself up).
    static CheckConnection* open(CheckTransports& transports, size_t backend, Checker& checker, const sockaddr* address,
                                 const std::string& request, int& error);

    // Starts an exchange on an idle connection.
    void send(const std::string& request);
    // Idempotent. Detaches from the checker; the memory goes once the transport has closed.
    void close();

    bool idle() const { return connected_ && !busy_ && !closing_; }

  private:
    CheckConnection(Checker& checker, net::WritePool& writes, bool tls)
        : checker_(&checker), writes_(writes), tls_(tls) {}

    // net::TransportEvents
    void on_transport_connected(int status) override;
    void on_transport_read(const net::BufferRef& buffer, std::string_view bytes) override;
    void on_transport_end(int status) override;
    void on_transport_written(int status) override;
    void on_transport_closed() override { delete this; }

    void write();
    void read(std::string_view bytes);
    void end_of_stream(int status);
    // The exchange failed (`result`: connect_error or bad_response): closes and tells the checker, which may
    // retry once on a fresh connection when this one was reused and no response byte came back (the backend
    // closed the idle connection as we used it).
    void fail(CheckResult result, std::string reason);
    // Tells the checker the connection is gone without an exchange in progress.
    void lost();
    // For people: why the connection failed with `status`, with what TLS said when it said something.
    std::string failure_reason(int status) const;

    // http::MessageSink. Only flags are set here: what follows runs after feed() returns.
    http::HeadAction on_head(const http::MessageHead& head) override {
        status_ = head.status;
        keep_alive_ = head.keep_alive;
        return http::HeadAction::proceed;
    }
    void on_body(std::string_view) override {}  // a check's body is not looked at
    void on_message_complete() override { complete_ = true; }

    Checker* checker_;
    net::WritePool& writes_;
    std::unique_ptr<net::Transport> transport_;
    http::MessageParser parser_{HTTP_RESPONSE, *this};
    const std::string* request_ = nullptr;  // the checker's, which outlives every connection
    bool tls_;
    bool connected_ = false;  // for TLS: the handshake is done too
    bool busy_ = false;       // an exchange is in progress
    bool closing_ = false;
    bool got_bytes_ = false;  // of the current exchange
    bool complete_ = false;
    bool keep_alive_ = false;
    int status_ = 0;
    uint32_t exchanges_ = 0;  // started on this connection, the current one included
};

}  // namespace

namespace detail {

InitialState initial_state_of(const HealthConfig& config, const HealthTarget& target) {
    if (!target.starts_healthy) return config.initial_state;
    return *target.starts_healthy ? InitialState::healthy : InitialState::unhealthy;
}

struct MonitorState {
    MonitorState(HealthConfig config_in, std::vector<HealthTarget> targets_in,
                 HealthMonitor::TransitionCallback callback, HealthMonitorOptions options_in);

    // Health thread.
    static void on_wakeup(uv_async_t* async);
    void shut_down();
    void record_check(size_t backend, const CheckOutcome& outcome, Millis duration);
    void note_tls_failure(size_t backend, const CheckOutcome& outcome, bool transition_follows);
    void on_ejection_end(size_t backend);
    void apply(size_t backend, const HealthDecider::Change& change);
    void refresh_status(size_t backend);  // status_mutex held
    uint64_t next_random() { return options.random ? options.random() : random.next(); }
    void log(const std::string& line) const;
    Millis now() { return Millis(uv_now(&loop)); }

    HealthConfig config;
    std::vector<HealthTarget> targets;
    HealthMonitor::TransitionCallback on_transition;
    HealthMonitorOptions options;

    // Health thread only (and the controlling thread before the thread starts).
    HealthDecider decider;
    pool::RandomSource random;
    uv_loop_t loop{};
    uv_async_t wakeup{};
    CheckTransports transports;  // outlives the checkers and their connections
    std::vector<std::unique_ptr<Checker>> checkers;
    uint64_t generation = 0;
    bool stopping = false;
    // Per backend: the TLS failure last logged, so that a backend whose certificate never verifies is named once
    // (and again when the reason changes), not at every check. Cleared by a check that passes.
    std::vector<std::string> logged_tls_failure;

    // The inbox. Sends to `wakeup` happen under the mutex and only while open, so none can reach a closed handle.
    enum class InboxState { not_started, open, closed };
    struct Report {
        size_t backend;
        PassiveOutcome outcome;
    };
    std::mutex inbox_mutex;
    InboxState inbox_state = InboxState::not_started;
    std::vector<Report> reports;
    struct AdminChange {
        size_t backend;
        bool takes_new_requests;
    };
    std::vector<AdminChange> admin_changes;
    bool stop_requested = false;

    mutable std::mutex status_mutex;
    std::vector<BackendHealth> status;

    // Written by the health thread only; read by scrapes.
    metrics::ShardMetrics metrics_block;
    std::atomic<uint64_t> passive_queued{0};

    // report_passive()'s filter, per backend. pending_failures is written under inbox_mutex, so that the queue
    // order and the filter agree: zero means the last queued report for the backend reset its count. `down`
    // mirrors the combined state, written by the health thread when it reports a transition.
    struct PassiveGate {
        std::atomic<uint32_t> pending_failures{0};
        std::atomic<bool> down{false};
    };
    std::unique_ptr<PassiveGate[]> gates;

    // Controlling thread.
    std::thread thread;
    bool started = false;
    bool joined = false;
    bool closed_cleanly = false;  // written by the health thread before it ends; read after join()
};

}  // namespace detail

using detail::MonitorState;

namespace {

// One backend's active checks: the wait timer, the check's deadline, the ejection timer and the connection.
class Checker {
  public:
    Checker(MonitorState& monitor, size_t index, const HealthTarget& target, CheckSettings settings)
        : monitor_(monitor), index_(index), settings_(std::move(settings)), address_(target.address) {
        if (settings_.port != 0 && address_.ss_family == AF_INET) {
            reinterpret_cast<sockaddr_in*>(&address_)->sin_port = htons(settings_.port);
        } else if (settings_.port != 0 && address_.ss_family == AF_INET6) {
            reinterpret_cast<sockaddr_in6*>(&address_)->sin6_port = htons(settings_.port);
        }
        const std::string& host = settings_.host.empty() ? target.name : settings_.host;
        request_ = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lb-health-check\r\nAccept: */*\r\n\r\n",
                               settings_.path, host);
    }

    void init(uv_loop_t* loop) {
        for (uv_timer_t* timer : {&next_timer_, &deadline_timer_, &ejection_timer_}) {
            uv_timer_init(loop, timer);
            timer->data = this;
        }
    }

    // The first check, at once.
    void begin() { uv_timer_start(&next_timer_, &Checker::on_next, 0, 0); }

    void eject_for(Millis duration) {
        uv_timer_start(&ejection_timer_, &Checker::on_ejection_timer, static_cast<uint64_t>(duration.count()), 0);
    }

    // Stop: closes the timers and the connection. An unfinished check is abandoned.
    void close() {
        closing_ = true;
        drop_connection();
        for (uv_timer_t* timer : {&next_timer_, &deadline_timer_, &ejection_timer_}) {
            uv_close(reinterpret_cast<uv_handle_t*>(timer), nullptr);
        }
    }

    // From CheckConnection.
    void on_response(CheckConnection* conn, int status, bool reusable) {
        if (conn != conn_ || !in_check_) return;
        if (!reusable) drop_connection();
        Millis elapsed = elapsed_since_start();
        finish(judge_response(status, elapsed, monitor_.config.expected_statuses, settings_.max_response_time),
               elapsed);
    }
    void on_exchange_failed(CheckConnection* conn, CheckResult result, std::string reason, bool retryable) {
        if (conn != conn_) return;
        conn_ = nullptr;  // the connection has closed itself
        if (!in_check_) return;
        if (retryable && !retried_) {
            // Once per check, and within the same deadline: a fresh connection says more than the dead one.
            retried_ = true;
            send();
            return;
        }
        finish(failed(result, std::move(reason)), elapsed_since_start());
    }
    void on_connection_lost(CheckConnection* conn) {
        if (conn == conn_) conn_ = nullptr;
    }

  private:
    static void on_next(uv_timer_t* timer) { static_cast<Checker*>(timer->data)->start_check(); }
    static void on_deadline(uv_timer_t* timer) {
        auto* self = static_cast<Checker*>(timer->data);
        // A late response must not be read as the next check's: the connection goes.
        self->drop_connection();
        self->finish(timed_out(self->settings_.timeout), self->settings_.timeout);
    }
    static void on_ejection_timer(uv_timer_t* timer) {
        auto* self = static_cast<Checker*>(timer->data);
        self->monitor_.on_ejection_end(self->index_);
    }

    void start_check() {
        if (closing_) return;
        in_check_ = true;
        retried_ = false;
        started_ns_ = uv_hrtime();
        uv_timer_start(&deadline_timer_, &Checker::on_deadline, static_cast<uint64_t>(settings_.timeout.count()), 0);
        send();
    }

    void send() {
        if (conn_ && conn_->idle()) {
            conn_->send(request_);
            return;
        }
        drop_connection();
        int error = 0;
        conn_ = CheckConnection::open(monitor_.transports, index_, *this, reinterpret_cast<const sockaddr*>(&address_),
                                      request_, error);
        if (!conn_) finish(failed(CheckResult::connect_error, uv_strerror(error)), elapsed_since_start());
    }

    void finish(const CheckOutcome& outcome, Millis duration) {
        if (!in_check_ || closing_) return;
        in_check_ = false;
        uv_timer_stop(&deadline_timer_);
        uv_timer_start(
            &next_timer_, &Checker::on_next,
            static_cast<uint64_t>(
                jittered_interval(settings_.interval, monitor_.config.jitter, monitor_.next_random()).count()),
            0);
        // Last: the transition callback runs from here, and must find this checker in a settled state.
        monitor_.record_check(index_, outcome, duration);
    }

    void drop_connection() {
        if (!conn_) return;
        CheckConnection* conn = std::exchange(conn_, nullptr);
        conn->close();
    }

    Millis elapsed_since_start() const {
        return std::chrono::duration_cast<Millis>(std::chrono::nanoseconds(uv_hrtime() - started_ns_));
    }

    MonitorState& monitor_;
    size_t index_;
    CheckSettings settings_;
    sockaddr_storage address_;
    std::string request_;
    uv_timer_t next_timer_{};
    uv_timer_t deadline_timer_{};
    uv_timer_t ejection_timer_{};
    CheckConnection* conn_ = nullptr;
    bool in_check_ = false;
    bool retried_ = false;
    bool closing_ = false;
    uint64_t started_ns_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// CheckConnection

CheckConnection* CheckConnection::open(CheckTransports& transports, size_t backend, Checker& checker,
                                       const sockaddr* address, const std::string& request, int& error) {
    auto* conn = new CheckConnection(checker, transports.writes(), transports.is_tls(backend));
    conn->transport_ = transports.make(backend, *conn);
    if (!conn->transport_) {
        delete conn;  // no transport, so no handle to close
        error = UV_ENOMEM;
        return nullptr;
    }
    error = conn->transport_->connect(address);
    if (error < 0) {
        conn->checker_ = nullptr;  // the caller reports the failure itself
        conn->close();
        return nullptr;
    }
    conn->busy_ = true;
    conn->request_ = &request;
    conn->exchanges_ = 1;
    return conn;
}

void CheckConnection::send(const std::string& request) {
    busy_ = true;
    got_bytes_ = false;
    complete_ = false;
    status_ = 0;
    request_ = &request;
    ++exchanges_;
    parser_.reset();
    write();
}

void CheckConnection::write() {
    // Copied: the transport keeps what the socket does not take at once, and a request is a hundred bytes.
    net::WriteBatch batch(writes_);
    batch.append_copy(*request_);
    if (int rc = transport_->write(batch); rc < 0) fail(CheckResult::connect_error, failure_reason(rc));
}

void CheckConnection::close() {
    if (closing_) return;
    closing_ = true;
    checker_ = nullptr;
    transport_->close();
}

std::string CheckConnection::failure_reason(int status) const {
    std::string_view detail = transport_->error_detail();
    if (tls_ && !detail.empty()) return fmt::format("TLS error: {}", detail);
    return uv_strerror(status);
}

void CheckConnection::on_transport_connected(int status) {
    if (closing_) return;  // a timeout got there first
    if (status < 0) {
        // For TLS, a failed handshake (its reason from OpenSSL: "certificate verify failed (...)") is a failed
        // connect as much as a refused one, told apart so that a status page and the log say which.
        std::string_view detail = transport_->error_detail();
        if (tls_ && !detail.empty()) {
            fail(CheckResult::tls_handshake, fmt::format("TLS handshake failed: {}", detail));
        } else {
            fail(CheckResult::connect_error, uv_strerror(status));
        }
        return;
    }
    connected_ = true;
    // Read all along, between checks too: an idle connection the backend closes, or sends to unasked, is dropped.
    transport_->start_reading();
    write();
}

void CheckConnection::on_transport_written(int status) {
    if (closing_ || status >= 0) return;
    fail(CheckResult::connect_error, failure_reason(status));
}

void CheckConnection::on_transport_read(const net::BufferRef&, std::string_view bytes) {
    if (closing_ || bytes.empty()) return;
    read(bytes);
}

void CheckConnection::on_transport_end(int status) {
    if (closing_) return;
    end_of_stream(status);
}

void CheckConnection::read(std::string_view bytes) {
    if (!busy_) {
        lost();  // bytes nobody asked for: the connection can no longer be trusted
        return;
    }
    got_bytes_ = true;
    while (!bytes.empty()) {
        http::FeedResult result = parser_.feed(bytes);
        if (result.status == http::FeedStatus::error) {
            fail(CheckResult::bad_response, fmt::format("invalid response: {}", parser_.error_reason()));
            return;
        }
        if (result.status == http::FeedStatus::consumed_all) return;
        bytes.remove_prefix(result.consumed);
        if (!complete_) {
            parser_.resume();  // paused by the sink mid-message; ours never does, but be safe
            continue;
        }
        complete_ = false;
        if (status_ < 200) {
            parser_.resume();  // an interim 1xx response: the real one follows
            continue;
        }
        busy_ = false;
        // Anything after the response on a request/response connection means it is out of step.
        bool reusable = keep_alive_ && bytes.empty();
        Checker* checker = checker_;
        if (checker) checker->on_response(this, status_, reusable);
        return;
    }
}

void CheckConnection::end_of_stream(int status) {
    if (!busy_) {
        lost();  // the backend closed an idle connection: the next check opens a new one
        return;
    }
    std::string_view tls_detail = tls_ ? transport_->error_detail() : std::string_view{};
    if (status != UV_EOF && !tls_detail.empty() && exchanges_ == 1 && !got_bytes_) {
        // With TLS 1.3 a backend refuses lb's client certificate (or its absence) once lb has finished its side of
        // the handshake: the alert is the first thing the connection reads. The handshake failed all the same.
        fail(CheckResult::tls_handshake, fmt::format("TLS handshake failed: {}", tls_detail));
        return;
    }
    if (status == UV_EOF && parser_.in_message()) {
        // A response without Content-Length or chunking ends with the connection (over TLS too, with or
        // without close_notify, as browsers take it).
        complete_ = false;
        if (parser_.finish() && complete_ && status_ >= 200) {
            busy_ = false;
            Checker* checker = checker_;
            close();
            if (checker) checker->on_response(this, status_, false);
            return;
        }
    }
    fail(CheckResult::connect_error,
         status == UV_EOF ? std::string("connection closed before the response") : failure_reason(status));
}

void CheckConnection::fail(CheckResult result, std::string reason) {
    bool retryable = exchanges_ > 1 && !got_bytes_;
    Checker* checker = checker_;
    busy_ = false;
    close();
    if (checker) checker->on_exchange_failed(this, result, std::move(reason), retryable);
}

void CheckConnection::lost() {
    Checker* checker = checker_;
    close();
    if (checker) checker->on_connection_lost(this);
}

void default_log(std::string_view line) {
    std::string text = fmt::format("{}\n", line);
    ssize_t rc = ::write(STDERR_FILENO, text.data(), text.size());
    (void)rc;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// MonitorState

MonitorState::MonitorState(HealthConfig config_in, std::vector<HealthTarget> targets_in,
                           HealthMonitor::TransitionCallback callback, HealthMonitorOptions options_in)
    : config(std::move(config_in)),
      targets(std::move(targets_in)),
      on_transition(std::move(callback)),
      options(std::move(options_in)),
      decider(
          config,
          [&] {
              std::vector<CheckOverrides> overrides;
              for (const HealthTarget& t : targets) overrides.push_back(t.overrides);
              return overrides;
          }(),
          [&] {
              std::vector<InitialState> initial;
              for (const HealthTarget& t : targets) initial.push_back(initial_state_of(config, t));
              return initial;
          }(),
          [&] {
              std::vector<size_t> pools;
              for (const HealthTarget& t : targets) pools.push_back(t.pool);
              return pools;
          }()),
      random(options.seed),
      transports(targets.size()),
      logged_tls_failure(targets.size()),
      metrics_block(targets.size(), options.metrics_enabled) {
    if (!options.log) options.log = default_log;
    // Only active checks connect: with passive ejection alone, no certificate or CA file is loaded.
    if (config.enabled) {
        for (size_t i = 0; i < targets.size(); ++i) {
            if (targets[i].tls.enabled) transports.use_tls(i, targets[i].tls, targets[i].host);
        }
    }
    gates = std::make_unique<PassiveGate[]>(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) decider.set_takes_new_requests(i, targets[i].takes_new_requests);
    for (size_t i = 0; i < targets.size(); ++i) {
        bool healthy = initial_state_of(config, targets[i]) == InitialState::healthy;
        gates[i].down.store(!healthy, std::memory_order_relaxed);
        BackendHealth b;
        b.name = targets[i].name;
        b.healthy = healthy;
        b.active_healthy = healthy;
        status.push_back(std::move(b));
    }
}

void MonitorState::log(const std::string& line) const { options.log(line); }

void MonitorState::on_wakeup(uv_async_t* async) {
    auto* self = static_cast<MonitorState*>(async->data);
    std::vector<Report> batch;
    std::vector<AdminChange> admin_changes;
    bool stop = false;
    {
        std::lock_guard lock(self->inbox_mutex);
        batch.swap(self->reports);
        admin_changes.swap(self->admin_changes);
        stop = self->stop_requested;
        if (stop) self->inbox_state = InboxState::closed;
    }
    if (stop) {
        self->shut_down();
        return;
    }
    // Sends coalesce: everything queued since the last wake is in this batch. An admin change queued after a
    // report is applied before it here: both are the latest word by the time the batch is judged.
    for (const AdminChange& change : admin_changes) {
        self->decider.set_takes_new_requests(change.backend, change.takes_new_requests);
    }
    for (const Report& report : batch) {
        if (self->stopping) return;
        HealthDecider::PassiveDecision decision = self->decider.on_passive(report.backend, report.outcome, self->now());
        if (decision.ejected_for) {
            self->metrics_block.on_passive_ejection(static_cast<metrics::BackendIndex>(report.backend));
            self->checkers[report.backend]->eject_for(*decision.ejected_for);
        }
        {
            std::lock_guard lock(self->status_mutex);
            self->refresh_status(report.backend);
        }
        if (decision.change) self->apply(report.backend, *decision.change);
    }
}

void MonitorState::shut_down() {
    if (stopping) return;
    stopping = true;
    for (auto& checker : checkers) checker->close();
    transports.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&wakeup), nullptr);
}

void MonitorState::record_check(size_t backend, const CheckOutcome& outcome, Millis duration) {
    metrics_block.on_health_check(static_cast<metrics::BackendIndex>(backend), metrics_result(outcome.result));
    std::optional<HealthDecider::Change> change = decider.on_check(backend, outcome, now());
    {
        std::lock_guard lock(status_mutex);
        BackendHealth& b = status[backend];
        b.last_result = outcome.result;
        b.last_reason = outcome.reason;
        b.last_duration = duration;
        refresh_status(backend);
    }
    if (options.on_check) options.on_check(backend, outcome, duration);
    note_tls_failure(backend, outcome, change.has_value());
    if (change) apply(backend, *change);
}

// A TLS failure is a configuration problem more often than an outage (a CA file, a name, a client certificate):
// it is logged once, in the line of the transition it causes, or in a line of its own for a backend that is down
// already, where no transition would name it. Again only when the reason changes, or after a check that passed.
void MonitorState::note_tls_failure(size_t backend, const CheckOutcome& outcome, bool transition_follows) {
    std::string& logged = logged_tls_failure[backend];
    if (outcome.result != CheckResult::tls_handshake) {
        if (outcome.passed()) logged.clear();
        return;
    }
    if (transition_follows) {
        logged = outcome.reason;  // the transition's own line says it
        return;
    }
    if (!gates[backend].down.load(std::memory_order_relaxed)) return;  // its transition down will say it
    if (outcome.reason == logged) return;
    logged = outcome.reason;
    log(fmt::format("health: backend {} is still down: {}", targets[backend].name, outcome.reason));
}

void MonitorState::on_ejection_end(size_t backend) {
    std::optional<HealthDecider::Change> change = decider.on_ejection_end(backend, now());
    {
        std::lock_guard lock(status_mutex);
        refresh_status(backend);
    }
    if (change) apply(backend, *change);
}

void MonitorState::refresh_status(size_t backend) {
    BackendHealth& b = status[backend];
    b.active_healthy = decider.active_healthy(backend);
    b.ejected = decider.ejector().ejected(backend);
    b.ejection_count = decider.ejector().ejection_count(backend);
    b.passive_failures = decider.ejector().failures(backend);
    b.streak = decider.active(backend).streak();
}

void MonitorState::apply(size_t backend, const HealthDecider::Change& change) {
    uint64_t gen = ++generation;
    {
        std::lock_guard lock(status_mutex);
        BackendHealth& b = status[backend];
        b.healthy = change.healthy;
        b.generation = gen;
        b.transition_reason = change.reason;
    }
    gates[backend].down.store(!change.healthy, std::memory_order_relaxed);
    log(fmt::format("health: backend {} is {}: {} ({})", targets[backend].name, change.healthy ? "up" : "down",
                    change.reason, change.detail));
    on_transition(Transition{backend, change.healthy, gen, change.cause, change.reason});
}

// ---------------------------------------------------------------------------------------------------------------
// HealthMonitor

HealthMonitor::HealthMonitor(HealthConfig config, std::vector<HealthTarget> targets, TransitionCallback on_transition,
                             HealthMonitorOptions options) {
    if (!on_transition) throw std::invalid_argument("HealthMonitor needs a transition callback");
    impl_ = std::make_unique<MonitorState>(std::move(config), std::move(targets), std::move(on_transition),
                                           std::move(options));
}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::start() {
    MonitorState& m = *impl_;
    if (m.started) throw std::logic_error("HealthMonitor::start() called twice");
    int rc = uv_loop_init(&m.loop);
    if (rc < 0) throw std::runtime_error(fmt::format("health: cannot create its loop: {}", uv_strerror(rc)));
    rc = m.transports.start(&m.loop);
    if (rc < 0) {
        uv_loop_close(&m.loop);
        throw std::runtime_error(fmt::format("health: cannot create its idle handle: {}", uv_strerror(rc)));
    }
    rc = uv_async_init(&m.loop, &m.wakeup, &MonitorState::on_wakeup);
    if (rc < 0) {
        m.transports.close();
        uv_run(&m.loop, UV_RUN_DEFAULT);  // the close callback
        uv_loop_close(&m.loop);
        throw std::runtime_error(fmt::format("health: cannot create its wake-up handle: {}", uv_strerror(rc)));
    }
    m.wakeup.data = &m;
    for (size_t i = 0; i < m.targets.size(); ++i) {
        auto checker = std::make_unique<Checker>(m, i, m.targets[i], resolve_check(m.config, m.targets[i].overrides));
        checker->init(&m.loop);
        if (m.config.enabled) checker->begin();
        m.checkers.push_back(std::move(checker));
    }
    {
        // Reports queued before start() are handled on the first wake.
        std::lock_guard lock(m.inbox_mutex);
        m.inbox_state = MonitorState::InboxState::open;
        if (!m.reports.empty() || !m.admin_changes.empty()) uv_async_send(&m.wakeup);
    }
    m.started = true;
    m.thread = std::thread([&m] {
        uv_run(&m.loop, UV_RUN_DEFAULT);
        m.closed_cleanly = uv_loop_close(&m.loop) == 0;
    });
}

void HealthMonitor::stop() {
    MonitorState& m = *impl_;
    {
        std::lock_guard lock(m.inbox_mutex);
        if (m.inbox_state == MonitorState::InboxState::not_started) {
            m.inbox_state = MonitorState::InboxState::closed;
            m.reports.clear();
            m.admin_changes.clear();
            return;
        }
        if (m.inbox_state == MonitorState::InboxState::open) {
            m.stop_requested = true;
            uv_async_send(&m.wakeup);
        }
    }
    if (m.started && !m.joined) {
        m.thread.join();
        m.joined = true;
        m.checkers.clear();  // their handles were closed on the loop; connections freed themselves
    }
}

bool HealthMonitor::closed_cleanly() const {
    // Never started: no loop, nothing left open.
    return impl_->started ? impl_->joined && impl_->closed_cleanly : true;
}

void HealthMonitor::report_passive(size_t backend, PassiveOutcome outcome) {
    MonitorState& m = *impl_;
    if (backend >= m.targets.size() || m.config.passive.consecutive_failures == 0) return;
    MonitorState::PassiveGate& gate = m.gates[backend];
    // The lock-free path: the decision would ignore the report. A stale read only costs a queued no-op or one
    // dropped report at the moment the backend changes state.
    if (gate.down.load(std::memory_order_relaxed)) return;
    bool failure = is_passive_failure(m.config.passive, outcome);
    if (!failure && gate.pending_failures.load(std::memory_order_relaxed) == 0) return;

    std::lock_guard lock(m.inbox_mutex);
    if (m.inbox_state == MonitorState::InboxState::closed) return;
    if (failure) {
        gate.pending_failures.fetch_add(1, std::memory_order_relaxed);
    } else {
        gate.pending_failures.store(0, std::memory_order_relaxed);
    }
    m.reports.push_back({backend, outcome});
    m.passive_queued.fetch_add(1, std::memory_order_relaxed);
    // Under the lock, so the loop cannot close the handle between the state check and the send.
    if (m.inbox_state == MonitorState::InboxState::open) uv_async_send(&m.wakeup);
}

void HealthMonitor::set_takes_new_requests(size_t backend, bool takes) {
    MonitorState& m = *impl_;
    if (backend >= m.targets.size()) return;
    std::lock_guard lock(m.inbox_mutex);
    if (m.inbox_state == MonitorState::InboxState::closed) return;
    m.admin_changes.push_back({backend, takes});
    if (m.inbox_state == MonitorState::InboxState::open) uv_async_send(&m.wakeup);
}

std::vector<BackendHealth> HealthMonitor::snapshot() const {
    std::lock_guard lock(impl_->status_mutex);
    return impl_->status;
}

const metrics::ShardMetrics& HealthMonitor::metrics() const { return impl_->metrics_block; }

uint64_t HealthMonitor::passive_reports_queued_for_test() const {
    return impl_->passive_queued.load(std::memory_order_relaxed);
}

bool HealthMonitor::initially_healthy(size_t backend) const {
    return detail::initial_state_of(impl_->config, impl_->targets[backend]) == InitialState::healthy;
}

}  // namespace lb::health
