// Where the consistent-hash key comes from: client address, a header, a cookie or the path.
#include <catch2/catch.hpp>

#include "route/hash_key.h"

using namespace lb;

namespace {

struct Ignore : http::MessageSink {
    http::HeadAction on_head(const http::MessageHead&) override { return http::HeadAction::proceed; }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}
};

pool::ConsistentHashOptions keyed(pool::HashKeySource source, std::string name = "") {
    pool::ConsistentHashOptions options;
    options.key_source = source;
    options.key_name = std::move(name);
    return options;
}

}  // namespace

TEST_CASE("the hash key is taken from where the config says", "[hash_key]") {
    Ignore sink;
    http::MessageParser parser(HTTP_REQUEST, sink);
    parser.feed(
        "GET /cart/items?page=2 HTTP/1.1\r\nHost: h\r\nX-User: alice\r\n"
        "Cookie: theme=dark; session = s-42 ;lang=en\r\n\r\n");
    const auto& head = parser.head();
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::client_ip), "192.0.2.1") == "192.0.2.1");
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::path), "") == "/cart/items");
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::header, "x-user"), "") == "alice");
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::header, "X-Missing"), "").empty());
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::cookie, "lang"), "") == "en");
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::cookie, "theme"), "") == "dark");
    CHECK(route::request_hash_key(head, keyed(pool::HashKeySource::cookie, "nope"), "").empty());
}
