// The one table of request outcomes: every outcome that ends a request has a status and a message, and each
// derivation (metrics kind, balancer outcome, passive health) follows the side that caused it.
#include <catch2/catch.hpp>

#include "core/proxy/outcome.h"

using namespace lb::core;

TEST_CASE("every outcome that ends a request answers with its status and says what happened", "[outcome]") {
    const std::vector<std::pair<Outcome, int>> statuses = {
        {Outcome::bad_request, 400},      {Outcome::client_timeout, 408},        {Outcome::body_too_large, 413},
        {Outcome::uri_too_long, 414},     {Outcome::headers_too_large, 431},     {Outcome::connect_refused, 502},
        {Outcome::connect_timeout, 502},  {Outcome::upstream_reset, 502},        {Outcome::bad_response, 502},
        {Outcome::no_backend, 503},       {Outcome::queue_timeout, 503},         {Outcome::local_resources, 503},
        {Outcome::upstream_timeout, 504}, {Outcome::version_not_supported, 505}, {Outcome::no_route, 404},
    };
    for (auto [outcome, status] : statuses) {
        INFO(row(outcome).name);
        CHECK(row(outcome).status == status);
        std::string_view response = error_response(outcome);
        CHECK(response.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
        CHECK(response.find("Connection: close\r\n") != std::string_view::npos);
        CHECK(response.find("\r\n\r\nlb") != std::string_view::npos);
        CHECK(row(outcome).error_kind.has_value());
    }
    CHECK(error_response(Outcome::answered).empty());
    CHECK(error_response(Outcome::client_gone).empty());
}

TEST_CASE("only a backend's own failures count against it", "[outcome]") {
    for (size_t i = 0; i < kOutcomes.size(); ++i) {
        const OutcomeRow& r = kOutcomes[i];
        INFO(r.name);
        if (r.source == Source::backend) {
            CHECK(r.passive.has_value());
        } else {
            CHECK_FALSE(r.passive.has_value());
            CHECK(r.balancer == lb::pool::Outcome::cancelled);
        }
    }
    CHECK(passive_outcome(Outcome::answered, 503) == lb::health::PassiveOutcome::status_5xx);
    CHECK(passive_outcome(Outcome::answered, 404) == lb::health::PassiveOutcome::success);
    CHECK_FALSE(passive_outcome(Outcome::local_resources, 0).has_value());
    CHECK(row(Outcome::local_resources).source == Source::lb);
}

TEST_CASE("parser refusals map to client outcomes", "[outcome]") {
    CHECK(outcome_of(lb::http::ParseError::malformed) == Outcome::bad_request);
    CHECK(outcome_of(lb::http::ParseError::uri_too_long) == Outcome::uri_too_long);
    CHECK(outcome_of(lb::http::ParseError::headers_too_large) == Outcome::headers_too_large);
    CHECK(outcome_of(lb::http::ParseError::body_too_large) == Outcome::body_too_large);
    CHECK(outcome_of(lb::http::ParseError::unsupported_version) == Outcome::version_not_supported);
}
