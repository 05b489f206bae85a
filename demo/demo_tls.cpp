#include "demo/demo_tls.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>
#include <stdexcept>

namespace lb::demo {

namespace {

// OpenSSL's reason for the most recent error on this thread's queue, which is emptied.
std::string openssl_reason() {
    unsigned long last = 0;
    while (unsigned long e = ERR_get_error()) last = e;
    if (last == 0) return "no OpenSSL error";
    const char* reason = ERR_reason_error_string(last);
    return reason ? reason : fmt::format("OpenSSL error {:#x}", last);
}

constexpr unsigned char kSessionIdContext[] = "lb-demo-backend";

// ALPN: HTTP/1.1 when the client offers it (curl offers h2 first), nothing otherwise; never h2, which this
// backend does not speak.
int select_http11(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* in,
                  unsigned int in_size, void*) {
    static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, out_size, kHttp11, sizeof kHttp11, in, in_size) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

TlsServerContext::TlsServerContext(const std::string& cert_file, const std::string& key_file,
                                   const std::string& client_ca_file) {
    ERR_clear_error();
    context_ = SSL_CTX_new(TLS_server_method());
    if (!context_) throw std::runtime_error("SSL_CTX_new: " + openssl_reason());
    auto fail = [&](const std::string& what) {
        std::string message = fmt::format("{}: {}", what, openssl_reason());
        SSL_CTX_free(context_);
        context_ = nullptr;
        throw std::runtime_error(message);
    };
    SSL_CTX_set_min_proto_version(context_, TLS1_2_VERSION);
    SSL_CTX_set_options(context_, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(context_, cert_file.c_str()) != 1) fail("TLS certificate " + cert_file);
    if (SSL_CTX_use_PrivateKey_file(context_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) fail("TLS key " + key_file);
    if (SSL_CTX_check_private_key(context_) != 1) fail("TLS key " + key_file + " does not match " + cert_file);
    // Sessions resume (by ticket or from the cache); with client certificates OpenSSL needs this context to do so.
    SSL_CTX_set_session_id_context(context_, kSessionIdContext, sizeof kSessionIdContext - 1);
    SSL_CTX_set_alpn_select_cb(context_, select_http11, nullptr);
    if (!client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(context_, client_ca_file.c_str(), nullptr) != 1) {
            fail("TLS client CA " + client_ca_file);
        }
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str());
        if (!names) fail("TLS client CA " + client_ca_file);
        SSL_CTX_set_client_CA_list(context_, names);  // takes ownership
        SSL_CTX_set_verify(context_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
}

TlsServerContext::~TlsServerContext() { SSL_CTX_free(context_); }

TlsSession::TlsSession(const TlsServerContext& context) {
    ssl_ = SSL_new(context.get());
    BIO* input = BIO_new(BIO_s_mem());
    BIO* output = BIO_new(BIO_s_mem());
    if (!ssl_ || !input || !output) {
        BIO_free(input);
        BIO_free(output);
        SSL_free(ssl_);
        throw std::bad_alloc();
    }
    // An empty input BIO means "wait for more", not the end of the stream: the socket says when that comes.
    BIO_set_mem_eof_return(input, -1);
    SSL_set_bio(ssl_, input, output);  // the SSL owns both
    SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::put_ciphertext(const char* data, size_t size) {
    if (size > 0 && BIO_write(SSL_get_rbio(ssl_), data, static_cast<int>(size)) != static_cast<int>(size)) {
        throw std::bad_alloc();  // a memory BIO fails only when it cannot grow
    }
}

TlsSession::ReadResult TlsSession::read(std::span<char> out, size_t& n) {
    n = 0;
    ERR_clear_error();
    int rc = SSL_read(ssl_, out.data(), static_cast<int>(out.size()));
    if (rc > 0) {
        n = static_cast<size_t>(rc);
        return ReadResult::data;
    }
    switch (SSL_get_error(ssl_, rc)) {
        case SSL_ERROR_WANT_READ:
            return ReadResult::want_more;
        case SSL_ERROR_ZERO_RETURN:
            return ReadResult::closed;
        default:
            failure_ = openssl_reason();
            return ReadResult::failed;
    }
}

bool TlsSession::write(std::string_view data) {
    if (data.empty()) return true;
    ERR_clear_error();
    // Into a memory BIO a write is never partial (SSL_MODE_ENABLE_PARTIAL_WRITE is off) and never waits.
    if (SSL_write(ssl_, data.data(), static_cast<int>(data.size())) == static_cast<int>(data.size())) return true;
    failure_ = openssl_reason();
    return false;
}

void TlsSession::shutdown() {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // 0: close_notify queued, the peer's not seen: all this needs
    ERR_clear_error();
}

std::string_view TlsSession::output() const {
    char* data = nullptr;
    long size = BIO_get_mem_data(SSL_get_wbio(ssl_), &data);
    return size > 0 ? std::string_view(data, static_cast<size_t>(size)) : std::string_view();
}

void TlsSession::clear_output() { (void)BIO_reset(SSL_get_wbio(ssl_)); }

bool TlsSession::handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }

std::string TlsSession::version() const { return SSL_get_version(ssl_); }

std::string TlsSession::server_name() const {
    const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    return name ? name : "";
}

std::string TlsSession::client_subject() const {
    X509* peer = SSL_get0_peer_certificate(ssl_);
    if (!peer || SSL_get_verify_result(ssl_) != X509_V_OK) return "";
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) throw std::bad_alloc();
    X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string subject(data, static_cast<size_t>(size));
    BIO_free(bio);
    return subject;
}

bool TlsSession::resumed() const { return SSL_session_reused(ssl_) == 1; }

}  // namespace lb::demo
