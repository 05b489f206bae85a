#include "core/admin/admin_api.h"

#include <openssl/crypto.h>

#include <cctype>

#include "base/json_string.h"
#include "core/admin/status_page.h"
#include "http/header_rules.h"

namespace lb::core {
namespace {

AdminResponse error(int status, std::string_view message) {
    return {status, "{\"error\":" + base::json_string(message) + "}\n", {}, false};
}

// The value of `key` in a query string ("value=5&x=1"), when present.
std::optional<std::string_view> query_value(std::string_view query, std::string_view key) {
    while (!query.empty()) {
        size_t end = query.find('&');
        std::string_view pair = query.substr(0, end);
        if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
            return pair.substr(key.size() + 1);
        }
        if (end == std::string_view::npos) break;
        query.remove_prefix(end + 1);
    }
    return std::nullopt;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= text.size()) return std::nullopt;
            int high = hex_digit(text[i + 1]);
            int low = hex_digit(text[i + 2]);
            if (high < 0 || low < 0) return std::nullopt;
            c = static_cast<char>(high * 16 + low);
            i += 2;
        }
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
        out += c;
    }
    return out;
}

bool is_same_origin(std::string_view origin, std::string_view host) {
    // RFC 6454: scheme "://" host [":" port]; "null" and anything else names no origin of ours.
    const size_t scheme_end = origin.find("://");
    if (scheme_end == std::string_view::npos || host.empty()) return false;
    std::string_view scheme = origin.substr(0, scheme_end);
    std::string_view authority = origin.substr(scheme_end + 3);
    if (!http::equals_ignore_case(scheme, "http")) return false;
    // A default port may be left out of either; the admin listener speaks plain HTTP.
    auto without_default_port = [](std::string_view a) { return a.ends_with(":80") ? a.substr(0, a.size() - 3) : a; };
    return http::equals_ignore_case(without_default_port(authority), without_default_port(host));
}

bool bearer_token_matches(std::optional<std::string_view> authorization, std::string_view token) {
    constexpr std::string_view kScheme = "bearer ";
    if (!authorization || authorization->size() != kScheme.size() + token.size()) return false;
    // The scheme is case-insensitive (RFC 9110); the token is compared whole, in constant time.
    for (size_t i = 0; i < kScheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>((*authorization)[i])) != kScheme[i]) return false;
    }
    return CRYPTO_memcmp(authorization->data() + kScheme.size(), token.data(), token.size()) == 0;
}

std::optional<AdminResponse> handle_admin_api(const AdminRequest& request, BackendControl& control,
                                              std::string_view token) {
    std::string_view target = request.target;
    size_t question = target.find('?');
    std::string_view path = target.substr(0, question);
    std::string_view query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
    constexpr std::string_view kRoot = "/backends";
    if (path.substr(0, kRoot.size()) != kRoot || (path.size() > kRoot.size() && path[kRoot.size()] != '/')) {
        return std::nullopt;
    }
    path.remove_prefix(kRoot.size());
    if (path.empty() || path == "/") {
        if (request.method != HTTP_GET && request.method != HTTP_HEAD) {
            AdminResponse r = error(405, "GET /backends lists the backends; changes are POSTed below it");
            r.allow = "GET, HEAD";
            return r;
        }
        return AdminResponse{200, control.backends_json(), {}, false};
    }
    // "/{host:port}/{verb}": the name may hold ':' and, for IPv6, brackets; the verb is after the last '/'.
    path.remove_prefix(1);
    size_t slash = path.rfind('/');
    if (slash == std::string_view::npos || slash == 0) {
        return error(404, "no such resource: POST /backends/{host:port}/drain, disable, enable or weight?value=N");
    }
    std::string_view verb = path.substr(slash + 1);
    std::optional<pool::AdminState> state = pool::admin_action(verb);
    if (!state && verb != "weight") {
        return error(404, "no such action: use drain, disable, enable or weight?value=N");
    }
    if (request.method != HTTP_POST) {
        AdminResponse r = error(405, "changes are made with POST");
        r.allow = "POST";
        return r;
    }
    if (request.origin && !is_same_origin(*request.origin, request.host)) {
        return error(403, "cross-site request refused: its Origin is not this admin listener");
    }
    if (!token.empty() && !bearer_token_matches(request.authorization, token)) {
        AdminResponse r = error(401, "this admin API needs Authorization: Bearer <token>");
        r.ask_for_token = true;
        return r;
    }
    std::optional<std::string> name = percent_decode(path.substr(0, slash));
    if (!name) return error(400, "malformed backend name");
    std::optional<std::string> answer;
    if (state) {
        answer = control.set_admin_state(*name, *state);
    } else {
        std::optional<std::string_view> text = query_value(query, "value");
        if (!text) return error(400, "weight needs ?value=N");
        std::optional<uint32_t> weight = pool::parse_weight(*text);
        if (!weight) {
            return error(400, "weight must be an integer between " + std::to_string(pool::kMinWeight) + " and " +
                                  std::to_string(pool::kMaxWeight));
        }
        answer = control.set_weight(*name, *weight);
    }
    if (!answer) return error(404, "no backend " + *name);
    return AdminResponse{200, std::move(*answer), {}, false};
}

}  // namespace lb::core
