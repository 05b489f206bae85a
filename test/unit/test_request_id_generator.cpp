// Request ids: the ids lb makes (random UUIDs, unique per generator and across seeds), finding a client's own, and
// the heads that carry them to the backend and back to the client.
#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "http/message_parser.h"
#include "http/request_head.h"
#include "http/request_id.h"

using namespace lb::http;

namespace {

struct Sink : MessageSink {
    HeadAction on_head(const MessageHead&) override { return HeadAction::proceed; }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}
};

bool is_uuid_v4(std::string_view id) {
    if (id.size() != 36) return false;
    for (size_t i = 0; i < id.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        const char c = id[i];
        if (dash != (c == '-')) return false;
        if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    // RFC 9562: version 4, variant 10xx.
    return id[14] == '4' && std::string_view("89ab").find(id[19]) != std::string_view::npos;
}

}  // namespace

TEST_CASE("generated ids are version 4 UUIDs, none repeated, and differ between seeds", "[http][request_id]") {
    RequestIdGenerator first(1), second(2), zero(0);
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) {
        for (RequestIdGenerator* g : {&first, &second, &zero}) {
            const RequestId id = g->next();
            const std::string text(id.data(), id.size());
            INFO(text);
            REQUIRE(is_uuid_v4(text));
            REQUIRE(seen.insert(text).second);
        }
    }
    // The same seed gives the same sequence: a shard's ids come from its seed alone.
    RequestIdGenerator again(1), reference(1);
    CHECK(again.next() == reference.next());
}

TEST_CASE("a client's own id is found by name, in any case, and an empty one counts as none", "[http][request_id]") {
    Sink sink;
    MessageParser parser(HTTP_REQUEST, sink);
    REQUIRE(parser.feed("GET / HTTP/1.1\r\nHost: a\r\nx-request-id: abc-123\r\nX-Trace: \r\n\r\n").status !=
            FeedStatus::error);
    CHECK(find_request_id(parser.head(), "X-Request-Id") == "abc-123");
    CHECK(find_request_id(parser.head(), "X-Trace").empty());
    CHECK(find_request_id(parser.head(), "X-Other").empty());
}

TEST_CASE("the request id lb made goes to the backend once, in place of an empty one, and back to the client",
          "[http][request_id]") {
    Sink sink;
    MessageParser request(HTTP_REQUEST, sink);
    REQUIRE(request.feed("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id:\r\nAccept: */*\r\n\r\n").status !=
            FeedStatus::error);
    ForwardedFor forwarded{"192.0.2.9", "http", "b:1"};
    forwarded.request_id_header = "X-Request-Id";
    forwarded.request_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    std::string out;
    write_upstream_request_head(request.head(), forwarded, true, out);
    CHECK(out ==
          "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: http\r\n"
          "X-Request-Id: 0f8fad5b-d9cb-469f-a165-70867728950e\r\n\r\n");

    // Without an id of lb's making, a client's field passes as it is.
    MessageParser own(HTTP_REQUEST, sink);
    REQUIRE(own.feed("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: mine\r\n\r\n").status != FeedStatus::error);
    out.clear();
    write_upstream_request_head(own.head(), {"192.0.2.9", "http", "b:1"}, true, out);
    CHECK(out ==
          "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: mine\r\nX-Forwarded-For: 192.0.2.9\r\n"
          "X-Forwarded-Proto: http\r\n\r\n");

    // Towards the client the id replaces whatever the backend put under that name.
    MessageParser response(HTTP_RESPONSE, sink);
    REQUIRE(response.feed("HTTP/1.1 200 OK\r\nx-request-id: backend's\r\nContent-Length: 0\r\n\r\n").status !=
            FeedStatus::error);
    out.clear();
    write_client_response_head(response.head(), BodyFraming::content_length, false, true, out,
                               {"X-Request-Id", "mine"});
    CHECK(out == "HTTP/1.1 200 OK\r\nX-Request-Id: mine\r\nContent-Length: 0\r\n\r\n");
    out.clear();
    write_client_response_head(response.head(), BodyFraming::content_length, false, true, out);
    CHECK(out == "HTTP/1.1 200 OK\r\nx-request-id: backend's\r\nContent-Length: 0\r\n\r\n");
}
