#include "net/tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>

namespace lb::net {

namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
// Only what lb speaks: a client that offers http/1.1 gets it, one that offers only others gets no ALPN.
int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
            void*) {
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, kAlpnHttp11, sizeof kAlpnHttp11, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

std::string openssl_error() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "unknown error";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + openssl_error()); }

int min_version(TlsVersion v) { return v == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

std::vector<std::string> certificate_names(X509* cert) {
    std::vector<std::string> names;
    auto* alt = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (alt) {
        for (int i = 0; i < sk_GENERAL_NAME_num(alt); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt, i);
            if (name->type != GEN_DNS) continue;
            const unsigned char* data = ASN1_STRING_get0_data(name->d.dNSName);
            names.emplace_back(reinterpret_cast<const char*>(data), ASN1_STRING_length(name->d.dNSName));
        }
        GENERAL_NAMES_free(alt);
    }
    if (names.empty()) {
        char cn[256] = "";
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
            names.emplace_back(cn);
        }
    }
    for (auto& n : names)
        std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
    return names;
}

int64_t not_after(X509* cert) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
    return static_cast<int64_t>(timegm(&tm));
}

// Exact names first, then "*.example.com" for exactly one more label.
bool name_matches(std::string_view pattern, std::string_view name) {
    if (pattern == name) return true;
    if (pattern.size() < 3 || pattern.substr(0, 2) != "*.") return false;
    size_t dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 && name.substr(dot) == pattern.substr(1);
}

std::vector<unsigned char> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- session tickets ----

struct TicketKeys {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char mac[32];
};

TicketKeys derive_keys(const TicketSecret& secret, uint64_t epoch) {
    auto derive = [&](const char* label, unsigned char* out, size_t length) {
        unsigned char input[32] = {};
        size_t label_length = std::strlen(label);
        std::memcpy(input, label, label_length);
        for (int i = 0; i < 8; ++i) input[label_length + i] = static_cast<unsigned char>(epoch >> (56 - 8 * i));
        unsigned char digest[32];
        size_t digest_length = 0;
        EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.bytes().data(), secret.bytes().size(), input,
                  label_length + 8, digest, sizeof digest, &digest_length);
        std::memcpy(out, digest, length);
    };
    TicketKeys keys;
    derive("lb-ticket-name", keys.name, sizeof keys.name);
    derive("lb-ticket-aes", keys.aes, sizeof keys.aes);
    derive("lb-ticket-mac", keys.mac, sizeof keys.mac);
    return keys;
}

// Each worker thread derives an epoch's keys once.
const TicketKeys& keys_for(const TicketSecret& secret, uint64_t epoch) {
    struct Cached {
        const TicketSecret* secret = nullptr;
        uint64_t epoch = 0;
        TicketKeys keys;
    };
    thread_local Cached cache[2];
    Cached& slot = cache[epoch % 2];
    if (slot.secret != &secret || slot.epoch != epoch) slot = {&secret, epoch, derive_keys(secret, epoch)};
    return slot.keys;
}

int on_ticket_key(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                  int encrypt) {
    auto* secret = static_cast<const TicketSecret*>(SSL_get_ex_data(ssl, ssl_ex_index()));
    if (!secret) return 0;
    uint64_t epoch = static_cast<uint64_t>(std::time(nullptr)) / static_cast<uint64_t>(secret->rotation().count());
    auto set_mac = [&](const TicketKeys& keys) {
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
                               OSSL_PARAM_construct_end()};
        return EVP_MAC_init(mac, keys.mac, sizeof keys.mac, params) == 1;
    };
    if (encrypt) {
        const TicketKeys& keys = keys_for(*secret, epoch);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) return -1;
        std::memcpy(key_name, keys.name, sizeof keys.name);
        if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys.aes, iv) != 1 || !set_mac(keys)) return -1;
        return 1;
    }
    // This epoch's key, or the previous one's: then the ticket is good but should be renewed (return 2).
    for (uint64_t age = 0; age < 2 && age <= epoch; ++age) {
        const TicketKeys& keys = keys_for(*secret, epoch - age);
        if (std::memcmp(key_name, keys.name, sizeof keys.name) != 0) continue;
        if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, keys.aes, iv) != 1 || !set_mac(keys)) return -1;
        return age == 0 ? 1 : 2;
    }
    return 0;  // unknown key: a full handshake
}

// ---- OCSP stapling ----

int on_status_request(SSL* ssl, void* arg) {
    const auto* response = static_cast<const std::vector<unsigned char>*>(arg);
    if (!response || response->empty()) return SSL_TLSEXT_ERR_NOACK;
    auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(response->size()));  // OpenSSL frees it
    if (!copy) return SSL_TLSEXT_ERR_NOACK;
    std::memcpy(copy, response->data(), response->size());
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(response->size()));
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::string_view to_string(HandshakeResult result) {
    switch (result) {
        case HandshakeResult::success:
            return "success";
        case HandshakeResult::no_shared_cipher:
            return "no_shared_cipher";
        case HandshakeResult::unknown_ca:
            return "unknown_ca";
        case HandshakeResult::timeout:
            return "timeout";
        case HandshakeResult::plain_http:
            return "plain_http";
        case HandshakeResult::other:
        case HandshakeResult::count:
            break;
    }
    return "other";
}

int ctx_ex_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

int ssl_ex_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

std::shared_ptr<const TicketSecret> TicketSecret::load(const std::string& file, std::chrono::seconds rotation) {
    auto secret = std::make_shared<TicketSecret>();
    secret->rotation_ = rotation.count() > 0 ? rotation : std::chrono::seconds(3600);
    if (file.empty()) {
        secret->bytes_.resize(48);
        if (RAND_bytes(secret->bytes_.data(), static_cast<int>(secret->bytes_.size())) != 1) fail("RAND_bytes");
    } else {
        secret->bytes_ = read_bytes(file);
        if (secret->bytes_.size() < 32) throw std::runtime_error(file + ": a ticket key file needs 32 bytes or more");
        if (secret->bytes_.size() > 48) secret->bytes_.resize(48);
    }
    return secret;
}

// ---- server ----

TlsServerContext::TlsServerContext(const TlsListenerConfig& config, std::shared_ptr<const TicketSecret> tickets,
                                   HandshakeObserver* observer, size_t index)
    : config_(config), tickets_(std::move(tickets)), observer_(observer), index_(index) {
    if (config_.certificates.empty()) throw std::runtime_error("tls: no certificate");
    for (const auto& files : config_.certificates) {
        // A certificate for names already served (an ECDSA one beside an RSA one) joins that context: OpenSSL then
        // picks between them by what the client supports.
        std::unique_ptr<X509, decltype(&X509_free)> leaf(nullptr, X509_free);
        {
            std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(files.cert.c_str(), "r"), BIO_free);
            if (!bio) fail("cannot read " + files.cert);
            leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
            if (!leaf) fail(files.cert + ": no certificate");
        }
        std::vector<std::string> names = certificate_names(leaf.get());
        infos_.push_back({files.cert, names, not_after(leaf.get())});
        auto same = std::find_if(contexts_.begin(), contexts_.end(), [&](const Named& n) { return n.names == names; });
        if (same == contexts_.end()) {
            contexts_.push_back({make_context(), names, nullptr});
            same = std::prev(contexts_.end());  // push_back invalidated the old iterator
        }
        Named& named = *same;
        SSL_CTX* ctx = named.ctx;
        if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) fail(files.cert);
        if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) fail(files.key);
        if (SSL_CTX_check_private_key(ctx) != 1) fail(files.key + " does not match " + files.cert);
        if (!files.ocsp.empty() && !named.ocsp) {
            // One response per context: the stapled one is its first certificate's.
            named.ocsp = std::make_unique<std::vector<unsigned char>>(read_bytes(files.ocsp));
            SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
            SSL_CTX_set_tlsext_status_arg(ctx, named.ocsp.get());
        }
    }
}

SSL_CTX* TlsServerContext::make_context() {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) fail("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, min_version(config_.min_version));
    // No renegotiation (a CPU sink for a client that asks again and again), no compression; buffers go back
    // to OpenSSL's pool while a connection is idle, so an idle TLS connection holds little.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, config_.ciphers.c_str()) != 1) fail("tls.ciphers");
    if (SSL_CTX_set_ciphersuites(ctx, config_.ciphersuites.c_str()) != 1) fail("tls.ciphersuites");
    if (SSL_CTX_set1_groups_list(ctx, config_.groups.c_str()) != 1) fail("tls.groups");
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, this);
    static const unsigned char kSessionContext[] = "lb";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    // Resumption: tickets when the client takes them, else this worker's own session cache.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (config_.session_tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    if (config_.verify_client != ClientVerification::none) {
        if (SSL_CTX_load_verify_locations(ctx, config_.client_ca.c_str(), nullptr) != 1) fail(config_.client_ca);
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config_.client_ca.c_str());
        if (names) SSL_CTX_set_client_CA_list(ctx, names);
        int mode = SSL_VERIFY_PEER;
        if (config_.verify_client == ClientVerification::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, nullptr);
    }
    return ctx;
}

TlsServerContext::~TlsServerContext() {
    for (auto& named : contexts_) SSL_CTX_free(named.ctx);
}

SSL* TlsServerContext::new_session() const {
    SSL* ssl = SSL_new(contexts_.front().ctx);
    if (!ssl) return nullptr;
    SSL_set_accept_state(ssl);
    SSL_set_ex_data(ssl, ssl_ex_index(), const_cast<TicketSecret*>(tickets_.get()));
    return ssl;
}

SSL_CTX* TlsServerContext::context_for(std::string_view server_name) const {
    std::string name(server_name);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const auto& named : contexts_) {
        for (const auto& n : named.names) {
            if (n == name) return named.ctx;
        }
    }
    for (const auto& named : contexts_) {
        for (const auto& n : named.names) {
            if (name_matches(n, name)) return named.ctx;
        }
    }
    return contexts_.front().ctx;
}

int TlsServerContext::on_servername(SSL* ssl, int*, void* arg) {
    const auto* self = static_cast<const TlsServerContext*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
    SSL_CTX* chosen = self->context_for(name);
    if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
    return SSL_TLSEXT_ERR_OK;
}

void TlsServerContext::report(const HandshakeReport& report) const {
    if (observer_) observer_->on_handshake(index_, report);
}

// ---- client ----

TlsClientContext::TlsClientContext(const TlsUpstreamConfig& config, std::string host, HandshakeObserver* observer,
                                   size_t index)
    : verify_(config.verify), observer_(observer), index_(index) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) fail("SSL_CTX_new");
    SSL_CTX_set_ex_data(ctx_, ctx_ex_index(), this);
    SSL_CTX_set_min_proto_version(ctx_, min_version(config.min_version));
    SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_protos(ctx_, kAlpnHttp11, sizeof kAlpnHttp11);
    if (verify_) {
        if (config.ca_file.empty()) {
            if (SSL_CTX_set_default_verify_paths(ctx_) != 1) fail("the system's CA certificates");
        } else if (SSL_CTX_load_verify_locations(ctx_, config.ca_file.c_str(), nullptr) != 1) {
            fail(config.ca_file);
        }
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (!config.client_certificate.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx_, config.client_certificate.cert.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx_, config.client_certificate.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx_) != 1) {
            fail(config.client_certificate.cert);
        }
    }
    // Sessions come back after the handshake (TLS 1.3 tickets): keep the newest to resume the next connection.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_, on_new_session);
    in6_addr ip6;
    in_addr ip4;
    verify_name_is_ip_ = inet_pton(AF_INET, host.c_str(), &ip4) == 1 || inet_pton(AF_INET6, host.c_str(), &ip6) == 1;
    verify_name_ = host;
    sni_ = !config.sni.empty() ? config.sni : (verify_name_is_ip_ ? "" : host);
    if (!config.sni.empty()) {
        verify_name_ = config.sni;
        verify_name_is_ip_ = false;
    }
}

TlsClientContext::~TlsClientContext() {
    if (last_session_) SSL_SESSION_free(last_session_);
    SSL_CTX_free(ctx_);
}

SSL* TlsClientContext::new_session() {
    SSL* ssl = SSL_new(ctx_);
    if (!ssl) return nullptr;
    SSL_set_connect_state(ssl);
    if (!sni_.empty()) SSL_set_tlsext_host_name(ssl, sni_.c_str());
    if (verify_) {
        if (verify_name_is_ip_) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), verify_name_.c_str());
        } else {
            SSL_set1_host(ssl, verify_name_.c_str());
        }
    }
    if (last_session_) SSL_set_session(ssl, last_session_);
    return ssl;
}

int TlsClientContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<TlsClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_ex_index()));
    if (!self) return 0;
    if (self->last_session_) SSL_SESSION_free(self->last_session_);
    self->last_session_ = session;
    return 1;  // the reference is ours now
}

void TlsClientContext::report(const HandshakeReport& report) const {
    if (observer_) observer_->on_handshake(index_, report);
}

}  // namespace lb::net
