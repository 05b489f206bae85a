#include "fuzz/support/forwarding_rules.h"

#include <fmt/format.h>
#include <strings.h>

#include <array>

#include "fuzz/support/violation.h"

namespace lb::fuzz {

namespace {

bool same_name(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool connection_names(const WireMessage& message, std::string_view name) {
    for (std::string_view list : message.values("connection")) {
        while (true) {
            size_t comma = list.find(',');
            std::string_view token = trim(list.substr(0, comma));
            if (!token.empty() && same_name(token, name)) return true;
            if (comma == std::string_view::npos) break;
            list.remove_prefix(comma + 1);
        }
    }
    return false;
}

std::string describe(const std::vector<WireField>& fields) {
    std::string out;
    for (const auto& f : fields) out += fmt::format("[{}: {}]", escaped(f.name, 60), escaped(f.value, 60));
    return out;
}

bool same_fields(const std::vector<WireField>& a, const std::vector<WireField>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].name != b[i].name || a[i].value != b[i].value) return false;
    }
    return true;
}

// lb's own framing and connection fields, which it writes whatever the other hop sent.
const std::vector<std::string_view> kFramingFields = {"connection", "transfer-encoding", "content-length"};

// RFC 9110 §5.1: a field name is a token, at least one character. llhttp 8.1 accepts ": value" lines.
std::string empty_field_name(const WireMessage& message) {
    for (const auto& f : message.fields) {
        if (f.name.empty()) return fmt::format("a field with an empty name was forwarded: ': {}'", escaped(f.value));
    }
    return {};
}

}  // namespace

bool is_hop_by_hop_field(std::string_view name) {
    static constexpr std::array<std::string_view, 7> kNames = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"};
    for (auto n : kNames) {
        if (same_name(n, name)) return true;
    }
    return false;
}

std::vector<WireField> end_to_end_fields(const WireMessage& message,
                                         const std::vector<std::string_view>& also_dropped) {
    std::vector<WireField> out;
    for (const auto& f : message.fields) {
        // Connection names hop-by-hop fields, but never Host or the X-Forwarded-* fields lb sets (lb's rule).
        bool protected_field =
            same_name(f.name, "host") || same_name(f.name, "x-forwarded-for") || same_name(f.name, "x-forwarded-proto");
        if (is_hop_by_hop_field(f.name) || same_name(f.name, "content-length") ||
            (!protected_field && connection_names(message, f.name))) {
            continue;
        }
        bool dropped = false;
        for (auto d : also_dropped) dropped = dropped || same_name(f.name, d);
        if (!dropped) out.push_back(f);
    }
    return out;
}

std::vector<WireField> fields_except(const WireMessage& message, const std::vector<std::string_view>& names) {
    std::vector<WireField> out;
    for (const auto& f : message.fields) {
        bool dropped = false;
        for (auto n : names) dropped = dropped || same_name(f.name, n);
        if (!dropped) out.push_back(f);
    }
    return out;
}

std::string upgrade_passed_on(const WireMessage& client) {
    if (client.version_major != 1 || client.version_minor != 1) return {};
    if (client.chunked || (client.has_content_length && client.content_length > 0)) return {};
    if (client.count("upgrade") != 1 || !connection_names(client, "upgrade")) return {};
    return std::string(trim(client.find("upgrade")->value));
}

std::string check_forwarded_request(const WireMessage& client, const WireMessage& upstream,
                                    std::string_view client_address) {
    if (upstream.method != client.method || upstream.target != client.target) {
        return fmt::format("request line changed: client {} {}, upstream {} {}", llhttp_method_name(client.method),
                           escaped(client.target, 100), llhttp_method_name(upstream.method),
                           escaped(upstream.target, 100));
    }
    if (upstream.version_major != 1 || upstream.version_minor != 1) {
        return fmt::format("upstream request is HTTP/{}.{}", upstream.version_major, upstream.version_minor);
    }
    // RFC 9112 §3.2: every HTTP/1.1 request carries exactly one Host; lb passes the client's unchanged, and gives
    // an HTTP/1.0 request without one the backend's.
    const WireField* client_host = client.find("host");
    if (upstream.count("host") != 1) {
        return fmt::format("upstream HTTP/1.1 request has {} Host fields (client sent {})", upstream.count("host"),
                           client.count("host"));
    }
    if (!client_host && upstream.find("host")->value.empty()) return "the Host lb added is empty";
    if (client_host && upstream.find("host")->value != client_host->value) {
        return fmt::format("Host changed from '{}' to '{}'", escaped(client_host->value, 100),
                           escaped(upstream.find("host")->value, 100));
    }
    if (std::string why = empty_field_name(upstream); !why.empty()) return why;
    // X-Request-Id: at most one goes upstream (none where the caller writes the head without one), the client's
    // own when it sent a non-empty one (lb's rule), else one lb made.
    const WireField* client_id = client.find("x-request-id");
    if (upstream.count("x-request-id") > 1) {
        return fmt::format("upstream request has {} X-Request-Id fields", upstream.count("x-request-id"));
    }
    if (upstream.count("x-request-id") == 1 && client.count("x-request-id") == 1 && !client_id->value.empty() &&
        upstream.find("x-request-id")->value != client_id->value) {
        return fmt::format("X-Request-Id changed from '{}' to '{}'", escaped(client_id->value, 100),
                           escaped(upstream.find("x-request-id")->value, 100));
    }
    auto expected = end_to_end_fields(client, {"x-forwarded-for", "x-forwarded-proto", "x-request-id"});
    const std::string upgrade = upgrade_passed_on(client);
    auto forwarded = fields_except(
        upstream, {"connection", "transfer-encoding", "content-length", "x-forwarded-for", "x-forwarded-proto",
                   "x-request-id", client_host ? "" : "host", upgrade.empty() ? "" : "upgrade"});
    if (!upgrade.empty()) {
        auto passed = upstream.values("upgrade");
        auto connection = upstream.values("connection");
        if (passed.size() != 1 || passed[0] != upgrade || connection.size() != 1 || connection[0] != "upgrade") {
            return fmt::format("the client's Upgrade '{}' was not passed on as Upgrade and Connection: upgrade: {}",
                               escaped(upgrade), describe(upstream.fields));
        }
    }
    // lb's own fields (Connection: close, the framing, X-Forwarded-*, X-Request-Id) left aside, whatever else
    // differs was added, lost or reordered; a hop-by-hop field that slipped through shows here too.
    if (!same_fields(expected, forwarded)) {
        return fmt::format("end-to-end fields changed: client {} upstream {}", describe(expected), describe(forwarded));
    }
    for (const auto& f : upstream.fields) {
        if (!is_hop_by_hop_field(f.name)) continue;
        bool own = (same_name(f.name, "connection") && f.value == (upgrade.empty() ? "close" : "upgrade")) ||
                   (same_name(f.name, "transfer-encoding") && f.value == "chunked") ||
                   (same_name(f.name, "upgrade") && !upgrade.empty());
        if (!own) return fmt::format("hop-by-hop field forwarded: {}: {}", escaped(f.name), escaped(f.value));
    }
    if (upstream.count("connection") > 1 || upstream.count("transfer-encoding") > 1 ||
        upstream.count("content-length") > 1) {
        return fmt::format("repeated framing fields upstream: {}", describe(upstream.fields));
    }
    if (upstream.chunked != client.chunked) {
        return fmt::format("client body chunked={}, upstream chunked={}", client.chunked, upstream.chunked);
    }
    if (!client.chunked && (upstream.has_content_length != client.has_content_length ||
                            upstream.content_length != client.content_length)) {
        return fmt::format("Content-Length changed: client {}:{} upstream {}:{}", client.has_content_length,
                           client.content_length, upstream.has_content_length, upstream.content_length);
    }
    if (client.chunked && upstream.has_content_length) return "Content-Length next to chunked upstream";
    // Every received element in order, empty ones dropped, then this client.
    std::string xff;
    for (auto v : client.values("x-forwarded-for")) {
        for (std::string_view rest = v; !rest.empty();) {
            size_t comma = rest.find(',');
            std::string_view element = rest.substr(0, comma);
            while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) element.remove_prefix(1);
            while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) element.remove_suffix(1);
            if (!element.empty()) xff += fmt::format("{}, ", element);
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    xff += client_address;
    auto upstream_xff = upstream.values("x-forwarded-for");
    if (upstream_xff.size() != 1 || upstream_xff[0] != xff) {
        return fmt::format("X-Forwarded-For: expected '{}', got {}", escaped(xff), describe(upstream.fields));
    }
    auto proto = upstream.values("x-forwarded-proto");
    if (proto.size() != 1 || proto[0] != "http") return "X-Forwarded-Proto is not exactly one 'http'";
    return {};
}

std::string check_client_response(const WireMessage& response) {
    if (response.version_major != 1 || response.version_minor != 1) {
        return fmt::format("response to the client is HTTP/{}.{}", response.version_major, response.version_minor);
    }
    const bool switching = response.status == 101;
    if (switching && (response.count("upgrade") != 1 || trim(response.find("upgrade")->value).empty() ||
                      response.values("connection") != std::vector<std::string_view>{"upgrade"})) {
        return fmt::format("a 101 without exactly one Upgrade and Connection: upgrade: {}", describe(response.fields));
    }
    if (std::string why = empty_field_name(response); !why.empty()) return why;
    for (const auto& f : response.fields) {
        if (!is_hop_by_hop_field(f.name)) continue;
        bool own = (same_name(f.name, "connection") &&
                    (switching ? f.value == "upgrade" : (f.value == "close" || f.value == "keep-alive"))) ||
                   (same_name(f.name, "transfer-encoding") && f.value == "chunked") ||
                   (switching && same_name(f.name, "upgrade"));
        if (!own) return fmt::format("hop-by-hop field relayed: {}: {}", escaped(f.name), escaped(f.value));
    }
    if (response.count("connection") > 1 || response.count("transfer-encoding") > 1) {
        return fmt::format("repeated framing fields to the client: {}", describe(response.fields));
    }
    return {};
}

std::string check_relayed_response(const WireMessage& backend, const WireMessage& relayed) {
    if (backend.status != relayed.status || backend.reason != relayed.reason) {
        return fmt::format("status line changed: backend {} '{}', client {} '{}'", backend.status,
                           escaped(backend.reason), relayed.status, escaped(relayed.reason));
    }
    auto expected = end_to_end_fields(backend, {});
    auto got = fields_except(relayed, kFramingFields);
    if (!same_fields(expected, got)) {
        return fmt::format("end-to-end fields changed: backend {} client {}", describe(expected), describe(got));
    }
    return check_client_response(relayed);
}

}  // namespace lb::fuzz
