// Fuzzes core::load_config_string with arbitrary YAML. lb.yaml is operator input, but a reload reads whatever the
// file holds at that moment: the loader must turn anything into a Config or a ConfigError with a position.
//
// Oracles: no crash, leak, undefined behaviour or hang; no exception but ConfigError escapes; a Config that
// loads is usable (the promise in core/config/config.h) as far as can be checked without binding: it has
// backends, and each has a port.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <exception>
#include <sstream>
#include <string>
#include <typeinfo>

#include "core/config/config.h"
#include "fuzz/support/fuzz_input.h"
#include "fuzz/support/violation.h"

namespace {

// Counts documents and ignores everything else.
class DocumentCounter : public YAML::EventHandler {
  public:
    size_t documents = 0;
    void OnDocumentStart(const YAML::Mark&) override { ++documents; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace lb::fuzz;
    std::string yaml(as_text(data, size));
    try {
        lb::core::Config config = lb::core::load_config_string(yaml, "fuzz.yaml");
        if (config.backends.empty()) violation("a config without backends loaded");
        for (const auto& backend : config.backends) {
            if (backend.endpoint.port == 0) violation("backend '{}' loaded with port 0", escaped(backend.address));
        }
    } catch (const lb::core::ConfigError& e) {
        if (e.file() != "fuzz.yaml") violation("ConfigError names '{}', not the source", escaped(e.file()));
    } catch (const std::exception& e) {
        violation("load_config_string threw {} instead of ConfigError: {}", typeid(e).name(), escaped(e.what()));
    } catch (...) {
        violation("load_config_string threw something that is not a std::exception");
    }
    return 0;
}
