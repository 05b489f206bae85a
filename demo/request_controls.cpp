#include "demo/request_controls.h"

#include <charconv>

namespace lb::demo {

namespace {

std::optional<uint64_t> parse_number(std::string_view text, uint64_t max) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > max) {
        return std::nullopt;
    }
    return value;
}

bool parse_flag(std::string_view text) { return text == "1" || text == "true"; }

std::string_view path_of(std::string_view target) {
    if (!target.empty() && target.front() != '/') {
        // Absolute form: skip "scheme://authority".
        auto scheme_end = target.find("://");
        if (scheme_end == std::string_view::npos) return {};
        auto path_start = target.find_first_of("/?", scheme_end + 3);
        if (path_start == std::string_view::npos) return "/";
        target.remove_prefix(path_start);
    }
    return target.substr(0, target.find_first_of("?#"));
}

void apply(RequestControls& controls, std::string_view key, std::string_view value) {
    if (key == "status") {
        if (auto n = parse_number(value, kMaxStatus)) controls.status = static_cast<int>(*n);
    } else if (key == "delay_ms") {
        if (auto n = parse_number(value, kMaxDelayMs)) controls.delay_ms = *n;
    } else if (key == "bytes") {
        if (auto n = parse_number(value, kMaxBytes)) controls.bytes = *n;
    } else if (key == "chunked") {
        controls.chunked = parse_flag(value);
    } else if (key == "echo") {
        controls.echo = value == "headers" ? EchoMode::headers : value == "body" ? EchoMode::body : EchoMode::none;
    } else if (key == "drop") {
        controls.drop = parse_flag(value);
    } else if (key == "drop_if_reused") {
        controls.drop_if_reused = parse_flag(value);
    } else if (key == "close") {
        controls.close = parse_flag(value);
    } else if (key == "mid_close") {
        controls.mid_close = parse_flag(value);
    } else if (key == "reset_mid_body") {
        controls.reset_mid_body = parse_flag(value);
    } else if (key == "close_delimited") {
        controls.close_delimited = parse_flag(value);
    } else if (key == "invalid") {
        controls.invalid = parse_flag(value);
    } else if (key == "silent") {
        controls.silent = parse_flag(value);
    } else if (key == "read_pause_ms") {
        if (auto n = parse_number(value, kMaxDelayMs)) controls.read_pause_ms = *n;
    } else if (key == "bogus_body") {
        if (auto n = parse_number(value, kMaxBytes)) controls.bogus_body = *n;
    } else if (key == "stray") {
        if (auto n = parse_number(value, kMaxStray)) controls.stray = *n;
    } else if (key == "stray_delay_ms") {
        if (auto n = parse_number(value, kMaxDelayMs)) controls.stray_delay_ms = *n;
    } else if (key == "interim_body") {
        controls.interim_body = parse_flag(value);
    } else if (key == "ws_flood") {
        if (auto n = parse_number(value, kMaxBytes)) controls.ws_flood = *n;
    } else if (key == "ws_close_after") {
        if (auto n = parse_number(value, kMaxBytes)) controls.ws_close_after = *n;
    }
}

}  // namespace

RequestControls parse_request_controls(std::string_view target) {
    RequestControls controls;
    const std::string_view path = path_of(target);
    controls.health = path == "/health";
    controls.stats = path == "/stats";
    controls.websocket = path == "/ws";
    auto query_start = target.find('?');
    if (query_start == std::string_view::npos) return controls;
    std::string_view query = target.substr(query_start + 1);
    query = query.substr(0, query.find('#'));
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        apply(controls, pair.substr(0, eq), pair.substr(eq + 1));
    }
    return controls;
}

std::string_view reason_phrase(int status) {
    switch (status) {
        case 100:
            return "Continue";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 413:
            return "Content Too Large";
        case 414:
            return "URI Too Long";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "Unknown";
    }
}

bool status_forbids_body(int status) { return status / 100 == 1 || status == 204 || status == 304; }

}  // namespace lb::demo
