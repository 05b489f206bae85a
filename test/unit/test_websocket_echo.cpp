// The demo backend's WebSocket echo on its own, bytes in and bytes out: the RFC 6455 accept key, frames split at
// every byte, fragments and control frames, and what a client must not send.
#include <catch2/catch.hpp>
#include <string>

#include "demo/websocket_echo.h"

using lb::demo::WebSocketEcho;

namespace {

// A masked client frame.
std::string client_frame(uint8_t first_byte, const std::string& payload) {
    std::string frame(1, static_cast<char>(first_byte));
    if (payload.size() < 126) {
        frame.push_back(static_cast<char>(0x80 | payload.size()));
    } else {
        frame.push_back(static_cast<char>(0x80 | 126));
        frame.push_back(static_cast<char>(payload.size() >> 8));
        frame.push_back(static_cast<char>(payload.size() & 0xff));
    }
    const char mask[4] = {0x01, 0x7f, 0x55, 0x2a};
    frame.append(mask, 4);
    for (size_t i = 0; i < payload.size(); ++i) frame.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
    return frame;
}

std::string server_frame(uint8_t first_byte, const std::string& payload) {
    std::string frame(1, static_cast<char>(first_byte));
    if (payload.size() < 126) {
        frame.push_back(static_cast<char>(payload.size()));
    } else {
        frame.push_back(static_cast<char>(126));
        frame.push_back(static_cast<char>(payload.size() >> 8));
        frame.push_back(static_cast<char>(payload.size() & 0xff));
    }
    return frame + payload;
}

}  // namespace

TEST_CASE("the accept key is RFC 6455's own example", "[demo][websocket]") {
    CHECK(lb::demo::websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("frames are echoed unmasked however the input is split", "[demo][websocket]") {
    const std::string input = client_frame(0x81, "hello") + client_frame(0x02, std::string(300, 'x')) +
                              client_frame(0x89, "ping!") + client_frame(0x80, "end") +
                              client_frame(0x88, std::string("\x03\xe8", 2));
    const std::string expected = server_frame(0x81, "hello") + server_frame(0x02, std::string(300, 'x')) +
                                 server_frame(0x8a, "ping!") + server_frame(0x80, "end") +
                                 server_frame(0x88, std::string("\x03\xe8", 2));
    for (size_t step : {size_t{1}, size_t{3}, size_t{7}, input.size()}) {
        WebSocketEcho echo;
        std::string out;
        for (size_t at = 0; at < input.size(); at += step) echo.feed(std::string_view(input).substr(at, step), out);
        INFO("step " << step);
        CHECK(out == expected);
        CHECK(echo.close_received());
        CHECK(echo.close_sent());
        CHECK_FALSE(echo.failed());
    }
}

TEST_CASE("an unmasked frame or a fragmented control frame is a protocol error: close 1002", "[demo][websocket]") {
    WebSocketEcho unmasked;
    std::string out;
    unmasked.feed(server_frame(0x81, "hi"), out);
    CHECK(unmasked.failed());
    CHECK(out == server_frame(0x88, std::string("\x03\xea", 2) + "protocol error"));

    WebSocketEcho fragmented_ping;
    out.clear();
    fragmented_ping.feed(client_frame(0x09, "p"), out);
    CHECK(fragmented_ping.failed());
}

TEST_CASE("ws_close_after: the backend closes first after that many messages", "[demo][websocket]") {
    WebSocketEcho echo(2);
    std::string out;
    echo.feed(client_frame(0x81, "one") + client_frame(0x01, "tw") + client_frame(0x80, "o"), out);
    CHECK(out == server_frame(0x81, "one") + server_frame(0x01, "tw") + server_frame(0x80, "o") +
                     server_frame(0x88, std::string("\x03\xe8", 2) + "bye"));
    CHECK(echo.close_sent());
    CHECK_FALSE(echo.close_received());
    out.clear();
    echo.feed(client_frame(0x81, "ignored") + client_frame(0x88, ""), out);
    CHECK(out.empty());
    CHECK(echo.close_received());
}
