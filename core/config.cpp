// Loading lb.yaml: parse with yaml-cpp, then walk the tree with MapReader, which checks a map's keys against an allowed
// list and reads typed fields. Every error names the key path and points at the node that caused it.
#include "core/config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

namespace lb::core {

ConfigError::ConfigError(std::string file, int line, int column, const std::string& message)
    : std::runtime_error(fmt::format("{}:{}:{}: {}", file, line, column, message)),
      file_(std::move(file)),
      line_(line),
      column_(column) {}

namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------------------------
// Scalar parsing. These throw std::invalid_argument; the loader adds the key path and the position.

struct Unit {
    std::string_view name;
    uint64_t factor;
};

// A bare number is seconds, as in nginx and HAProxy.
constexpr Unit kDurationUnits[] = {{"", 1'000}, {"ms", 1}, {"s", 1'000}, {"m", 60'000}, {"h", 3'600'000}};
constexpr std::string_view kDurationUnitNames = "ms, s, m or h";

constexpr uint64_t kKiB = 1ULL << 10, kMiB = 1ULL << 20, kGiB = 1ULL << 30;
constexpr Unit kSizeUnits[] = {{"", 1},       {"B", 1},         {"KiB", kKiB},        {"MiB", kMiB},
                               {"GiB", kGiB}, {"KB", 1'000ULL}, {"MB", 1'000'000ULL}, {"GB", 1'000'000'000ULL}};
constexpr std::string_view kSizeUnitNames = "B, KiB, MiB, GiB, KB, MB or GB";

// The whole of `text` as a decimal number, or nothing: no sign, no spaces, no hex, no trailing junk.
std::optional<uint64_t> parse_decimal(std::string_view text) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// Parses "<whole number><unit>" against `units`, returning the number times the unit's factor, at most `max`.
// `what` ("duration", "size") and `unit_names` only shape the messages.
uint64_t parse_with_units(std::string_view text, std::string_view what, std::span<const Unit> units,
                          std::string_view unit_names, uint64_t max) {
    auto bad = [&](std::string_view why) {
        return std::invalid_argument(fmt::format("invalid {} '{}': {}", what, text, why));
    };
    if (text.empty()) throw bad("it is empty");
    if (text.front() == '-') throw bad("it must not be negative");

    uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec == std::errc::invalid_argument) throw bad(fmt::format("expected a whole number followed by {}", unit_names));
    if (ec == std::errc::result_out_of_range) throw bad("it is too large");
    std::string_view suffix = text.substr(static_cast<size_t>(end - text.data()));
    if (suffix.starts_with('.')) throw bad("fractions are not supported; use a smaller unit");

    auto unit = std::find_if(units.begin(), units.end(), [&](const Unit& u) { return u.name == suffix; });
    if (unit == units.end()) throw bad(fmt::format("unknown unit '{}' (expected {})", suffix, unit_names));
    if (number > max / unit->factor) throw bad("it is too large");
    return number * unit->factor;
}

// Hostnames are checked only for characters that can never be valid, so typos like "http://x" fail at load time;
// whether the name resolves is the balancer's business.
void check_host(std::string_view host) {
    if (host.empty()) throw std::invalid_argument("the host is empty");
    for (char c : host) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
            throw std::invalid_argument(fmt::format("invalid character '{}' in host '{}'", c, host));
        }
    }
    // All digits and dots means an IPv4 literal was meant: "10.0.0.300" would otherwise go to DNS.
    bool numeric = std::all_of(host.begin(), host.end(), [](unsigned char c) { return c == '.' || std::isdigit(c); });
    in_addr v4{};
    if (numeric && inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1) {
        throw std::invalid_argument(fmt::format("'{}' is not a valid IPv4 address", host));
    }
}

// The part inside brackets: an IPv6 literal, optionally with a zone ("fe80::1%eth0") that getaddrinfo understands.
void check_ipv6(std::string_view host) {
    if (host.empty()) throw std::invalid_argument("the host is empty");
    std::string_view address = host.substr(0, host.find('%'));
    in6_addr v6{};
    if (inet_pton(AF_INET6, std::string(address).c_str(), &v6) != 1 || address.size() + 1 == host.size()) {
        throw std::invalid_argument(fmt::format("'{}' is not a valid IPv6 address", host));
    }
}

uint16_t parse_port(std::string_view text, bool allow_zero) {
    if (text.empty()) throw std::invalid_argument("the port is missing");
    std::optional<uint64_t> port = parse_decimal(text);
    if (!port) throw std::invalid_argument(fmt::format("port '{}' is not a number", text));
    uint64_t min = allow_zero ? 0 : 1;
    if (*port < min || *port > 65535) {
        throw std::invalid_argument(fmt::format("port {} is out of range {}..65535", *port, min));
    }
    return static_cast<uint16_t>(*port);
}

// parse_host_port with a choice about port 0, which only a listener may ask for (the kernel picks a free port).
HostPort parse_host_port_impl(std::string_view text, bool allow_port_zero) {
    try {
        std::string_view host, port;
        if (text.starts_with('[')) {
            size_t close = text.find(']');
            if (close == std::string_view::npos) throw std::invalid_argument("missing ']' after the IPv6 address");
            host = text.substr(1, close - 1);
            std::string_view rest = text.substr(close + 1);
            if (!rest.starts_with(':')) throw std::invalid_argument("expected ':port' after ']'");
            port = rest.substr(1);
            check_ipv6(host);
        } else {
            if (text.find("://") != std::string_view::npos) {
                throw std::invalid_argument("expected host:port without a scheme");
            }
            size_t colon = text.rfind(':');
            if (colon == std::string_view::npos) throw std::invalid_argument("expected host:port, e.g. 127.0.0.1:8080");
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
            if (host.find(':') != std::string_view::npos) {
                throw std::invalid_argument("an IPv6 address must be in brackets, e.g. [::1]:8080");
            }
            check_host(host);
        }
        return HostPort{std::string(host), parse_port(port, allow_port_zero)};
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("invalid address '{}': {}", text, e.what()));
    }
}

// For range messages: the largest unit that divides exactly, so limits read as they are written in lb.yaml.
std::string format_size(uint64_t bytes) {
    if (bytes != 0 && bytes % kGiB == 0) return fmt::format("{}GiB", bytes / kGiB);
    if (bytes != 0 && bytes % kMiB == 0) return fmt::format("{}MiB", bytes / kMiB);
    if (bytes != 0 && bytes % kKiB == 0) return fmt::format("{}KiB", bytes / kKiB);
    return fmt::format("{}", bytes);
}

std::string format_duration(Millis d) {
    auto ms = d.count();
    if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
    if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
    if (ms != 0 && ms % 1'000 == 0) return fmt::format("{}s", ms / 1'000);
    return fmt::format("{}ms", ms);
}

// ---------------------------------------------------------------------------------------------------------------
// Walking the YAML tree.

[[noreturn]] void fail_at(const std::string& file, const YAML::Mark& mark, const std::string& message) {
    // yaml-cpp counts from 0, editors and compilers from 1. A node without a position reports 0:0.
    if (mark.is_null()) throw ConfigError(file, 0, 0, message);
    throw ConfigError(file, mark.line + 1, mark.column + 1, message);
}

// What a node is, for "got ..." in messages.
std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Scalar:
            return fmt::format("'{}'", node.Scalar());
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a map";
        default:
            return "nothing";
    }
}

std::string child_path(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

// One value as written, with its full path ("timeouts.connect", "backends[2]") for messages. For a map entry `key`
// is the key node; for a list item it is the item itself.
struct Field {
    std::string path;
    YAML::Node key;
    YAML::Node value;

    // An empty value ("connect:") has no position of its own worth showing (yaml-cpp puts it on the next token),
    // so errors about it point at the key.
    YAML::Mark mark() const { return value.IsNull() ? key.Mark() : value.Mark(); }
};

[[noreturn]] void fail_field(const std::string& file, const Field& field, const std::string& message) {
    fail_at(file, field.mark(), message);
}

// The field's text; anything but a scalar fails with "'path' must be <expected>, got a map".
std::string scalar_text(const std::string& file, const Field& field, std::string_view expected) {
    if (!field.value.IsScalar()) {
        fail_field(file, field, fmt::format("'{}' must be {}, got {}", field.path, expected, describe(field.value)));
    }
    return field.value.Scalar();
}

// Runs a parse_* function on the field's text, turning its std::invalid_argument into a positioned ConfigError.
template <typename Parse>
auto convert(const std::string& file, const Field& field, Parse parse, std::string_view expected) {
    std::string text = scalar_text(file, field, expected);
    try {
        return parse(text);
    } catch (const std::invalid_argument& e) {
        fail_field(file, field, fmt::format("'{}': {}", field.path, e.what()));
    }
}

HostPort field_host_port(const std::string& file, const Field& field, bool allow_port_zero) {
    // An unquoted [::1]:80 is YAML flow syntax, so it arrives as a list: say how to write it.
    std::string_view expected =
        field.value.IsSequence() ? "a host:port string (quote IPv6 addresses: \"[::1]:8080\")" : "a host:port string";
    auto parse = [&](const std::string& text) { return parse_host_port_impl(text, allow_port_zero); };
    return convert(file, field, parse, expected);
}

// A YAML map being read as one config section. The constructor rejects unknown and repeated keys up front, in
// document order; the read_* functions then fill typed values, leaving the default when a key is absent. To add a
// section: list its keys in a MapReader and call a read_* per key (see read_timeouts).
class MapReader {
  public:
    // `node` is a map, or null for a section written with no keys ("timeouts:"), which keeps every default.
    MapReader(const std::string& file, const YAML::Node& node, std::string path,
              std::initializer_list<std::string_view> allowed)
        : file_(file), node_(node), path_(std::move(path)), allowed_(allowed) {
        if (node.IsNull()) return;
        if (!node.IsMap()) {
            std::string what = path_.empty() ? "the config" : fmt::format("'{}'", path_);
            fail_at(
                file_, node.Mark(),
                fmt::format("{} must be a map with keys {}, got {}", what, fmt::join(allowed_, ", "), describe(node)));
        }
        for (auto it = node.begin(); it != node.end(); ++it) add_field(it->first, it->second);
    }

    const std::string& file() const { return file_; }

    // The field for `key`, or nullptr when the document leaves it out.
    const Field* find(std::string_view key) const {
        if (std::find(allowed_.begin(), allowed_.end(), key) == allowed_.end()) {
            throw std::logic_error(fmt::format("config loader reads '{}', which is not in its allowed keys", key));
        }
        auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.key.Scalar() == key; });
        return it == fields_.end() ? nullptr : &*it;
    }

    [[noreturn]] void fail(const Field& field, const std::string& message) const { fail_field(file_, field, message); }
    // For what is missing from this map as a whole.
    [[noreturn]] void fail_here(const std::string& message) const { fail_at(file_, node_.Mark(), message); }

    std::string scalar(const Field& field, std::string_view expected) const {
        return scalar_text(file_, field, expected);
    }

    // A nested section; empty when absent.
    MapReader section(std::string_view key, std::initializer_list<std::string_view> allowed) const {
        const Field* field = find(key);
        return MapReader(file_, field ? field->value : YAML::Node(YAML::NodeType::Null), child_path(path_, key),
                         allowed);
    }

    void read_duration(std::string_view key, Millis& out, Millis min = 1ms, Millis max = 24h) const {
        const Field* field = find(key);
        if (!field) return;
        Millis value = convert(file_, *field, parse_duration, "a duration such as 250ms, 5s, 2m or 1h");
        if (value < min || value > max) {
            fail(*field, fmt::format("'{}' must be between {} and {}, got {}", field->path, format_duration(min),
                                     format_duration(max), describe(field->value)));
        }
        out = value;
    }

    void read_size(std::string_view key, uint64_t& out, uint64_t min, uint64_t max) const {
        const Field* field = find(key);
        if (!field) return;
        uint64_t value = convert(file_, *field, parse_size, "a size such as 512, 64KiB or 1MiB");
        if (value < min || value > max) {
            fail(*field, fmt::format("'{}' must be between {} and {}, got {}", field->path, format_size(min),
                                     format_size(max), describe(field->value)));
        }
        out = value;
    }

    template <typename T>
    void read_integer(std::string_view key, T& out, T min, T max) const {
        const Field* field = find(key);
        if (!field) return;
        std::string expected = fmt::format("an integer between {} and {}", min, max);
        std::optional<uint64_t> value = parse_decimal(scalar(*field, expected));
        if (!value || *value < min || *value > max) {
            fail(*field, fmt::format("'{}' must be {}, got {}", field->path, expected, describe(field->value)));
        }
        out = static_cast<T>(*value);
    }

    void read_host_port(std::string_view key, HostPort& out, bool allow_port_zero) const {
        const Field* field = find(key);
        if (field) out = field_host_port(file_, *field, allow_port_zero);
    }

  private:
    void add_field(const YAML::Node& key, const YAML::Node& value) {
        std::string where = path_.empty() ? "at the top level" : fmt::format("in '{}'", path_);
        if (!key.IsScalar())
            fail_at(file_, key.Mark(), fmt::format("keys {} must be names, got {}", where, describe(key)));
        const std::string& name = key.Scalar();
        if (std::find(allowed_.begin(), allowed_.end(), name) == allowed_.end()) {
            fail_at(file_, key.Mark(),
                    fmt::format("unknown key '{}' {} (expected one of: {})", name, where, fmt::join(allowed_, ", ")));
        }
        // yaml-cpp keeps both copies of a repeated key; rather than silently using one, refuse.
        for (const Field& earlier : fields_) {
            if (earlier.key.Scalar() == name) {
                fail_at(file_, key.Mark(),
                        fmt::format("duplicate key '{}' {} (first set on line {})", name, where,
                                    earlier.key.Mark().line + 1));
            }
        }
        fields_.push_back(Field{child_path(path_, name), key, value});
    }

    const std::string& file_;
    YAML::Node node_;
    std::string path_;
    std::vector<std::string_view> allowed_;  // string literals from the section's loader
    std::vector<Field> fields_;
};

// ---------------------------------------------------------------------------------------------------------------
// The schema, one function per section.

constexpr unsigned kMaxWorkers = 1024;

unsigned read_workers(const MapReader& top) {
    const Field* field = top.find("workers");
    if (!field) return Config{}.workers;
    std::string text = top.scalar(*field, "a positive integer or 'auto'");
    if (text == "auto") return 0;
    std::optional<uint64_t> n = parse_decimal(text);
    if (!n) top.fail(*field, fmt::format("'workers' must be a positive integer or 'auto', got '{}'", text));
    if (*n < 1 || *n > kMaxWorkers) {
        top.fail(*field, fmt::format("'workers' must be between 1 and {} or 'auto', got '{}'", kMaxWorkers, text));
    }
    return static_cast<unsigned>(*n);
}

// One backend: "host:port", or a map with address and weight.
BackendConfig read_backend(const std::string& file, const YAML::Node& item, const std::string& path) {
    BackendConfig backend;
    if (item.IsMap()) {
        MapReader map(file, item, path, {"address", "weight"});
        const Field* address = map.find("address");
        if (!address) map.fail_here(fmt::format("'{}.address' is required", path));
        backend.address = map.scalar(*address, "a host:port string");
        backend.endpoint = field_host_port(file, *address, false);
        map.read_integer<uint32_t>("weight", backend.weight, 1, 1000);
        return backend;
    }
    Field field{path, item, item};
    backend.address = scalar_text(file, field, "a host:port string or a map with 'address' and 'weight'");
    backend.endpoint = field_host_port(file, field, false);
    return backend;
}

// Two entries for one host:port would double its share and confuse metrics that are keyed by address. Names
// compare case-insensitively, as DNS does; addresses are compared as written, not resolved.
std::string backend_identity(const HostPort& endpoint) {
    std::string host = endpoint.host;
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    return fmt::format("{}|{}", host, endpoint.port);
}

std::vector<BackendConfig> read_backends(const MapReader& top) {
    const Field* field = top.find("backends");
    if (!field) top.fail_here("'backends' is required: list at least one backend, e.g. backends: [\"127.0.0.1:9001\"]");
    if (!field->value.IsSequence() || field->value.size() == 0) {
        top.fail(*field, fmt::format("'backends' must be a non-empty list of host:port strings or maps, got {}",
                                     field->value.IsSequence() ? "an empty list" : describe(field->value)));
    }
    std::vector<BackendConfig> backends;
    std::vector<std::string> identities;
    for (const YAML::Node& item : field->value) {
        std::string path = fmt::format("backends[{}]", backends.size());
        BackendConfig backend = read_backend(top.file(), item, path);
        std::string identity = backend_identity(backend.endpoint);
        auto earlier = std::find(identities.begin(), identities.end(), identity);
        if (earlier != identities.end()) {
            fail_at(top.file(), item.Mark(),
                    fmt::format("duplicate backend '{}' in '{}' (already listed as 'backends[{}]')", backend.address,
                                path, earlier - identities.begin()));
        }
        identities.push_back(std::move(identity));
        backends.push_back(std::move(backend));
    }
    return backends;
}

Timeouts read_timeouts(const MapReader& top) {
    MapReader map = top.section("timeouts", {"connect", "client_header", "client_keepalive", "upstream_response",
                                             "upstream_keepalive", "drain"});
    Timeouts t;
    map.read_duration("connect", t.connect);
    map.read_duration("client_header", t.client_header);
    map.read_duration("client_keepalive", t.client_keepalive);
    map.read_duration("upstream_response", t.upstream_response);
    map.read_duration("upstream_keepalive", t.upstream_keepalive);
    map.read_duration("drain", t.drain);
    return t;
}

Limits read_limits(const MapReader& top) {
    MapReader map = top.section("limits", {"header_bytes", "header_count", "uri_bytes", "request_body_bytes"});
    Limits l;
    map.read_size("header_bytes", l.header_bytes, kKiB, kMiB);
    map.read_integer<uint32_t>("header_count", l.header_count, 1, 10'000);
    map.read_size("uri_bytes", l.uri_bytes, 256, kMiB);
    map.read_size("request_body_bytes", l.request_body_bytes, 0, std::numeric_limits<uint64_t>::max());
    return l;
}

Config read_config(const std::string& source, const YAML::Node& root) {
    MapReader top(source, root, "", {"listen", "workers", "backends", "timeouts", "limits", "retries", "upstream"});
    Config config;
    config.source = source;
    top.read_host_port("listen", config.listen, true);
    config.workers = read_workers(top);
    config.backends = read_backends(top);
    config.timeouts = read_timeouts(top);
    config.limits = read_limits(top);
    top.read_integer<unsigned>("retries", config.retries, 0, 10);
    top.section("upstream", {"keepalive"}).read_integer<unsigned>("keepalive", config.upstream_keepalive, 0, 10'000);
    return config;
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

[[noreturn]] void fail_unreadable(const std::string& path, int error) {
    throw ConfigError(path, 0, 0, fmt::format("cannot read config file: {}", std::generic_category().message(error)));
}

std::string read_file(const std::string& path) {
    std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
    if (!file) fail_unreadable(path, errno);
    std::string text;
    char buffer[16 * 1024];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
    // A directory opens fine on Linux and fails here, with EISDIR.
    if (std::ferror(file.get())) fail_unreadable(path, errno);
    return text;
}

}  // namespace

Millis parse_duration(const std::string& text) {
    auto max = static_cast<uint64_t>(std::numeric_limits<Millis::rep>::max());
    return Millis{
        static_cast<Millis::rep>(parse_with_units(text, "duration", kDurationUnits, kDurationUnitNames, max))};
}

uint64_t parse_size(const std::string& text) {
    return parse_with_units(text, "size", kSizeUnits, kSizeUnitNames, std::numeric_limits<uint64_t>::max());
}

HostPort parse_host_port(const std::string& text) { return parse_host_port_impl(text, false); }

Config load_config_string(const std::string& yaml, const std::string& source) {
    std::vector<YAML::Node> documents;
    try {
        documents = YAML::LoadAll(yaml);
    } catch (const YAML::Exception& e) {
        fail_at(source, e.mark, fmt::format("YAML syntax error: {}", e.msg));
    }
    // Load() would silently use the first of several documents; a second one with content is likely a mistake.
    // Empty ones, as a trailing "---" makes, are harmless.
    for (size_t i = 1; i < documents.size(); ++i) {
        if (!documents[i].IsNull()) fail_at(source, documents[i].Mark(), "expected one YAML document, found a second");
    }
    if (documents.empty() || documents[0].IsNull()) {
        throw ConfigError(source, 1, 1, "the config is empty: at least 'backends' is required");
    }
    return read_config(source, documents[0]);
}

Config load_config_file(const std::string& path) { return load_config_string(read_file(path), path); }

}  // namespace lb::core
