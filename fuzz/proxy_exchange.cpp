// Fuzzes the whole data path in-process: a core::Server (one shard, short timeouts) in front of a backend that is
// a plain listening socket of the driver's, both on loopback. Each input is one client connection; the server
// and the backend's listener live for the whole process.
//
// Input: the client's bytes, kBackendMarker, then the backend's answers separated by kNextMarker: the k-th
// request the backend receives (a retry counts) gets the k-th answer, written once the request is complete (as
// soon as its head arrives if the answer begins with kEarlyMarker); with no answer left the backend closes
// instead. Within each part kWriteMarker separates writes, sent about kWriteGap apart so that lb reads them
// separately. The client half-closes after its last write; the backend half-closes after its last answer.
//
// Oracles (a violation aborts, so libFuzzer keeps the input):
// - no crash, leak, undefined behaviour or hang: lb ends the client connection within kDeadline, and drops the
//   idle upstream connections whose backend closed them;
// - the backend receives well-framed requests (strict llhttp), each one a request the client sent, in order
//   (a retry repeats one), with its head rewritten by the forwarding rules and its body unchanged;
// - the client receives well-framed responses (strict llhttp; answers to HEAD without a body; a close-delimited
//   or cut-short last one allowed), HTTP/1.1 with no hop-by-hop field of the backend's, and no more final
//   responses than requests it began: one more is a desync. After a 101 both streams are a tunnel's, not parsed.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/log.h"
#include "core/config/config.h"
#include "core/runtime/server.h"
#include "fuzz/support/forwarding_rules.h"
#include "fuzz/support/fuzz_input.h"
#include "fuzz/support/loopback.h"
#include "fuzz/support/violation.h"
#include "fuzz/support/wire_parser.h"

namespace lb::fuzz {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kWriteGap = std::chrono::microseconds(1000);
// Far above every timeout in fuzz_config(): only a session that never ends gets here.
constexpr auto kDeadline = std::chrono::seconds(15);
constexpr auto kIdleDropDeadline = std::chrono::seconds(5);
constexpr std::string_view kClientAddress = "127.0.0.1";

struct Harness {
    int backend_listener = -1;
    uint16_t backend_port = 0;
    std::unique_ptr<core::Server> server;
};
Harness* g_harness = nullptr;

// Short timeouts, so that an exchange left waiting ends in a fraction of a second; small limits, so that the
// fuzzer reaches them with short inputs.
core::Config fuzz_config(uint16_t backend_port) {
    core::Config config;
    config.source = "<fuzz>";
    config.listeners = {core::ListenerConfig{core::ListenAddress{{"127.0.0.1", 0}, {}}}};
    config.workers = 1;
    config.admin.enabled = false;
    config.health.enabled = false;
    config.health.passive.consecutive_failures = 0;
    core::BackendConfig backend;
    backend.endpoint = {"127.0.0.1", backend_port};
    backend.address = "127.0.0.1:" + std::to_string(backend_port);
    config.backends.push_back(backend);
    config.timeouts.connect = milliseconds(100);
    config.timeouts.client_header = milliseconds(100);
    config.timeouts.client_keepalive = milliseconds(100);
    config.timeouts.upstream_response = milliseconds(100);
    config.timeouts.upstream_keepalive = milliseconds(10'000);
    config.timeouts.drain = milliseconds(500);
    config.limits.header_bytes = 2048;
    config.limits.header_count = 16;
    config.limits.uri_bytes = 512;
    config.limits.request_body_bytes = 4096;
    config.retries = 1;
    config.timeouts.tunnel = milliseconds(100);
    return config;
}

void stop_harness() {
    if (!g_harness) return;
    g_harness->server->shutdown();
    bool clean = g_harness->server->closed_cleanly();
    g_harness->server.reset();
    ::close(g_harness->backend_listener);
    if (!clean) report_violation("lb's loop closed with handles still open");
}

void start_harness() {
    base::set_log_level(base::LogLevel::error);  // every malformed input would log a line
    g_harness = new Harness;
    g_harness->backend_listener = listen_on_loopback(g_harness->backend_port);
    g_harness->server = std::make_unique<core::Server>(fuzz_config(g_harness->backend_port));
    g_harness->server->start();
    std::atexit(stop_harness);
}

// One side's writes, each sent kWriteGap after the one before, then a half-close.
struct Writes {
    std::deque<std::string_view> pieces;
    std::string_view writing;
    Clock::time_point due{};
    bool shut = false;
    bool end_with_shutdown = true;

    bool pending() const { return !shut && (!writing.empty() || !pieces.empty() || end_with_shutdown); }

    void pump(int fd, Clock::time_point now) {
        if (shut || now < due) return;
        if (writing.empty()) {
            if (pieces.empty()) {
                if (end_with_shutdown) {
                    ::shutdown(fd, SHUT_WR);
                    shut = true;
                }
                return;
            }
            writing = pieces.front();
            pieces.pop_front();
        }
        IoResult result = write_some(fd, writing);
        if (result == IoResult::closed) {
            pieces.clear();
            writing = {};
            shut = true;  // the peer is gone: nothing more goes out
            return;
        }
        // The next piece after the gap; a piece the peer is not reading yet is tried again after it too.
        if (writing.empty() || result == IoResult::would_block) due = now + kWriteGap;
    }
};

// One connection lb opened to the backend.
struct Upstream {
    int fd = -1;
    bool open = true;
    std::string received;
    WireParser requests{HTTP_REQUEST};
    std::vector<size_t> client_request;  // per message received: the client request it forwards
    size_t bodies_checked = 0;
    size_t answered = 0;  // messages received that have had their answer
    Writes answer;
    bool answering = false;
};

class Exchange {
  public:
    Exchange(std::string_view client_bytes, std::string_view backend_bytes, bool backend_answers)
        : client_requests_(HTTP_REQUEST) {
        for (auto piece : split(client_bytes, kWriteMarker)) {
            client_writes_.pieces.push_back(piece);
            client_sent_.append(piece);
        }
        client_requests_.feed(client_sent_);
        if (backend_answers) {
            for (auto answer : split(backend_bytes, kNextMarker)) {
                bool early = answer.starts_with(kEarlyMarker);
                if (early) answer.remove_prefix(kEarlyMarker.size());
                answers_.push_back({early, split(answer, kWriteMarker)});
            }
        }
    }
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;
    ~Exchange() { clean_up(); }

    void run();
    // After run(): the oracles that need the whole exchange.
    void check_after_close();
    // What each side sent and received, for reports (and LB_FUZZ_VERBOSE=1).
    std::string describe() const;

  private:
    void accept_upstreams();
    void read_upstream(Upstream& upstream, bool may_answer);
    size_t match_client_request(const WireMessage& forwarded);
    void check_bodies(Upstream& upstream);
    void answer_requests(Upstream& upstream);
    void start_answer(Upstream& upstream);
    bool answers_head(size_t response) const;
    void clean_up();

    int client_fd_ = -1;
    Writes client_writes_;
    std::string client_sent_;
    WireParser client_requests_;  // what the client sent, as the oracle reads it
    std::string client_received_;
    bool client_closed_ = false;
    struct Answer {
        bool early = false;
        std::vector<std::string_view> pieces;
    };
    std::vector<Answer> answers_;
    size_t answers_given_ = 0;
    std::vector<std::unique_ptr<Upstream>> upstreams_;
    size_t walk_ = SIZE_MAX;  // the client request the backend saw last
};

void Exchange::run() {
    Harness& h = *g_harness;
    client_fd_ = connect_to_loopback(h.server->port());
    Clock::time_point deadline = Clock::now() + kDeadline;
    std::vector<pollfd> fds;
    while (!client_closed_) {
        Clock::time_point now = Clock::now();
        if (now > deadline)
            violation("lb did not end the client connection within {} s\n{}", kDeadline.count(), describe());
        client_writes_.pump(client_fd_, now);
        for (auto& u : upstreams_) {
            if (u->open && u->answering) u->answer.pump(u->fd, now);
        }
        Clock::time_point wake = now + milliseconds(20);
        if (client_writes_.pending()) wake = std::min(wake, client_writes_.due);
        for (auto& u : upstreams_) {
            if (u->open && u->answering && u->answer.pending()) wake = std::min(wake, u->answer.due);
        }
        fds.clear();
        fds.push_back({client_fd_, POLLIN, 0});
        fds.push_back({h.backend_listener, POLLIN, 0});
        for (auto& u : upstreams_) fds.push_back({u->open ? u->fd : -1, POLLIN, 0});
        auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(wake - now, Clock::duration::zero()));
        timespec timeout{static_cast<time_t>(wait.count() / 1'000'000'000),
                         static_cast<long>(wait.count() % 1'000'000'000)};
        if (::ppoll(fds.data(), fds.size(), &timeout, nullptr) <= 0) continue;
        if (fds[1].revents != 0) accept_upstreams();
        for (size_t i = 2; i < fds.size(); ++i) {
            if (fds[i].revents != 0) read_upstream(*upstreams_[i - 2], true);
        }
        if (fds[0].revents != 0 && read_available(client_fd_, client_received_) == IoResult::closed) {
            client_closed_ = true;
        }
    }
    // Whatever lb wrote to the backend before it ended the client connection is in the driver's sockets by now,
    // including connections it opened and has not had accepted.
    accept_upstreams();
    for (auto& u : upstreams_) {
        if (u->open) read_upstream(*u, false);
    }
}

void Exchange::accept_upstreams() {
    while (true) {
        int fd = accept_pending(g_harness->backend_listener);
        if (fd < 0) return;
        auto upstream = std::make_unique<Upstream>();
        upstream->fd = fd;
        upstream->answer.end_with_shutdown = false;
        upstreams_.push_back(std::move(upstream));
    }
}

void Exchange::read_upstream(Upstream& u, bool may_answer) {
    size_t before = u.received.size();
    IoResult result = read_available(u.fd, u.received);
    if (u.received.size() > before && !u.requests.feed(std::string_view(u.received).substr(before))) {
        violation("lb sent the backend bytes that are not a well-framed request: {}\n{}", u.requests.error(),
                  describe());
    }
    const auto& messages = u.requests.messages();
    while (u.client_request.size() < messages.size() && messages[u.client_request.size()].head_complete) {
        u.client_request.push_back(match_client_request(messages[u.client_request.size()]));
    }
    check_bodies(u);
    if (may_answer) answer_requests(u);
    if (result == IoResult::closed) {
        u.open = false;
        close_now(u.fd);
    }
}

size_t Exchange::match_client_request(const WireMessage& forwarded) {
    // lb forwards one request at a time, in order, and may send the same one again on a fresh connection.
    std::vector<size_t> candidates;
    if (walk_ == SIZE_MAX) {
        candidates = {0};
    } else {
        candidates = {walk_ + 1, walk_};
    }
    std::string problem;
    const auto& sent = client_requests_.messages();
    for (size_t c : candidates) {
        if (c >= sent.size() || !sent[c].head_complete) continue;
        std::string why = check_forwarded_request(sent[c], forwarded, kClientAddress);
        if (why.empty()) {
            walk_ = c;
            return c;
        }
        if (problem.empty()) problem = fmt::format("compared with client request {}: {}", c, why);
    }
    if (problem.empty()) problem = "the client sent no such request";
    violation("the backend received {} {} which is not the client's next request or a retry ({})\n{}",
              llhttp_method_name(forwarded.method), escaped(forwarded.target, 100), problem, describe());
}

void Exchange::check_bodies(Upstream& u) {
    const auto& messages = u.requests.messages();
    const auto& sent = client_requests_.messages();
    while (u.bodies_checked < u.client_request.size() && messages[u.bodies_checked].complete) {
        const WireMessage& client = sent[u.client_request[u.bodies_checked]];
        const WireMessage& forwarded = messages[u.bodies_checked];
        if (!client.complete) {
            violation("the backend received a complete request {} whose client request is incomplete\n{}",
                      u.bodies_checked, describe());
        }
        if (client.body != forwarded.body) {
            violation("request body '{}' reached the backend as '{}'\n{}", escaped(client.body),
                      escaped(forwarded.body), describe());
        }
        ++u.bodies_checked;
    }
}

void Exchange::answer_requests(Upstream& u) {
    while (u.answered < u.client_request.size()) {
        bool early = answers_given_ < answers_.size() && answers_[answers_given_].early;
        if (!early && u.answered >= u.bodies_checked) return;  // not complete yet
        start_answer(u);
        ++u.answered;
    }
}

// Whether an answer's first response past any 1xx is a 101. lb then either tunnels (the request asked for the
// upgrade) or closes the connection (it did not): no further request goes out on it either way, and what lb sends
// next, if anything, is the client's tunnel bytes, which are not requests.
bool switches_protocols(const std::vector<std::string_view>& pieces) {
    std::string text;
    for (auto piece : pieces) text.append(piece);
    WireParser parser(HTTP_RESPONSE);
    parser.stop_at_switching_protocols();
    parser.feed(text);
    if (!parser.in_tunnel()) return false;
    const auto& messages = parser.messages();
    for (size_t i = 0; i + 1 < messages.size(); ++i) {
        if (!messages[i].interim()) return false;
    }
    return true;
}

void Exchange::start_answer(Upstream& u) {
    // One answer per request received; after the last one (or with none left) the backend half-closes.
    u.answering = true;
    u.answer.end_with_shutdown = false;
    if (answers_given_ < answers_.size()) {
        if (switches_protocols(answers_[answers_given_].pieces)) u.requests.start_tunnel();
        for (auto piece : answers_[answers_given_].pieces) u.answer.pieces.push_back(piece);
        ++answers_given_;
    }
    if (answers_given_ == answers_.size()) u.answer.end_with_shutdown = true;
}

// Whether the client's `response`-th final response, with this head, answers a HEAD request and so has no body.
bool Exchange::answers_head(size_t response) const {
    const auto& sent = client_requests_.messages();
    bool head_request = response < sent.size() && sent[response].head_complete && sent[response].method == HTTP_HEAD;
    return head_request;
}

void Exchange::check_after_close() {
    const auto& sent = client_requests_.messages();
    // A request still streaming when lb stopped was cut; what reached the backend is still the client's body.
    for (auto& u : upstreams_) {
        const auto& messages = u->requests.messages();
        for (size_t m = 0; m < u->client_request.size(); ++m) {
            if (messages[m].complete) continue;
            const std::string& body = sent[u->client_request[m]].body;
            if (body.compare(0, messages[m].body.size(), messages[m].body) != 0) {
                violation("partial request body '{}' is not the client's '{}'\n{}", escaped(messages[m].body),
                          escaped(body), describe());
            }
        }
    }

    // Requests the client began: the complete ones, and whatever bytes came after them.
    size_t begun = client_requests_.complete_count() + (client_requests_.bytes_after_last_complete() > 0 ? 1 : 0);
    WireParser responses(HTTP_RESPONSE);
    responses.stop_at_switching_protocols();  // after a 101, the client receives the tunnel's bytes
    responses.set_answers_head([this](size_t i, const WireMessage&) { return answers_head(i); });
    if (!responses.feed(client_received_) || !responses.finish()) {
        violation("lb sent the client bytes that are not well-framed responses: {}\n{}", responses.error(), describe());
    }
    if (responses.final_count() > begun) {
        violation("desync: {} final response(s) for {} request(s) begun\n{}", responses.final_count(), begun,
                  describe());
    }
    for (size_t i = 0; i < responses.messages().size(); ++i) {
        const WireMessage& response = responses.messages()[i];
        if (!response.head_complete) continue;
        std::string problem = check_client_response(response);
        if (!problem.empty()) violation("response {}: {}\n{}", i, problem, describe());
    }
}

std::string Exchange::describe() const {
    std::string out = fmt::format("client sent:     {}\nclient received: {}\n", escaped(client_sent_, 3000),
                                  escaped(client_received_, 3000));
    for (size_t i = 0; i < upstreams_.size(); ++i) {
        out += fmt::format("backend conn {} received: {}\n", i, escaped(upstreams_[i]->received, 3000));
    }
    out += fmt::format("answers given: {} of {}", answers_given_, answers_.size());
    return out;
}

void Exchange::clean_up() {
    Harness& h = *g_harness;
    if (client_fd_ >= 0) close_now(client_fd_);
    for (auto& u : upstreams_) {
        if (u->open) close_now(u->fd);
    }
    while (true) {
        int fd = accept_pending(h.backend_listener);
        if (fd < 0) break;
        close_now(fd);
    }
    // The next input must not find this one's connections in lb's idle pool: lb drops an idle connection whose
    // backend closed it, which is one of the things checked here.
    Clock::time_point deadline = Clock::now() + kIdleDropDeadline;
    while (h.server->idle_upstream_connections() != 0) {
        if (Clock::now() > deadline) {
            violation("lb kept {} idle upstream connection(s) the backend had closed for {} s",
                      h.server->idle_upstream_connections(), kIdleDropDeadline.count());
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

}  // namespace
}  // namespace lb::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    lb::fuzz::start_harness();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace lb::fuzz;
    std::string_view input = as_text(data, size);
    bool backend_answers = input.find(kBackendMarker) != std::string_view::npos;
    auto [client_bytes, backend_bytes] = split_once(input, kBackendMarker);
    Exchange exchange(client_bytes, backend_bytes, backend_answers);
    exchange.run();
    exchange.check_after_close();
    static const bool verbose = std::getenv("LB_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "%s\n\n", exchange.describe().c_str());
    return 0;
}
