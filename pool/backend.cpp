#include "pool/backend.h"

namespace lb::pool {

void BackendSet::insert(BackendId id) {
    if (contains(id)) return;
    if (bits_.empty() && size_ < kInline) {
        inline_[size_++] = id;
        return;
    }
    if (bits_.empty()) {
        for (size_t i = 0; i < size_; ++i) {
            BackendId held = inline_[i];
            if (held / 64 >= bits_.size()) bits_.resize(held / 64 + 1);
            bits_[held / 64] |= uint64_t{1} << (held % 64);
        }
    }
    if (id / 64 >= bits_.size()) bits_.resize(id / 64 + 1);
    bits_[id / 64] |= uint64_t{1} << (id % 64);
    ++size_;
}

void BackendSet::insert_all(const BackendSet& other) {
    other.for_each([this](BackendId id) { insert(id); });
}

void BackendSet::clear() {
    bits_.clear();  // keeps its capacity for the next time the set grows
    size_ = 0;
}

}  // namespace lb::pool
