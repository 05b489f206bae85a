#include "core/proxy/outcome.h"

#include <string>

#include "http/error_response.h"

namespace lb::core {

std::string_view error_response(Outcome outcome) {
    static const auto responses = [] {
        std::array<std::string, kOutcomes.size()> built;
        for (size_t i = 0; i < kOutcomes.size(); ++i) {
            const OutcomeRow& r = kOutcomes[i];
            if (r.status != 0) built[i] = http::format_error_response(r.status, r.reason, r.message);
        }
        return built;
    }();
    return responses[static_cast<size_t>(outcome)];
}

Outcome outcome_of(http::ParseError error) {
    switch (error) {
        case http::ParseError::uri_too_long:
            return Outcome::uri_too_long;
        case http::ParseError::headers_too_large:
            return Outcome::headers_too_large;
        case http::ParseError::body_too_large:
            return Outcome::body_too_large;
        case http::ParseError::unsupported_version:
            return Outcome::version_not_supported;
        case http::ParseError::none:
        case http::ParseError::malformed:
            break;
    }
    return Outcome::bad_request;
}

std::optional<health::PassiveOutcome> passive_outcome(Outcome outcome, int status) {
    if (outcome == Outcome::answered && status >= 500) return health::PassiveOutcome::status_5xx;
    return row(outcome).passive;
}

}  // namespace lb::core
