// Route matching: each condition alone, the first matching route winning whatever index finds it, and the
// shadowed routes `lb --check` reports.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "route/route_table.h"

using namespace lb;
using route::HeaderMatch;
using route::RouteMatch;
using route::RouteTable;

namespace {

struct Ignore : http::MessageSink {
    http::HeadAction on_head(const http::MessageHead&) override { return http::HeadAction::proceed; }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}
};

// A parsed request whose head stays valid as long as this object lives.
class Request {
  public:
    explicit Request(const std::string& text) : parser_(HTTP_REQUEST, sink_) {
        REQUIRE(parser_.feed(text).status != http::FeedStatus::error);
        REQUIRE(parser_.head_complete());
        view_ = storage_.take(parser_.head());
    }
    const route::RouteRequest& view() const { return view_; }

  private:
    Ignore sink_;
    http::MessageParser parser_;
    route::RouteRequestStorage storage_;
    route::RouteRequest view_;
};

std::unique_ptr<Request> request(std::string_view method, std::string_view target, std::string_view host,
                                 std::string_view extra = "") {
    return std::make_unique<Request>(std::string(method) + " " + std::string(target) +
                                     " HTTP/1.1\r\nHost: " + std::string(host) + "\r\n" + std::string(extra) + "\r\n");
}

RouteMatch host(std::string name) { return RouteMatch{.host = std::move(name)}; }

}  // namespace

TEST_CASE("a request's host is taken without port, case or trailing dot, and from an absolute target first",
          "[route]") {
    CHECK(request("GET", "/", "API.Example.COM:8443")->view().host == "api.example.com");
    CHECK(request("GET", "/", "example.com.")->view().host == "example.com");
    CHECK(request("GET", "/", "[::1]:8080")->view().host == "[::1]");
    auto absolute = request("GET", "http://user@Other.example:81/a/b?x=1", "ignored.example");
    CHECK(absolute->view().host == "other.example");
    CHECK(absolute->view().path == "/a/b");
    CHECK(request("GET", "/p/q?z", "h")->view().path == "/p/q");
    CHECK(request("OPTIONS", "*", "h")->view().path == "*");
    CHECK(request("PATCH", "/", "h")->view().method == "PATCH");
}

TEST_CASE("each condition matches alone", "[route]") {
    auto get = request("GET", "/static/app.js?v=3", "www.example.com", "X-Canary: yes\r\n");
    const route::RouteRequest& r = get->view();

    CHECK(matches(host("www.example.com"), r));
    CHECK_FALSE(matches(host("example.com"), r));
    CHECK(matches(host("*.example.com"), r));
    CHECK(matches(host("*.com"), r));
    CHECK_FALSE(matches(host("*.www.example.com"), r));  // a wildcard needs at least one label of its own

    CHECK(matches(RouteMatch{.path_prefix = "/static/"}, r));
    CHECK_FALSE(matches(RouteMatch{.path_prefix = "/api/"}, r));
    CHECK(matches(RouteMatch{.path = "/static/app.js"}, r));  // the query is not part of the path
    CHECK_FALSE(matches(RouteMatch{.path = "/static/"}, r));

    CHECK(matches(RouteMatch{.method = "GET"}, r));
    CHECK_FALSE(matches(RouteMatch{.method = "POST"}, r));

    CHECK(matches(RouteMatch{.headers = {HeaderMatch{"x-canary", std::nullopt}}}, r));
    CHECK(matches(RouteMatch{.headers = {HeaderMatch{"X-CANARY", "yes"}}}, r));
    CHECK_FALSE(matches(RouteMatch{.headers = {HeaderMatch{"X-Canary", "YES"}}}, r));  // values are exact
    CHECK_FALSE(matches(RouteMatch{.headers = {HeaderMatch{"X-Other", std::nullopt}}}, r));

    CHECK(matches(RouteMatch{}, r));                                                   // no condition: everything
    CHECK_FALSE(matches(RouteMatch{.host = "www.example.com", .method = "POST"}, r));  // every condition must hold
}

TEST_CASE("the first matching route in config order wins, whichever index holds it", "[route]") {
    RouteTable table({
        RouteMatch{.path_prefix = "/admin/"},                        // 0: any host
        RouteMatch{.host = "*.example.com", .path_prefix = "/v2/"},  // 1
        RouteMatch{.host = "api.example.com"},                       // 2
        RouteMatch{.host = "*.example.com"},                         // 3
        RouteMatch{.host = "*.api.example.com"},                     // 4: after 3, which takes its requests
        RouteMatch{.method = "POST"},                                // 5
    });
    auto find = [&](std::string_view method, std::string_view target, std::string_view name) {
        return table.find(request(method, target, name)->view());
    };
    CHECK(find("GET", "/admin/x", "api.example.com") == 0u);
    CHECK(find("GET", "/v2/users", "api.example.com") == 1u);
    CHECK(find("GET", "/v1/users", "api.example.com") == 2u);
    CHECK(find("GET", "/", "www.example.com") == 3u);
    CHECK(find("GET", "/", "a.api.example.com") == 3u);
    CHECK(find("POST", "/", "other.test") == 5u);
    CHECK(find("GET", "/", "other.test") == std::nullopt);
    CHECK(find("GET", "/", "example.com") == std::nullopt);  // the bare name is not under its wildcard
}

TEST_CASE("the table finds what a scan of every route in order finds", "[route]") {
    std::vector<RouteMatch> routes;
    for (int i = 0; i < 40; ++i) {
        RouteMatch m;
        if (i % 3 == 0) m.host = "h" + std::to_string(i % 7) + ".example";
        if (i % 3 == 1) m.host = i % 2 ? "*.example" : "*.h1.example";
        if (i % 4 == 0) m.path_prefix = "/p" + std::to_string(i % 5);
        if (i % 5 == 0) m.method = i % 2 ? "GET" : "PUT";
        routes.push_back(m);
    }
    RouteTable table(routes);
    for (std::string name : {"h0.example", "h1.example", "x.h1.example", "h5.example", "none.test", "example"}) {
        for (std::string path : {"/", "/p0", "/p1/x", "/p4"}) {
            for (std::string method : {"GET", "PUT", "POST"}) {
                auto r = request(method, path, name);
                std::optional<size_t> scanned;
                for (size_t i = 0; i < routes.size() && !scanned; ++i) {
                    if (matches(routes[i], r->view())) scanned = i;
                }
                INFO(method << " " << name << path);
                CHECK(table.find(r->view()) == scanned);
            }
        }
    }
}

TEST_CASE("a route whose every request an earlier route takes is reported as shadowed", "[route]") {
    auto shadowed = route::find_shadowed_routes({
        RouteMatch{.host = "api.example.com"},                              // 0
        RouteMatch{.host = "api.example.com", .path_prefix = "/v1/"},       // 1: by 0
        RouteMatch{.path_prefix = "/static/"},                              // 2
        RouteMatch{.path_prefix = "/static/img/"},                          // 3: by 2
        RouteMatch{.path = "/static"},                                      // 4: not under "/static/"
        RouteMatch{.host = "*.example.com"},                                // 5
        RouteMatch{.host = "*.www.example.com"},                            // 6: by 5
        RouteMatch{.host = "example.com"},                                  // 7: not under *.example.com
        RouteMatch{.method = "GET", .headers = {HeaderMatch{"x-a", "1"}}},  // 8
        RouteMatch{.method = "GET", .headers = {HeaderMatch{"X-A", "1"}, HeaderMatch{"x-b", std::nullopt}}},  // 9
        RouteMatch{.method = "GET", .headers = {HeaderMatch{"x-a", "2"}}},                                    // 10
        RouteMatch{},                                                                                         // 11
        RouteMatch{.host = "late.example"},  // 12: by 11
    });
    std::vector<std::pair<size_t, size_t>> found;
    for (const auto& s : shadowed) found.emplace_back(s.route, s.by);
    CHECK(found == std::vector<std::pair<size_t, size_t>>{{1, 0}, {3, 2}, {6, 5}, {9, 8}, {12, 11}});
}

TEST_CASE("strip_prefix leaves a target the backend reads as the same resource", "[route]") {
    using route::stripped_target;
    CHECK(stripped_target("/static/app.js?v=1", "/static") == "/app.js?v=1");
    CHECK(stripped_target("/static/app.js", "/static/") == "/app.js");
    CHECK(stripped_target("/static", "/static") == "/");
    CHECK(stripped_target("/static?x", "/static") == "/?x");
    CHECK(stripped_target("/api//evil.example/x", "/api") == "/evil.example/x");  // never scheme-relative
    CHECK(stripped_target("/other", "/static").empty());
    // Absolute form keeps the authority that chose the route.
    CHECK(stripped_target("http://a.example/api/v1?q", "/api") == "http://a.example/v1?q");
    CHECK(stripped_target("http://a.example", "/") == "http://a.example/");
    CHECK(stripped_target("http://a.example?q", "/api").empty());
}
