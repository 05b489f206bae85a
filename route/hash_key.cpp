#include "route/hash_key.h"

#include "http/header_rules.h"

namespace lb::route {

namespace {

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or empty.
std::string_view cookie_value(const http::MessageHead& request, std::string_view name) {
    for (size_t i = 0; i < request.field_count(); ++i) {
        auto field = request.field(i);
        if (!http::equals_ignore_case(field.name, "cookie")) continue;
        std::string_view rest = field.value;
        while (!rest.empty()) {
            size_t semicolon = rest.find(';');
            std::string_view pair = http::trim_ows(rest.substr(0, semicolon));
            size_t equals = pair.find('=');
            if (equals != std::string_view::npos && pair.substr(0, equals) == name) return pair.substr(equals + 1);
            if (semicolon == std::string_view::npos) break;
            rest.remove_prefix(semicolon + 1);
        }
    }
    return {};
}

}  // namespace

std::string_view request_hash_key(const http::MessageHead& request, const pool::ConsistentHashOptions& options,
                                  std::string_view client_address) {
    switch (options.key_source) {
        case pool::HashKeySource::client_ip:
            return client_address;
        case pool::HashKeySource::header: {
            std::string_view value;
            request.find(options.key_name, value);
            return value;
        }
        case pool::HashKeySource::cookie:
            return cookie_value(request, options.key_name);
        case pool::HashKeySource::path: {
            std::string_view target = request.target();
            return target.substr(0, target.find('?'));
        }
    }
    return {};
}

}  // namespace lb::route
