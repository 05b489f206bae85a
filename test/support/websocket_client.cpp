#include "test/support/websocket_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

namespace lb::test {

namespace {

std::string base64(const unsigned char* data, size_t size) {
    std::string out(4 * ((size + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
    out.resize(static_cast<size_t>(n));
    return out;
}

}  // namespace

WebSocketClient::WebSocketClient(uint16_t port, const std::string& target, const std::string& extra_headers,
                                 std::chrono::milliseconds timeout)
    : timeout_(timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::random_device random;
    unsigned char nonce[16];
    for (auto& b : nonce) b = static_cast<unsigned char>(random());
    key_ = base64(nonce, sizeof nonce);
    send_raw("GET " + target +
             " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key_ +
             "\r\nSec-WebSocket-Version: 13\r\n" + extra_headers + "\r\n");
    // The response head; a body (of a response that is not a 101) is left in buffered_.
    size_t end;
    while ((end = buffered_.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) break;
    }
    if (end == std::string::npos) return;
    response_.head = buffered_.substr(0, end + 4);
    buffered_.erase(0, end + 4);
    size_t line_end = response_.head.find("\r\n");
    std::string status_line = response_.head.substr(0, line_end);
    response_.version = status_line.substr(0, status_line.find(' '));
    response_.status = std::stoi(status_line.substr(status_line.find(' ') + 1, 3));
    size_t at = line_end + 2;
    while (at < end) {
        size_t next = response_.head.find("\r\n", at);
        std::string line = response_.head.substr(at, next - at);
        size_t colon = line.find(':');
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        response_.headers.emplace(line.substr(0, colon), value);
        at = next + 2;
    }
}

WebSocketClient::~WebSocketClient() {
    if (fd_ >= 0) ::close(fd_);
}

std::string WebSocketClient::expected_accept() const {
    std::string input = key_ + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    return base64(digest, sizeof digest);
}

void WebSocketClient::send_raw(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        REQUIRE(n > 0);
        bytes.remove_prefix(static_cast<size_t>(n));
    }
}

void WebSocketClient::send_frame(uint8_t opcode, std::string_view payload, bool fin) {
    std::string frame;
    frame.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
    const uint64_t length = payload.size();
    if (length < 126) {
        frame.push_back(static_cast<char>(0x80 | length));
    } else if (length <= 0xffff) {
        frame.push_back(static_cast<char>(0x80 | 126));
        frame.push_back(static_cast<char>(length >> 8));
        frame.push_back(static_cast<char>(length & 0xff));
    } else {
        frame.push_back(static_cast<char>(0x80 | 127));
        for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>((length >> shift) & 0xff));
    }
    const char mask[4] = {0x12, 0x34, 0x56, 0x78};
    frame.append(mask, 4);
    const size_t start = frame.size();
    frame.append(payload);
    for (size_t i = 0; i < payload.size(); ++i) frame[start + i] = static_cast<char>(frame[start + i] ^ mask[i % 4]);
    send_raw(frame);
}

bool WebSocketClient::fill() {
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    if (ready == 0) FAIL("WebSocket client: no bytes within the timeout");
    char buffer[64 * 1024];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    buffered_.append(buffer, static_cast<size_t>(n));
    return true;
}

std::string WebSocketClient::take(size_t n) {
    while (buffered_.size() < n) {
        if (!fill()) FAIL("WebSocket client: the connection ended in the middle of a frame");
    }
    std::string out = buffered_.substr(0, n);
    buffered_.erase(0, n);
    return out;
}

WebSocketFrame WebSocketClient::read_frame() {
    WebSocketFrame frame;
    std::string header = take(2);
    frame.fin = (header[0] & 0x80) != 0;
    frame.opcode = static_cast<uint8_t>(header[0] & 0x0f);
    REQUIRE((header[1] & 0x80) == 0);  // a server never masks
    uint64_t length = static_cast<uint8_t>(header[1]) & 0x7f;
    if (length == 126) {
        std::string ext = take(2);
        length = (uint64_t{static_cast<uint8_t>(ext[0])} << 8) | static_cast<uint8_t>(ext[1]);
    } else if (length == 127) {
        std::string ext = take(8);
        length = 0;
        for (char c : ext) length = (length << 8) | static_cast<uint8_t>(c);
    }
    frame.payload = take(static_cast<size_t>(length));
    return frame;
}

bool WebSocketClient::wait_closed() {
    buffered_.clear();
    for (;;) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout_.count())) == 0) return false;
        char buffer[64 * 1024];
        ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) return true;
    }
}

void WebSocketClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

}  // namespace lb::test
