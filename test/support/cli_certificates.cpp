#include "test/support/cli_certificates.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace lb::test {

namespace {

void run(const std::string& command) {
    std::string full = command + " 2>&1";
    FILE* pipe = ::popen(full.c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot run: " + command);
    std::string output;
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    if (::pclose(pipe) != 0) throw std::runtime_error(command + " failed:\n" + output);
}

void write_file(const std::string& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary);
    out << content;
    if (!out) throw std::runtime_error("cannot write " + path);
}

// The directory the certificates live in, removed when the process exits.
class TemporaryDirectory {
  public:
    TemporaryDirectory() {
        char pattern[] = "/tmp/lb-test-certs-XXXXXX";
        if (!::mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

constexpr const char* kNewKey = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

// A self-signed CA certificate and its key, as DIR/NAME.pem and DIR/NAME.key.
void make_ca(const std::string& dir, const std::string& name) {
    run("openssl req -x509 " + std::string(kNewKey) + " -days 30 -subj /CN=" + name + " -keyout " + dir + "/" +
        name + ".key -out " + dir + "/" + name + ".pem");
}

// A certificate for `subject` with the extensions `extensions` (an openssl extfile), signed by DIR/ca.
void make_signed(const std::string& dir, const std::string& name, const std::string& subject,
                 const std::string& extensions) {
    std::string base = dir + "/" + name;
    write_file(base + ".ext", extensions);
    run("openssl req -new " + std::string(kNewKey) + " -subj " + subject + " -keyout " + base + ".key -out " + base +
        ".csr");
    run("openssl x509 -req -in " + base + ".csr -CA " + dir + "/ca.pem -CAkey " + dir + "/ca.key -CAcreateserial " +
        "-days 30 -extfile " + base + ".ext -out " + base + ".pem");
}

CliCertificates make() {
    static TemporaryDirectory directory;
    const std::string& dir = directory.path();
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    make_signed(dir, "server", "/CN=localhost",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    make_signed(dir, "client", "/CN=lb-test-client", "extendedKeyUsage=clientAuth\n");
    return {dir + "/ca.pem",     dir + "/other-ca.pem", dir + "/server.pem",
            dir + "/server.key", dir + "/client.pem",   dir + "/client.key"};
}

}  // namespace

const CliCertificates& cli_certificates() {
    static const CliCertificates certificates = make();
    return certificates;
}

}  // namespace lb::test
