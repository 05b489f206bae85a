#include "test/support/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace lb::test {

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
    return strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string Response::header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string{} : it->second;
}

bool Response::has_header(const std::string& name) const { return headers.count(name) > 0; }

namespace {

sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

}  // namespace

Client::Client(uint16_t port, std::chrono::milliseconds timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto addr = loopback(port);
    int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    INFO("connect to 127.0.0.1:" << port << ": " << std::strerror(errno));
    REQUIRE(rc == 0);
}

Client::~Client() {
    if (fd_ >= 0) ::close(fd_);
}

void Client::send(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        INFO("send: " << std::strerror(errno));
        REQUIRE(n > 0);
        bytes.remove_prefix(static_cast<size_t>(n));
    }
}

void Client::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool Client::fill() {
    char chunk[65536];
    for (;;) {
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) FAIL("timed out waiting for data");
        if (n <= 0) return false;  // EOF or reset
        buffered_.append(chunk, static_cast<size_t>(n));
        return true;
    }
}

std::string Client::take(size_t n) {
    while (buffered_.size() < n) {
        if (!fill()) FAIL("connection closed with " << buffered_.size() << " of " << n << " bytes");
    }
    std::string out = buffered_.substr(0, n);
    buffered_.erase(0, n);
    return out;
}

std::string Client::take_line() {
    size_t pos;
    while ((pos = buffered_.find("\r\n")) == std::string::npos) {
        if (!fill()) FAIL("connection closed in the middle of a line: '" << buffered_ << "'");
    }
    std::string line = buffered_.substr(0, pos);
    buffered_.erase(0, pos + 2);
    return line;
}

Response Client::read_response(bool head_request) {
    Response r;
    std::string status_line = take_line();
    r.head = status_line + "\r\n";
    REQUIRE(status_line.size() >= 12);
    r.version = status_line.substr(0, 8);
    r.status = std::stoi(status_line.substr(9, 3));
    for (;;) {
        std::string line = take_line();
        r.head += line + "\r\n";
        if (line.empty()) break;
        auto colon = line.find(':');
        REQUIRE(colon != std::string::npos);
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        value.erase(value.find_last_not_of(" \t") + 1);
        r.headers.emplace(line.substr(0, colon), value);
    }
    bool no_body = head_request || r.status / 100 == 1 || r.status == 204 || r.status == 304;
    if (no_body) return r;
    if (strcasecmp(r.header("Transfer-Encoding").c_str(), "chunked") == 0) {
        r.chunked = true;
        for (;;) {
            size_t size = std::stoul(take_line(), nullptr, 16);
            if (size == 0) {
                while (!take_line().empty()) {
                }
                break;
            }
            r.body += take(size);
            REQUIRE(take_line().empty());
        }
    } else if (r.has_header("Content-Length")) {
        r.body = take(std::stoull(r.header("Content-Length")));
    } else {
        while (fill()) {
        }
        r.body = std::move(buffered_);
        buffered_.clear();
    }
    return r;
}

std::string Client::read_until_closed() {
    while (fill()) {
    }
    std::string out = std::move(buffered_);
    buffered_.clear();
    return out;
}

bool Client::wait_closed() {
    if (!buffered_.empty()) return false;
    char c;
    for (;;) {
        ssize_t n = ::recv(fd_, &c, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
        return n <= 0;
    }
}

HeldRequest::HeldRequest(uint16_t port, const std::string& target, const std::string& extra_headers) : client_(port) {
    client_.send("POST " + target + " HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n" + extra_headers + "\r\nh");
}

Response HeldRequest::finish() {
    client_.send("d");
    return client_.read_response();
}

Response http_exchange(uint16_t port, const std::string& request) {
    Client client(port);
    client.send(request);
    return client.read_response(request.rfind("HEAD ", 0) == 0);
}

Response http_get(uint16_t port, const std::string& target, const std::string& extra_headers) {
    return http_exchange(port,
                         "GET " + target + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" + extra_headers + "\r\n");
}

std::vector<std::string> echoed_values(const Response& echo, const std::string& name) {
    auto lower = [](std::string text) {
        for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return text;
    };
    std::vector<std::string> values;
    std::istringstream lines(echo.body);
    std::string line;
    std::getline(lines, line);  // the request line
    while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (colon == std::string::npos || lower(line.substr(0, colon)) != lower(name)) continue;
        const size_t value = line.find_first_not_of(' ', colon + 1);
        values.push_back(value == std::string::npos ? "" : line.substr(value));
    }
    return values;
}

int status_of(uint16_t port, const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    timeval tv{15, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    auto addr = loopback(port);
    int status = -1;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
        char head[16] = {};
        size_t got = 0;
        while (got < 12) {
            ssize_t n = ::recv(fd, head + got, 12 - got, 0);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        if (got == 12 && std::string_view(head, 5) == "HTTP/") status = std::atoi(head + 9);
    }
    ::close(fd);
    return status;
}

RefusingPort::RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    auto addr = loopback(0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
}

RefusingPort::~RefusingPort() { ::close(fd_); }

UnansweredPort::UnansweredPort() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    auto addr = loopback(0);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 0) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    // A backlog of 0 still queues one connection; with it there, the queue is full.
    queued_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(queued_fd_ >= 0);
    REQUIRE(::connect(queued_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
}

UnansweredPort::~UnansweredPort() {
    ::close(queued_fd_);
    ::close(listen_fd_);
}

uint16_t wait_for_lb_port(const std::string& log_path, std::chrono::milliseconds limit) {
    return wait_for_logged_port(log_path, "listening on ", limit);
}

size_t count_lines_with(const std::string& path, const std::string& text) {
    std::ifstream file(path);
    std::string line;
    size_t n = 0;
    while (std::getline(file, line)) n += line.find(text) != std::string::npos ? 1 : 0;
    return n;
}

uint16_t wait_for_logged_port(const std::string& log_path, const std::string& marker, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        std::ifstream log(log_path);
        std::string line;
        while (std::getline(log, line)) {
            size_t at = line.find(marker);
            if (at == std::string::npos) continue;
            std::string address = line.substr(at + marker.size());
            address = address.substr(0, address.find(' '));
            return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
        }
        if (std::chrono::steady_clock::now() > deadline) FAIL("no '" << marker << "HOST:PORT' in " << log_path);
        poll_pause();
    }
}

Process::Process(std::vector<std::string> argv, const std::string& log_path) {
    // Everything the child needs is made before fork: a test process has other threads (in-process backends, TLS
    // bridges), and one of them may hold the allocator's lock at the fork, so the child must not allocate. It once
    // did (this argv vector), and under load a child hung before exec with its log empty.
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
        // If the test process dies (a watchdog abort), its children go with it instead of holding ports.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!log_path.empty()) {
            int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
                ::close(fd);
            }
        }
        ::execv(args[0], args.data());
        std::_Exit(127);
    }
}

Process::~Process() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
    }
}

void Process::signal(int sig) { ::kill(pid_, sig); }

bool Process::running() {
    if (reaped_) return false;
    pid_t r = ::waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) reaped_ = true;
    return !reaped_;
}

int Process::wait(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (running()) {
        if (std::chrono::steady_clock::now() > deadline) FAIL("process " << pid_ << " did not exit in time");
        ::poll(nullptr, 0, 10);
    }
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    return 128 + WTERMSIG(status_);
}

uint64_t Process::peak_rss_bytes() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
}

uint64_t Process::rss_bytes() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
}

double Process::cpu_seconds() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th
    // and 13th of them.
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    uint64_t ticks = 0;
    for (int i = 1; i <= 13 && rest >> field; ++i) {
        if (i >= 12) ticks += std::stoull(field);
    }
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

CommandResult run_command(const std::string& shell_command) {
    std::string full = shell_command + " 2>&1";
    FILE* pipe = ::popen(full.c_str(), "r");
    if (pipe == nullptr) return {-1, "popen failed: " + shell_command};  // no Catch call: threads use this too
    std::string output;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
    int status = ::pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

void poll_pause() { ::poll(nullptr, 0, 1); }

std::string write_temp_file(const std::string& name, const std::string& content) {
    static std::string dir = [] {
        char templ[] = "/tmp/lb-test-XXXXXX";
        char* made = ::mkdtemp(templ);
        REQUIRE(made != nullptr);
        return std::string(made);
    }();
    std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out << content;
    return path;
}

}  // namespace lb::test
