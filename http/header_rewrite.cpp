#include "http/header_rewrite.h"

#include <algorithm>

#include "http/header_rules.h"

namespace lb::http {

bool HeaderRewrite::drops(std::string_view name) const {
    auto named = [&](std::string_view other) { return equals_ignore_case(name, other); };
    return std::any_of(remove.begin(), remove.end(), named) ||
           std::any_of(set.begin(), set.end(), [&](const auto& field) { return named(field.first); });
}

void HeaderRewrite::append_fields(std::string& out) const {
    for (const Fields* fields : {&set, &add}) {
        for (const auto& [name, value] : *fields) {
            out.append(name).append(": ").append(value).append("\r\n");
        }
    }
}

bool is_framing_field(std::string_view name) {
    return is_hop_by_hop(name) || equals_ignore_case(name, "content-length");
}

}  // namespace lb::http
