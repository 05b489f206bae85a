// The admin API's routing as plain code: which method each path takes, the token, the answers for unknown
// backends, verbs and bad weights, and that a rejected request never reaches the server.
#include <catch2/catch.hpp>
#include <vector>

#include "core/admin/admin_api.h"

using namespace lb::core;

namespace {

// Records what reached it; knows one backend.
class RecordingControl final : public BackendControl {
  public:
    std::string backends_json() const override { return "{\"backends\":[]}\n"; }
    std::optional<std::string> set_admin_state(std::string_view name, lb::pool::AdminState state) override {
        calls.push_back(std::string(name) + " " + std::string(lb::pool::admin_state_name(state)));
        return name == "[::1]:80" || name == "10.0.0.1:80" ? std::optional<std::string>("{}") : std::nullopt;
    }
    std::optional<std::string> set_weight(std::string_view name, uint32_t weight) override {
        calls.push_back(std::string(name) + " weight " + std::to_string(weight));
        return name == "10.0.0.1:80" ? std::optional<std::string>("{}") : std::nullopt;
    }
    std::vector<std::string> calls;
};

AdminResponse call(RecordingControl& control, llhttp_method_t method, std::string_view target,
                   std::optional<std::string_view> authorization = std::nullopt, std::string_view token = "") {
    auto answer = handle_admin_api({method, target, authorization}, control, token);
    REQUIRE(answer);
    return *answer;
}

}  // namespace

TEST_CASE("admin API routes, methods and errors", "[admin][routes]") {
    RecordingControl control;
    CHECK_FALSE(handle_admin_api({HTTP_GET, "/status", std::nullopt}, control, ""));
    CHECK_FALSE(handle_admin_api({HTTP_GET, "/backendsX", std::nullopt}, control, ""));
    CHECK(call(control, HTTP_GET, "/backends").status == 200);
    CHECK(call(control, HTTP_GET, "/backends?x=1").status == 200);
    AdminResponse list_post = call(control, HTTP_POST, "/backends");
    CHECK(list_post.status == 405);
    CHECK(list_post.allow == "GET, HEAD");
    AdminResponse get_drain = call(control, HTTP_GET, "/backends/10.0.0.1:80/drain");
    CHECK(get_drain.status == 405);
    CHECK(get_drain.allow == "POST");
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80/drain").status == 200);
    CHECK(call(control, HTTP_POST, "/backends/%5B::1%5D:80/disable").status == 200);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.9:80/enable").status == 404);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80/weight?value=7").status == 200);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80/weight?other=1&value=8").status == 200);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80/weight?value=1001").status == 400);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80/weight").status == 400);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80/reboot").status == 404);
    CHECK(call(control, HTTP_POST, "/backends/10.0.0.1:80").status == 404);
    CHECK(call(control, HTTP_POST, "/backends/%zz/drain").status == 400);
    CHECK(call(control, HTTP_POST, "/backends/a%0Ab/drain").status == 400);
    CHECK(control.calls == std::vector<std::string>{"10.0.0.1:80 draining", "[::1]:80 disabled", "10.0.0.9:80 enabled",
                                                    "10.0.0.1:80 weight 7", "10.0.0.1:80 weight 8"});
    // A decoded name that is not UTF-8 or holds a quote still gives valid JSON in the error.
    AdminResponse hostile = call(control, HTTP_POST, "/backends/%FF%22x/enable");
    CHECK(hostile.status == 404);
    CHECK(hostile.body == "{\"error\":\"no backend \\\\xff\\\"x\"}\n");
    for (const AdminResponse& r :
         {call(control, HTTP_POST, "/backends/x/reboot"), call(control, HTTP_GET, "/backends")}) {
        CHECK(r.body.back() == '\n');
    }
}

TEST_CASE("with a token, a POST needs it and a refused one changes nothing", "[admin][routes][token]") {
    RecordingControl control;
    const std::string_view token = "s3cret";
    const std::string_view drain = "/backends/10.0.0.1:80/drain";
    AdminResponse none = call(control, HTTP_POST, drain, std::nullopt, token);
    CHECK(none.status == 401);
    CHECK(none.ask_for_token);
    for (std::string_view wrong : {"Bearer s3cre", "Bearer s3cret ", "Bearer S3cret", "Basic s3cret", "s3cret", ""}) {
        INFO(wrong);
        CHECK(call(control, HTTP_POST, drain, wrong, token).status == 401);
    }
    CHECK(control.calls.empty());
    CHECK(call(control, HTTP_POST, drain, "Bearer s3cret", token).status == 200);
    CHECK(call(control, HTTP_POST, drain, "bearer s3cret", token).status == 200);
    // Reads need no token; a wrong method is told so before the token is asked for.
    CHECK(call(control, HTTP_GET, "/backends", std::nullopt, token).status == 200);
    CHECK(call(control, HTTP_GET, drain, std::nullopt, token).status == 405);
}

TEST_CASE("percent_decode and bearer_token_matches", "[admin][routes]") {
    CHECK(percent_decode("%5B::1%5d:80") == "[::1]:80");
    CHECK_FALSE(percent_decode("%"));
    CHECK_FALSE(percent_decode("%4"));
    CHECK_FALSE(percent_decode("%00"));
    CHECK(bearer_token_matches("Bearer abc", "abc"));
    CHECK_FALSE(bearer_token_matches("Bearer abd", "abc"));
    CHECK_FALSE(bearer_token_matches(std::nullopt, "abc"));
    CHECK_FALSE(bearer_token_matches("Bearer\tabc", "abc"));
}

TEST_CASE("a POST from another site's page is refused, the status page's own and non-browser clients pass",
          "[admin][routes]") {
    RecordingControl control;
    const std::string_view drain = "/backends/10.0.0.1:80/drain";
    auto post = [&](std::optional<std::string_view> origin) {
        return handle_admin_api({HTTP_POST, drain, std::nullopt, origin, "127.0.0.1:9090"}, control, "")->status;
    };
    CHECK(post(std::nullopt) == 200);  // curl sends no Origin
    CHECK(post("http://127.0.0.1:9090") == 200);
    CHECK(post("HTTP://127.0.0.1:9090") == 200);
    CHECK(post("http://evil.example") == 403);
    CHECK(post("http://127.0.0.1:9091") == 403);
    CHECK(post("https://127.0.0.1:9090") == 403);
    CHECK(post("null") == 403);
    CHECK(control.calls.size() == 3);  // the three passing POSTs
    CHECK(is_same_origin("http://localhost", "localhost:80"));
    CHECK_FALSE(is_same_origin("http://localhost", ""));
}
