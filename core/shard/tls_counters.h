// A TLS listener's handshake counts in one shard: written by the shard only, read by scrapes (relaxed atomics,
// one writer, as in metrics/stats.h). Label sets are closed, so a client cannot mint series: results are
// net::HandshakeResult, versions TLS 1.2 and 1.3, ciphers the ones lb offers by default (others count as "other").
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "net/tls_context.h"

namespace lb::core {

inline constexpr std::array<std::string_view, 12> kTlsCipherNames = {
    "TLS_AES_128_GCM_SHA256",        "TLS_AES_256_GCM_SHA384",        "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",   "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",   "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",     "DHE-RSA-AES256-GCM-SHA384",     "DHE-RSA-CHACHA20-POLY1305"};
inline constexpr std::array<std::string_view, 2> kTlsVersionNames = {"TLSv1.2", "TLSv1.3"};

struct TlsListenerCounters {
    using Count = std::atomic<uint64_t>;
    std::array<Count, static_cast<size_t>(net::HandshakeResult::count)> handshakes{};
    Count resumed{0};
    std::array<Count, kTlsVersionNames.size()> versions{};
    std::array<Count, kTlsCipherNames.size() + 1> ciphers{};  // the last: any other

    void record(const net::HandshakeReport& report) {
        add(handshakes[static_cast<size_t>(report.result)]);
        if (report.result != net::HandshakeResult::success) return;
        if (report.resumed) add(resumed);
        add(versions[report.version == kTlsVersionNames[1] ? 1 : 0]);
        size_t cipher = 0;
        while (cipher < kTlsCipherNames.size() && kTlsCipherNames[cipher] != report.cipher) ++cipher;
        add(ciphers[cipher]);
    }

  private:
    static void add(Count& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
};

// The handshakes of one shard's connections to its TLS backends, per backend: by result (a backend certificate that
// does not verify counts as unknown_ca), and the resumed ones. Bounded: backends × results. The health thread's
// check connections are not counted here: a check's own result says how it went.
class TlsBackendCounters final : public net::HandshakeObserver {
  public:
    explicit TlsBackendCounters(size_t backends) : per_backend_(std::make_unique<PerBackend[]>(backends)) {}

    // Shard only (index: the backend's).
    void on_handshake(size_t backend, const net::HandshakeReport& report) override {
        PerBackend& b = per_backend_[backend];
        add(b.handshakes[static_cast<size_t>(report.result)]);
        if (report.result == net::HandshakeResult::success && report.resumed) add(b.resumed);
    }

    // Any thread.
    uint64_t handshakes(size_t backend, net::HandshakeResult result) const {
        return per_backend_[backend].handshakes[static_cast<size_t>(result)].load(std::memory_order_relaxed);
    }
    uint64_t resumed(size_t backend) const { return per_backend_[backend].resumed.load(std::memory_order_relaxed); }

  private:
    using Count = std::atomic<uint64_t>;
    struct PerBackend {
        std::array<Count, static_cast<size_t>(net::HandshakeResult::count)> handshakes{};
        Count resumed{0};
    };
    static void add(Count& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

    std::unique_ptr<PerBackend[]> per_backend_;
};

}  // namespace lb::core
