#include "core/admin/tls_metrics.h"

#include <fmt/format.h>

#include "core/shard/shard.h"

namespace lb::core {

namespace {

uint64_t sum(const std::vector<const TlsListenerCounters*>& per_shard,
             const std::function<const std::atomic<uint64_t>&(const TlsListenerCounters&)>& field) {
    uint64_t total = 0;
    for (const auto* c : per_shard) total += field(*c).load(std::memory_order_relaxed);
    return total;
}

// Per TLS backend, summed over the shards: handshakes by result and the resumed ones.
std::vector<metrics::ExtraFamily> backend_tls_families(const Config& config,
                                                       const std::vector<std::unique_ptr<Shard>>& shards) {
    using metrics::ExtraFamily;
    ExtraFamily handshakes{"lb_backend_tls_handshakes_total",
                           ExtraFamily::Type::counter,
                           "TLS handshakes towards a backend by result: success, unknown_ca (its certificate does not "
                           "verify), no_shared_cipher, timeout, other. Health checks are counted apart.",
                           {}};
    ExtraFamily resumed{"lb_backend_tls_resumed_handshakes_total",
                        ExtraFamily::Type::counter,
                        "Successful TLS handshakes towards a backend that resumed the session of an earlier "
                        "connection.",
                        {}};
    for (size_t b = 0; b < config.backends.size(); ++b) {
        if (!config.backends[b].tls.enabled) continue;
        std::string backend = fmt::format("backend=\"{}\"", metrics::escape_label_value(config.backends[b].address));
        for (size_t r = 0; r < static_cast<size_t>(net::HandshakeResult::count); ++r) {
            auto result = static_cast<net::HandshakeResult>(r);
            if (result == net::HandshakeResult::plain_http) continue;  // a listener's only
            uint64_t n = 0;
            for (const auto& shard : shards) n += shard->tls_backend_counters().handshakes(b, result);
            handshakes.samples.emplace_back(fmt::format("{},result=\"{}\"", backend, net::to_string(result)),
                                            static_cast<int64_t>(n));
        }
        uint64_t n = 0;
        for (const auto& shard : shards) n += shard->tls_backend_counters().resumed(b);
        resumed.samples.emplace_back(backend, static_cast<int64_t>(n));
    }
    if (handshakes.samples.empty()) return {};
    return {handshakes, resumed};
}

}  // namespace

std::vector<metrics::ExtraFamily> tls_metric_families(const Config& config,
                                                      const std::vector<std::unique_ptr<Shard>>& shards) {
    using metrics::ExtraFamily;
    ExtraFamily handshakes{"lb_tls_handshakes_total",
                           ExtraFamily::Type::counter,
                           "TLS handshakes on a listener by result: success, no_shared_cipher, unknown_ca "
                           "(a client certificate that does not verify), no_client_certificate (none given where "
                           "verify_client is required), timeout, plain_http, other.",
                           {}};
    ExtraFamily resumed{"lb_tls_resumed_handshakes_total",
                        ExtraFamily::Type::counter,
                        "Successful TLS handshakes that resumed a session (ticket or session cache).",
                        {}};
    ExtraFamily versions{
        "lb_tls_versions_total", ExtraFamily::Type::counter, "Successful TLS handshakes by protocol version.", {}};
    ExtraFamily ciphers{"lb_tls_ciphers_total",
                        ExtraFamily::Type::counter,
                        "Successful TLS handshakes by cipher (ones lb does not offer by default count as other).",
                        {}};
    ExtraFamily expiry{"lb_tls_certificate_expiry_timestamp_seconds",
                       ExtraFamily::Type::gauge,
                       "When each certificate expires (its notAfter, Unix time): alert before it comes.",
                       {}};
    if (shards.empty()) return {};
    for (size_t l = 0; l < config.listeners.size(); ++l) {
        if (!config.listeners[l].tls) continue;
        std::vector<const TlsListenerCounters*> per_shard;
        for (const auto& shard : shards) per_shard.push_back(shard->tls_counters(l));
        std::string listener =
            fmt::format("listener=\"{}\"", metrics::escape_label_value(config.listeners[l].address.to_string()));
        for (size_t r = 0; r < static_cast<size_t>(net::HandshakeResult::count); ++r) {
            uint64_t n = sum(
                per_shard, [r](const TlsListenerCounters& c) -> const auto& { return c.handshakes[r]; });
            handshakes.samples.emplace_back(
                fmt::format("{},result=\"{}\"", listener, net::to_string(static_cast<net::HandshakeResult>(r))),
                static_cast<int64_t>(n));
        }
        resumed.samples.emplace_back(
            listener, static_cast<int64_t>(sum(
                          per_shard, [](const TlsListenerCounters& c) -> const auto& { return c.resumed; })));
        for (size_t v = 0; v < kTlsVersionNames.size(); ++v) {
            uint64_t n = sum(
                per_shard, [v](const TlsListenerCounters& c) -> const auto& { return c.versions[v]; });
            versions.samples.emplace_back(fmt::format("{},version=\"{}\"", listener, kTlsVersionNames[v]),
                                          static_cast<int64_t>(n));
        }
        for (size_t k = 0; k <= kTlsCipherNames.size(); ++k) {
            uint64_t n = sum(
                per_shard, [k](const TlsListenerCounters& c) -> const auto& { return c.ciphers[k]; });
            if (n == 0) continue;  // only the ciphers seen: up to 13 series per listener
            std::string_view name = k < kTlsCipherNames.size() ? kTlsCipherNames[k] : "other";
            ciphers.samples.emplace_back(fmt::format("{},cipher=\"{}\"", listener, name), static_cast<int64_t>(n));
        }
        for (const auto& cert : shards.front()->tls_listener(l)->certificates()) {
            std::string names;
            for (const auto& n : cert.names) names += (names.empty() ? "" : ",") + n;
            expiry.samples.emplace_back(
                fmt::format("{},certificate=\"{}\",names=\"{}\"", listener, metrics::escape_label_value(cert.file),
                            metrics::escape_label_value(names)),
                cert.not_after_unix);
        }
    }
    std::vector<ExtraFamily> families;
    if (!handshakes.samples.empty()) families = {handshakes, resumed, versions, ciphers, expiry};
    for (ExtraFamily& family : backend_tls_families(config, shards)) families.push_back(std::move(family));
    return families;
}

}  // namespace lb::core
