// The admin API's routes, over an interface the server implements, so that routing, methods, the token and the
// answers are decided here in plain code: GET /backends, and POST /backends/{host:port}/{drain,disable,enable},
// POST /backends/{host:port}/weight?value=N. Every answer is JSON, errors included ({"error": "..."}).
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pool/admin_state.h"

namespace lb::core {

class BackendControl {
  public:
    virtual ~BackendControl() = default;
    // Any of these runs on the admin thread.
    // {"backends":[...]}: every backend's state and why, weights and in-flight requests.
    virtual std::string backends_json() const = 0;
    // Apply a change to the backend named `name` (host:port as in lb.yaml) on every worker. Return the backend's
    // JSON object afterwards, or nothing when no backend has that name.
    virtual std::optional<std::string> set_admin_state(std::string_view name, pool::AdminState state) = 0;
    virtual std::optional<std::string> set_weight(std::string_view name, uint32_t weight) = 0;
};

struct AdminRequest {
    llhttp_method_t method = HTTP_GET;
    std::string_view target;
    std::optional<std::string_view> authorization;  // the Authorization header's value, when sent
    // A browser's Origin header and the request's Host: a POST whose Origin names another site is refused.
    std::optional<std::string_view> origin = std::nullopt;
    std::string_view host = {};
};

struct AdminResponse {
    int status = 200;
    std::string body;            // JSON
    std::string_view allow;      // for a 405: the Allow header's value
    bool ask_for_token = false;  // for a 401: send WWW-Authenticate: Bearer
};

// Nothing when `request` is not for the API (its path is not /backends or below): the other pages answer it.
// `token` empty: no token is required.
std::optional<AdminResponse> handle_admin_api(const AdminRequest& request, BackendControl& control,
                                              std::string_view token);

// Whether a request that carries `origin` ("http://127.0.0.1:9090") comes from the page this listener serves: the
// origin's host and port are the request's Host. A browser sends Origin with every cross-site POST, and a form or
// fetch from any web page the operator opens could otherwise drain backends through a token-less admin API.
bool is_same_origin(std::string_view origin, std::string_view host);

// Whether `authorization` is "Bearer <token>", compared in time that does not depend on where they differ.
bool bearer_token_matches(std::optional<std::string_view> authorization, std::string_view token);

// `text` with %XX escapes decoded; nothing when an escape is malformed or decodes to a control character.
std::optional<std::string> percent_decode(std::string_view text);

}  // namespace lb::core
