// demo_backend_main: the lb-demo-backend command line.
#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <exception>
#include <optional>
#include <string_view>

#include "demo/demo_backend.h"

namespace lb::demo {

namespace {

constexpr const char* kUsage =
    "usage: lb-demo-backend --port N --id ID [--host ADDR] [--threads N] [--silent]\n"
    "                       [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
    "\n"
    "A demo HTTP/1.1 backend for lb. Every response carries X-Backend-Id, X-Conn-Id and X-Conn-Request;\n"
    "the default body is \"<id>\\n\", GET /health answers \"ok\\n\", GET /stats the backend's counters as\n"
    "JSON. Query parameters (combine freely; see demo/request_controls.h):\n"
    "  status=N (0..999)  delay_ms=N  bytes=N  chunked=1  echo=headers|body  close=1\n"
    "  misbehaving: drop=1  drop_if_reused=1  mid_close=1  reset_mid_body=1  close_delimited=1\n"
    "  invalid=1  silent=1  read_pause_ms=N  bogus_body=N  stray=N  stray_delay_ms=M  interim_body=1\n"
    "\n"
    "  --port N      port to listen on (0: ephemeral, printed)       default 0\n"
    "  --id ID       backend id                                       default b1\n"
    "  --host ADDR   address to bind                                  default 127.0.0.1\n"
    "  --threads N   event loops sharing the port via SO_REUSEPORT    default 1\n"
    "  --silent      accept connections, never read nor answer them\n"
    "  --tls-cert FILE       serve HTTPS with this PEM certificate (leaf first, then its chain)\n"
    "  --tls-key FILE        ... and this PEM key\n"
    "  --tls-client-ca FILE  require a client certificate that chains to these PEM CA certificates\n"
    "                        (HTTPS responses carry X-TLS-Version, X-TLS-SNI and X-TLS-Client)\n"
    "  --help        this text\n"
    "\n"
    "Prints \"lb-demo-backend <id> listening on <host>:<port>\" once accepting; SIGINT/SIGTERM stop it.\n";

template <typename T>
std::optional<T> parse_number(std::string_view text, T min, T max) {
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
        return std::nullopt;
    }
    return value;
}

int usage_error(std::string_view message) {
    std::fprintf(stderr, "lb-demo-backend: %.*s\n\n%s", static_cast<int>(message.size()), message.data(), kUsage);
    return 2;
}

}  // namespace

int demo_backend_main(int argc, char** argv) {
    DemoBackendOptions options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (arg == "--silent") {
            options.silent = true;
            continue;
        }
        std::string_view value;
        if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return usage_error(std::string(arg) + " needs a value");
        }
        if (arg == "--port") {
            auto port = parse_number<uint16_t>(value, 0, 65535);
            if (!port) return usage_error("bad --port '" + std::string(value) + "'");
            options.port = *port;
        } else if (arg == "--id") {
            if (value.empty()) return usage_error("empty --id");
            options.id = value;
        } else if (arg == "--host") {
            options.host = value;
        } else if (arg == "--tls-cert" || arg == "--tls-key" || arg == "--tls-client-ca") {
            if (value.empty()) return usage_error("empty " + std::string(arg));
            std::string& file = arg == "--tls-cert"  ? options.tls_cert
                                : arg == "--tls-key" ? options.tls_key
                                                     : options.tls_client_ca;
            file = value;
        } else if (arg == "--threads") {
            auto threads = parse_number<unsigned>(value, 1, 256);
            if (!threads) return usage_error("bad --threads '" + std::string(value) + "' (1..256)");
            options.threads = *threads;
        } else {
            return usage_error("unknown option " + std::string(arg));
        }
    }

    if (options.tls_cert.empty() != options.tls_key.empty()) {
        return usage_error("--tls-cert and --tls-key go together");
    }
    if (!options.tls_client_ca.empty() && options.tls_cert.empty()) {
        return usage_error("--tls-client-ca needs --tls-cert and --tls-key");
    }

    // Block the stop signals before any thread starts, so every thread inherits the mask and sigwait() below is
    // the only place they are seen.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    DemoBackend backend(options);
    try {
        backend.start();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lb-demo-backend: cannot start: %s\n", e.what());
        return 1;
    }
    std::printf("lb-demo-backend %s listening on %s:%u\n", options.id.c_str(), options.host.c_str(),
                static_cast<unsigned>(backend.port()));
    std::fflush(stdout);

    int signal_number = 0;
    while (sigwait(&stop_signals, &signal_number) != 0) {
    }
    backend.stop();
    return 0;
}

}  // namespace lb::demo
