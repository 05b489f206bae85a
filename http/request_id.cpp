#include "http/request_id.h"

#include "http/header_rules.h"

namespace lb::http {

uint64_t RequestIdGenerator::next64() {
    // splitmix64 (Steele, Lea, Flood 2014): a counter through a bijective mix, so no two calls in 2^64 repeat.
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

RequestId RequestIdGenerator::next() {
    constexpr char kHex[] = "0123456789abcdef";
    uint64_t high = next64();
    uint64_t low = next64();
    // RFC 9562 §5.4: version 4 in the top nibble of octet 6, variant 10 in the top bits of octet 8.
    high = (high & ~0xf000ull) | 0x4000ull;
    low = (low & ~(0xc000ull << 48)) | (0x8000ull << 48);
    RequestId id{};
    size_t at = 0;
    auto put = [&](uint64_t bits, int nibbles) {
        for (int i = nibbles - 1; i >= 0; --i) id[at++] = kHex[(bits >> (i * 4)) & 0xf];
    };
    put(high >> 32, 8);
    id[at++] = '-';
    put(high >> 16, 4);
    id[at++] = '-';
    put(high, 4);
    id[at++] = '-';
    put(low >> 48, 4);
    id[at++] = '-';
    put(low, 12);
    return id;
}

std::string_view find_request_id(const MessageHead& head, std::string_view header) {
    for (size_t i = 0; i < head.field_count(); ++i) {
        auto f = head.field(i);
        if (equals_ignore_case(f.name, header)) return f.value;
    }
    return {};
}

}  // namespace lb::http
