// How a fuzz input is cut into the parts a target plays. As in h2o's fuzz/driver.cc, a marker line splits the
// bytes one side writes into separate writes (read boundaries are part of the input); more markers split a
// proxied exchange into what the client sends and what the backend answers, one answer per request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace lb::fuzz {

// Between two writes (or two feeds) of the same side.
inline constexpr std::string_view kWriteMarker = "\n--MARK--\n";
// Between the client's bytes and the backend's (proxy_exchange).
inline constexpr std::string_view kBackendMarker = "\n--BACKEND--\n";
// Between the backend's answers to successive requests (proxy_exchange), or successive exchanges on one
// backend connection (response_parser).
inline constexpr std::string_view kNextMarker = "\n--NEXT--\n";

// At the start of a backend answer (proxy_exchange): write it as soon as the request's head arrives, before
// its body is complete (an early response).
inline constexpr std::string_view kEarlyMarker = "--EARLY--\n";

inline std::string_view as_text(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// `input` cut at every `marker` (the markers themselves dropped). An input without a marker is one piece; an
// empty input is one empty piece.
std::vector<std::string_view> split(std::string_view input, std::string_view marker);

// `input` up to the first `marker`, and everything after it (empty when there is no marker).
std::pair<std::string_view, std::string_view> split_once(std::string_view input, std::string_view marker);

}  // namespace lb::fuzz
