#include "pool/algorithms/consistent_hash.h"

#include <algorithm>
#include <limits>

namespace lb::pool {
namespace {

constexpr BackendId kEmptySlot = std::numeric_limits<BackendId>::max();

// Slot probes for a key whose backend is skipped. Each probe lands on a backend about at random, so with half
// the backends skipped 32 probes all miss once in 4 billion picks; fall_back() covers that case exactly.
constexpr int kProbes = 32;

// Seeds that make a name's permutation offset, its permutation step and its rendezvous hash independent.
constexpr uint64_t kOffsetSeed = 0x6c62'2d6d'6167'6c65;  // "lb-maglev"
constexpr uint64_t kStepSeed = 0x9e37'79b9'7f4a'7c15;
constexpr uint64_t kKeySeed = 0x2545'f491'4f6c'dd1d;

// MurmurHash3's 64-bit finaliser: a bijection that mixes every input bit into every output bit.
uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccd;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53;
    x ^= x >> 33;
    return x;
}

// Reads bytes as little-endian whatever the host, so that two lb instances on different machines agree on
// where a key goes. Compilers turn this into one load on x86 and ARM.
uint64_t load_le(const char* bytes, size_t count) {
    uint64_t value = 0;
    for (size_t i = 0; i < count; ++i) value |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return value;
}

uint64_t hash_bytes(std::string_view bytes, uint64_t seed) {
    uint64_t h = seed ^ (bytes.size() * 0x9e3779b97f4a7c15);
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) h = mix(h ^ load_le(bytes.data() + i, 8));
    return mix(h ^ load_le(bytes.data() + i, bytes.size() - i) ^ 0x8000'0000'0000'0000);
}

}  // namespace

bool ConsistentHash::is_prime(uint64_t n) {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2) {
        if (n % d == 0) return false;
    }
    return true;
}

uint64_t ConsistentHash::next_prime(uint64_t n) {
    while (!is_prime(n)) ++n;
    return n;
}

uint64_t ConsistentHash::hash_key(std::string_view key) { return hash_bytes(key, kKeySeed); }

ConsistentHash::ConsistentHash(std::span<const Backend> backends, uint32_t table_size)
    : slot_counts_(backends.size(), 0) {
    size_t n = backends.size();
    name_hashes_.reserve(n);
    for (const Backend& backend : backends) name_hashes_.push_back(hash_bytes(backend.name, kOffsetSeed));
    if (n == 0) return;
    // At least 3 so that a step in [1, M-1] exists, at least n so that every backend can own a slot.
    uint64_t size = next_prime(std::max<uint64_t>({table_size, n, 3}));
    table_.assign(size, kEmptySlot);

    // Each backend's permutation of the slots: offset + j*step (mod size). `size` is prime, so any step in
    // [1, size-1] visits every slot once.
    struct Filler {
        uint64_t offset;
        uint64_t step;
        uint64_t next = 0;  // how far along its permutation it has got
        uint64_t weight;
        uint64_t target = 0;  // Envoy's target_weight_: when this filler's next turn is due
    };
    std::vector<Filler> fillers;
    fillers.reserve(n);
    uint64_t max_weight = 1;
    for (size_t i = 0; i < n; ++i) {
        uint64_t weight = std::max<uint32_t>(backends[i].weight, 1);
        max_weight = std::max(max_weight, weight);
        fillers.push_back(
            {name_hashes_[i] % size, hash_bytes(backends[i].name, kStepSeed) % (size - 1) + 1, 0, weight});
    }
    // Rounds in which every backend claims its next preferred free slot; a backend of weight w takes a turn in
    // w/max_weight of the rounds, so slot counts follow the weights.
    uint64_t filled = 0;
    for (uint64_t round = 1; filled < size; ++round) {
        for (size_t i = 0; i < n && filled < size; ++i) {
            Filler& filler = fillers[i];
            if (round * filler.weight < filler.target) continue;
            filler.target += max_weight;
            uint64_t slot = (filler.offset + filler.next * filler.step) % size;
            while (table_[slot] != kEmptySlot) {
                ++filler.next;
                slot = (filler.offset + filler.next * filler.step) % size;
            }
            table_[slot] = static_cast<BackendId>(i);
            ++filler.next;
            ++slot_counts_[i];
            ++filled;
        }
    }
}

std::optional<BackendId> ConsistentHash::pick(const PickContext& context, const BackendSet& skip) {
    if (table_.empty()) return std::nullopt;
    uint64_t key_hash =
        !context.hash_key.empty() || context.random == nullptr ? hash_key(context.hash_key) : context.random->next();
    uint64_t size = table_.size();
    uint64_t slot = key_hash % size;
    // Double hashing: the step depends on the key too, so keys sharing a first slot do not share their whole
    // probe sequence, and a skipped backend's keys spread over all the others.
    uint64_t step = mix(key_hash) % (size - 1) + 1;
    for (int probe = 0; probe < kProbes; ++probe) {
        BackendId id = table_[slot];
        if (!skip.contains(id)) return id;
        slot += step;
        if (slot >= size) slot -= size;
    }
    return fall_back(context, skip, key_hash);
}

std::optional<BackendId> ConsistentHash::fall_back(const PickContext& context, const BackendSet& skip,
                                                   uint64_t key_hash) const {
    // Rendezvous hashing over whatever is not skipped: still a function of the key and the names only, so
    // still the same on every shard. O(backends), reached only when nearly all backends are skipped.
    std::optional<BackendId> best;
    uint64_t best_score = 0;
    size_t n = std::min(context.backends.size(), name_hashes_.size());
    for (size_t i = 0; i < n; ++i) {
        auto id = static_cast<BackendId>(i);
        if (skip.contains(id)) continue;
        uint64_t score = mix(key_hash ^ name_hashes_[i]);
        if (!best || score > best_score) {
            best = id;
            best_score = score;
        }
    }
    return best;
}

}  // namespace lb::pool
