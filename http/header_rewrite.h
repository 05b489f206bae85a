// A route's changes to the header fields of the requests it forwards or the responses it returns
// (`request_headers:` / `response_headers:` with `set`, `add` and `remove`, as nginx's proxy_set_header and
// Envoy's request_headers_to_add/remove do). Pure.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lb::http {

struct HeaderRewrite {
    using Fields = std::vector<std::pair<std::string, std::string>>;
    Fields set;                       // replaces every received field of the name
    Fields add;                       // added after the received fields of the name, which stay
    std::vector<std::string> remove;  // every received field of the name is dropped
    bool operator==(const HeaderRewrite&) const = default;

    bool empty() const { return set.empty() && add.empty() && remove.empty(); }
    // Whether a received field of this name is left out: `remove` or `set` names it.
    bool drops(std::string_view name) const;
    // The fields `set` and `add` put in, as header lines.
    void append_fields(std::string& out) const;
};

// Names a rewrite may not touch, for the config to refuse: the fields that frame a message or a connection
// (Content-Length, Transfer-Encoding, Connection and the other hop-by-hop fields). lb writes those itself.
bool is_framing_field(std::string_view name);

}  // namespace lb::http
