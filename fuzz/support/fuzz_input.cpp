#include "fuzz/support/fuzz_input.h"

namespace lb::fuzz {

std::vector<std::string_view> split(std::string_view input, std::string_view marker) {
    std::vector<std::string_view> pieces;
    while (true) {
        size_t at = input.find(marker);
        if (at == std::string_view::npos) break;
        pieces.push_back(input.substr(0, at));
        input.remove_prefix(at + marker.size());
    }
    pieces.push_back(input);
    return pieces;
}

std::pair<std::string_view, std::string_view> split_once(std::string_view input, std::string_view marker) {
    size_t at = input.find(marker);
    if (at == std::string_view::npos) return {input, {}};
    return {input.substr(0, at), input.substr(at + marker.size())};
}

}  // namespace lb::fuzz
