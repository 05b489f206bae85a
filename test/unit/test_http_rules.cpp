// The pure HTTP pieces: the parser wrapper's limits and fold detection, header rules, and the heads lb writes.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

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
        CHECK(result.error == ParseError::malformed);
        CHECK(sink.heads == 0);
    }
}

TEST_CASE("head limits map to their own errors", "[http][parser]") {
    Recorder sink;
    HeadLimits limits{200, 3, 50};
    SECTION("target") {
        MessageParser parser(HTTP_REQUEST, sink, limits);
        CHECK(parser.feed("GET /" + std::string(60, 'a') + " HTTP/1.1\r\n").error == ParseError::uri_too_long);
    }
    SECTION("bytes") {
        MessageParser parser(HTTP_REQUEST, sink, limits);
        CHECK(parser.feed("GET / HTTP/1.1\r\nX: " + std::string(300, 'v') + "\r\n\r\n").error ==
              ParseError::headers_too_large);
    }
    SECTION("count") {
        MessageParser parser(HTTP_REQUEST, sink, limits);
        CHECK(parser.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n").error ==
              ParseError::headers_too_large);
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
    write_upstream_request_head(head, {"192.0.2.9", "http", "b:1"}, true, out);
    CHECK(out ==
          "GET /x HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.9\r\n"
          "X-Forwarded-Proto: http\r\n\r\n");
}

TEST_CASE("field names match without regard to ASCII case, and only letters fold", "[http][headers]") {
    CHECK(equals_ignore_case("Content-Length", "content-LENGTH"));
    CHECK(equals_ignore_case("", ""));
    CHECK_FALSE(equals_ignore_case("te", "tE-"));
    // '@' and '`', '[' and '{' differ only in the bit that folds letters: they are different characters.
    CHECK_FALSE(equals_ignore_case("x@", "x`"));
    CHECK_FALSE(equals_ignore_case("[", "{"));
    CHECK_FALSE(equals_ignore_case("\xc3", "\xe3"));
}

TEST_CASE("heads lb writes carry exact status codes, lengths and chunk sizes", "[http][framing]") {
    Recorder sink;
    MessageParser parser(HTTP_RESPONSE, sink);
    parser.feed("HTTP/1.1 404 Not Found\r\nContent-Length: 18446744073709551615\r\nX-A: 1\r\n\r\n");
    std::string out;
    write_client_response_head(parser.head(), BodyFraming::content_length, false, true, out);
    CHECK(out == "HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Length: 18446744073709551615\r\n\r\n");
    out.clear();
    write_chunk_size(0, out);
    write_chunk_size(0x1f2e, out);
    write_chunk_size(UINT64_MAX, out);
    CHECK(out == "0\r\n1f2e\r\nffffffffffffffff\r\n");
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

TEST_CASE("obs-fold is rejected in every form (after an empty value, in responses, in trailers), and nameless fields",
          "[http][parser]") {
    const std::vector<std::pair<llhttp_type_t, std::string>> folded = {
        {HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: t\r\nX-Fold:\r\n folded\r\n\r\n"},
        {HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: t\r\nX-Fold:\r\n\tfolded\r\n\r\n"},
        {HTTP_REQUEST, "GET / HTTP/1.1\r\n Host: t\r\n\r\n"},
        {HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: t\r\n: no name\r\n\r\n"},
        // A bare LF as the blank line: llhttp ends the head there, where a backend might not.
        {HTTP_REQUEST, "POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\nhello"},
        {HTTP_REQUEST, "\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n"},
        {HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX-Fold:\r\n folded\r\nContent-Length: 0\r\n\r\n"},
        {HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n"},
        {HTTP_REQUEST,
         "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: a\r\n b\r\n\r\n"},
    };
    for (const auto& [type, message] : folded) {
        for (size_t step : {1u, 2u, 5u, 4096u}) {
            Recorder sink;
            MessageParser parser(type, sink);
            FeedResult result = feed_in_steps(parser, message, step);
            INFO(message << " in steps of " << step);
            CHECK(result.status == FeedStatus::error);
            CHECK(result.error == ParseError::malformed);
        }
    }
}

TEST_CASE("a HEAD request is known as one even when its start line is refused", "[http][parser]") {
    // The error answer to it must have no body, or the client reads that body as the next response.
    for (std::string request : {"HEAD / HTTP/1.1\n\n", "\r\nHEAD / HTTP/1.1\nHost: t\r\n\r\n", "HEAD / RTSP/1.0\r\n"}) {
        for (size_t step : {1u, 3u, 4096u}) {
            Recorder sink;
            MessageParser parser(HTTP_REQUEST, sink);
            INFO(request << " in steps of " << step);
            CHECK(feed_in_steps(parser, request, step).status == FeedStatus::error);
            CHECK(parser.is_head_request());
        }
    }
    Recorder sink;
    MessageParser get(HTTP_REQUEST, sink);
    CHECK(get.feed("GET / HTTP/1.1\n\n").status == FeedStatus::error);
    CHECK_FALSE(get.is_head_request());
}

TEST_CASE("only HTTP/1.0 and HTTP/1.1 are parsed", "[http][parser]") {
    for (std::string line : {"OPTIONS * RTSP/1.0", "SOURCE /stream ICE/1.0", "DESCRIBE / RTSP/1.0"}) {
        Recorder sink;
        MessageParser parser(HTTP_REQUEST, sink);
        INFO(line);
        CHECK(parser.feed(line + "\r\nHost: t\r\n\r\n").status == FeedStatus::error);
        CHECK(sink.heads == 0);
    }
    Recorder sink;
    MessageParser parser(HTTP_REQUEST, sink);
    FeedResult result = parser.feed("GET / HTTP/2.0\r\nHost: t\r\n\r\n");
    CHECK(result.status == FeedStatus::error);
    CHECK((result.error == ParseError::unsupported_version || result.error == ParseError::malformed));
    MessageParser response(HTTP_RESPONSE, sink);
    CHECK(response.feed("RTSP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").status == FeedStatus::error);
    MessageParser ok(HTTP_REQUEST, sink);
    CHECK(ok.feed("\r\nGET / HTTP/1.0\r\n\r\n").status == FeedStatus::paused);
}

TEST_CASE("trailers count against the header limits, chunk extensions against the body limit", "[http][parser]") {
    Recorder sink;
    SECTION("trailer fields") {
        MessageParser parser(HTTP_REQUEST, sink, {4096, 5, 1024, 0});
        std::string request = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
        for (int i = 0; i < 10; ++i) request += "X-T" + std::to_string(i) + ": v\r\n";
        CHECK(parser.feed(request + "\r\n").error == ParseError::headers_too_large);
    }
    SECTION("trailer bytes") {
        MessageParser parser(HTTP_REQUEST, sink, {1024, 100, 1024, 0});
        std::string request = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n";
        CHECK(parser.feed(request + "X-T: " + std::string(2000, 'v') + "\r\n\r\n").error ==
              ParseError::headers_too_large);
    }
    SECTION("chunk extensions") {
        MessageParser parser(HTTP_REQUEST, sink, {4096, 100, 1024, 100});
        std::string request = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
        request += "1;ext=" + std::string(500, 'x') + "\r\na\r\n0\r\n\r\n";
        CHECK(parser.feed(request).error == ParseError::body_too_large);
    }
    SECTION("a declared length over the limit is refused at the head") {
        MessageParser parser(HTTP_REQUEST, sink, {4096, 100, 1024, 100});
        CHECK(parser.feed("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n").error ==
              ParseError::body_too_large);
        CHECK(sink.heads == 0);
    }
}

TEST_CASE("Connection cannot remove Host or X-Forwarded-*, and HTTP/1.0 without Host gets the backend's",
          "[http][headers]") {
    Recorder sink;
    MessageParser parser(HTTP_REQUEST, sink);
    parser.feed(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, Host, X-Forwarded-For, X-Forwarded-Proto\r\n"
        "X-Forwarded-For: , 10.0.0.1 ,, \r\nX-Forwarded-For:\r\n\r\n");
    std::string out;
    write_upstream_request_head(parser.head(), {"192.0.2.9", "http", "b:1"}, true, out);
    CHECK(out ==
          "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 192.0.2.9\r\nX-Forwarded-Proto: http\r\n\r\n");

    MessageParser http10(HTTP_REQUEST, sink);
    http10.feed("GET /old HTTP/1.0\r\n\r\n");
    CHECK(validate_request_head(http10.head()) == ParseError::none);
    out.clear();
    write_upstream_request_head(http10.head(), {"192.0.2.9", "http", "10.0.0.5:8080"}, false, out);
    CHECK(out ==
          "GET /old HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nX-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: http\r\n"
          "Connection: close\r\n\r\n");
}

TEST_CASE(
    "client certificate headers are lb's: a client's own are dropped whatever their case, the verified subject "
    "is added",
    "[http][headers]") {
    Recorder sink;
    MessageParser parser(HTTP_REQUEST, sink);
    parser.feed(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Client-Subject: CN=admin\r\nx-client-subject: CN=root\r\n"
        "X-Other-Subject: CN=other\r\nAccept: */*\r\n\r\n");
    const std::vector<std::string> lb_owned = {"X-Client-Subject", "X-Other-Subject"};
    std::string out;
    // A plain listener, or a TLS one where no certificate verified: nothing added, nothing passed on.
    write_upstream_request_head(parser.head(), {"192.0.2.9", "http", "b:1", lb_owned}, true, out);
    CHECK(out ==
          "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: http\r\n\r\n");
    out.clear();
    write_upstream_request_head(
        parser.head(), {"192.0.2.9", "https", "b:1", lb_owned, "X-Client-Subject", "CN=client,O=example"}, true, out);
    CHECK(out ==
          "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: https\r\n"
          "X-Client-Subject: CN=client,O=example\r\n\r\n");
}

TEST_CASE("request heads that must not be forwarded", "[http][headers]") {
    Recorder sink;
    auto validate = [&](const std::string& request) {
        MessageParser parser(HTTP_REQUEST, sink);
        parser.feed(request);
        return validate_request_head(parser.head());
    };
    CHECK(validate("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == ParseError::none);
    CHECK(validate("GET / HTTP/1.1\r\n\r\n") == ParseError::malformed);
    CHECK(validate("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == ParseError::malformed);
    CHECK(validate("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n") == ParseError::malformed);
    CHECK(validate("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n") == ParseError::malformed);
}

TEST_CASE("bodies after HEAD, 1xx, 204 and 304 are never expected", "[http][framing]") {
    Recorder sink;
    MessageParser get(HTTP_REQUEST, sink), head(HTTP_REQUEST, sink);
    get.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    head.feed("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    auto response = [&](const std::string& text) {
        auto parser = std::make_unique<MessageParser>(HTTP_RESPONSE, sink);
        parser->feed(text);
        return parser;
    };
    auto not_modified = response("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
    auto no_content = response("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
    auto ok = response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    CHECK(response_has_no_body(get.head(), not_modified->head()));
    CHECK(response_has_no_body(get.head(), no_content->head()));
    CHECK(response_has_no_body(head.head(), ok->head()));
    CHECK_FALSE(response_has_no_body(get.head(), ok->head()));
    // A 304's Content-Length describes the representation (RFC 9110 §8.6) and passes; a 204 has none.
    CHECK(client_response_framing(get.head(), not_modified->head()) == BodyFraming::content_length);
    CHECK(client_response_framing(get.head(), no_content->head()) == BodyFraming::none);
}

TEST_CASE("an Upgrade is passed on only when Connection lists it, on HTTP/1.1, for a request without a body",
          "[http][headers][upgrade]") {
    auto upgrade_of = [](const std::string& request) {
        Recorder sink;
        MessageParser parser(HTTP_REQUEST, sink);
        REQUIRE(parser.feed(request).status != FeedStatus::error);
        return std::string(requested_upgrade(parser.head()));
    };
    CHECK(upgrade_of("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n") ==
          "websocket");
    CHECK(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").empty());
    CHECK(upgrade_of("GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n").empty());
    CHECK(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n").empty());
    CHECK(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: a\r\nUpgrade: b\r\nConnection: upgrade\r\n\r\n").empty());
    CHECK(upgrade_of("POST / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: upgrade\r\nContent-Length: 1\r\n\r\nx")
              .empty());
    CHECK(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n") ==
          "h2c");

    Recorder sink;
    MessageParser parser(HTTP_REQUEST, sink);
    parser.feed(
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n");
    lb::http::ForwardedFor forwarded{"192.0.2.9", "http", "b:1"};
    forwarded.upgrade = requested_upgrade(parser.head());
    std::string out;
    write_upstream_request_head(parser.head(), forwarded, false, out);
    CHECK(out ==
          "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nX-Forwarded-For: 192.0.2.9\r\n"
          "X-Forwarded-Proto: http\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
}

TEST_CASE("the response parser stops at the end of a 101's head, so the bytes after it are the tunnel's",
          "[http][parser][upgrade]") {
    struct PauseAtHead : Recorder {
        HeadAction on_head(const MessageHead& head) override {
            Recorder::on_head(head);
            return HeadAction::pause;
        }
    } sink;
    MessageParser parser(HTTP_RESPONSE, sink);
    const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    FeedResult result = parser.feed(head + "\x81\x02hi");
    CHECK(result.status == FeedStatus::paused);
    CHECK(result.consumed == head.size());
    CHECK(sink.heads == 1);

    std::string out;
    write_switching_protocols_head(parser.head(), "websocket", out, {"X-Request-Id", "abc"});
    CHECK(out ==
          "HTTP/1.1 101 Switching Protocols\r\nX-Request-Id: abc\r\nUpgrade: websocket\r\nConnection: "
          "upgrade\r\n\r\n");
}
