// The pure HTTP pieces: the parser wrapper's limits and fold detection, header rules, and the heads lb writes.
#include <catch2/catch.hpp>

#include "http/error_response.h"
#include "http/header_rules.h"
#include "http/message_parser.h"
#include "http/request_head.h"

using namespace lb::http;

namespace {

// Records what a parser reports.
struct Recorder : MessageSink {
    int heads = 0;
    int completes = 0;
    std::string body;
    HeadAction on_head(const MessageHead&) override {
        ++heads;
        return HeadAction::proceed;
    }
    void on_body(std::string_view bytes) override { body.append(bytes); }
    void on_message_complete() override { ++completes; }
};

// Feeds `bytes` in pieces of `step`, resuming after each pause; returns the last result.
FeedResult feed_in_steps(MessageParser& parser, std::string_view bytes, size_t step) {
    FeedResult result{FeedStatus::consumed_all, 0};
    while (!bytes.empty()) {
        std::string_view piece = bytes.substr(0, step);
        result = parser.feed(piece);
        if (result.status == FeedStatus::error) return result;
        if (result.status == FeedStatus::paused) parser.resume();
        bytes.remove_prefix(result.consumed);
    }
    return result;
}

}  // namespace

TEST_CASE("the parser delivers the same message whatever the read boundaries", "[http][parser]") {
    const std::string request =
        "POST /submit?x=1 HTTP/1.1\r\nHost: a.example\r\nX-Long: some value with spaces\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for (size_t step : {1u, 2u, 7u, 64u, 4096u}) {
        Recorder sink;
        MessageParser parser(HTTP_REQUEST, sink);
        FeedResult result = feed_in_steps(parser, request, step);
        INFO("step " << step);
        CHECK(result.status != FeedStatus::error);
        CHECK(sink.heads == 1);
        CHECK(sink.completes == 1);
        CHECK(sink.body == "hello world");
        std::string_view value;
        CHECK(parser.head().find("x-long", value));
        CHECK(value == "some value with spaces");
        CHECK(parser.head().target() == "/submit?x=1");
    }
}

TEST_CASE("obs-fold is rejected however the input is split", "[http][parser]") {
    const std::string folded = "GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n";
    for (size_t step : {1u, 3u, 4096u}) {
        Recorder sink;
        MessageParser parser(HTTP_REQUEST, sink);
        FeedResult result = feed_in_steps(parser, folded, step);
        INFO("step " << step);
        CHECK(result.status == FeedStatus::error);
        CHECK(result.error == ProxyError::bad_request);
        CHECK(sink.heads == 0);
    }
}

TEST_CASE("head limits map to their own errors", "[http][parser]") {
    Recorder sink;
    HeadLimits limits{200, 3, 50};
    SECTION("target") {
        MessageParser parser(HTTP_REQUEST, sink, limits);
        CHECK(parser.feed("GET /" + std::string(60, 'a') + " HTTP/1.1\r\n").error == ProxyError::uri_too_long);
    }
    SECTION("bytes") {
        MessageParser parser(HTTP_REQUEST, sink, limits);
        CHECK(parser.feed("GET / HTTP/1.1\r\nX: " + std::string(300, 'v') + "\r\n\r\n").error ==
              ProxyError::headers_too_large);
    }
    SECTION("count") {
        MessageParser parser(HTTP_REQUEST, sink, limits);
        CHECK(parser.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n").error ==
              ProxyError::headers_too_large);
    }
}

TEST_CASE("hop-by-hop fields and the fields Connection names are dropped", "[http][headers]") {
    Recorder sink;
    MessageParser parser(HTTP_REQUEST, sink);
    parser.feed(
        "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
        "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n");
    const MessageHead& head = parser.head();
    CHECK(is_hop_by_hop("Transfer-Encoding"));
    CHECK(is_hop_by_hop("proxy-connection"));
    CHECK_FALSE(is_hop_by_hop("Accept"));
    CHECK(connection_lists(head, "x-hop"));
    CHECK_FALSE(connection_lists(head, "accept"));

    std::string out;
    write_upstream_request_head(head, {"192.0.2.9", "http"}, true, out);
    CHECK(out ==
          "GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.9\r\n"
          "X-Forwarded-Proto: http\r\n\r\n");
}

TEST_CASE("response framing follows what the client can take", "[http][framing]") {
    Recorder sink;
    MessageParser request10(HTTP_REQUEST, sink), request11(HTTP_REQUEST, sink), head_request(HTTP_REQUEST, sink);
    request10.feed("GET / HTTP/1.0\r\n\r\n");
    request11.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    head_request.feed("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    MessageParser chunked(HTTP_RESPONSE, sink), sized(HTTP_RESPONSE, sink), no_content(HTTP_RESPONSE, sink);
    chunked.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    sized.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    no_content.feed("HTTP/1.1 204 No Content\r\n\r\n");

    CHECK(client_response_framing(request11.head(), chunked.head()) == BodyFraming::chunked);
    CHECK(client_response_framing(request10.head(), chunked.head()) == BodyFraming::until_close);
    CHECK(client_response_framing(request11.head(), sized.head()) == BodyFraming::content_length);
    CHECK(client_response_framing(head_request.head(), sized.head()) == BodyFraming::content_length);
    CHECK(client_response_framing(request11.head(), no_content.head()) == BodyFraming::none);

    std::string out;
    write_client_response_head(sized.head(), BodyFraming::content_length, true, true, out);
    CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n");
}

TEST_CASE("idempotent methods", "[http][headers]") {
    CHECK(is_idempotent(HTTP_GET));
    CHECK(is_idempotent(HTTP_PUT));
    CHECK_FALSE(is_idempotent(HTTP_POST));
    CHECK_FALSE(is_idempotent(HTTP_PATCH));
}

TEST_CASE("every error has its status and says what happened", "[http][errors]") {
    CHECK(status_for(ProxyError::bad_request) == 400);
    CHECK(status_for(ProxyError::client_timeout) == 408);
    CHECK(status_for(ProxyError::body_too_large) == 413);
    CHECK(status_for(ProxyError::uri_too_long) == 414);
    CHECK(status_for(ProxyError::headers_too_large) == 431);
    CHECK(status_for(ProxyError::upstream_unreachable) == 502);
    CHECK(status_for(ProxyError::no_backend) == 503);
    CHECK(status_for(ProxyError::upstream_timeout) == 504);
    std::string_view r = error_response(ProxyError::no_backend);
    CHECK(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
    CHECK(r.find("Connection: close\r\n") != std::string_view::npos);
}
