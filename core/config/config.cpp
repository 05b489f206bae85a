// Loading lb.yaml: parse with yaml-cpp, then walk the tree with MapReader, which checks a map's keys against an allowed
// list and reads typed fields. Every error names the key path and points at the node that caused it.
#include "core/config/config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "http/header_rules.h"
#include "net/tls_files.h"
#include "pool/admin_state.h"
#include "route/route_table.h"

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

constexpr std::string_view kUnixPrefix = "unix:";

// "unix:PATH": a path that fits a sockaddr_un with its terminating NUL. Whether its directory exists is found
// when lb binds, like whether a host:port is free.
std::string parse_unix_path(std::string_view text) {
    std::string_view path = text.substr(kUnixPrefix.size());
    constexpr size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
    try {
        if (path.empty()) throw std::invalid_argument("the socket path after 'unix:' is empty");
        if (path.find('\0') != std::string_view::npos) {
            throw std::invalid_argument("the socket path contains a NUL byte");
        }
        if (path.size() > kMaxPath) {
            throw std::invalid_argument(fmt::format(
                "the socket path is {} bytes long; a Unix socket path holds at most {}", path.size(), kMaxPath));
        }
        if (path.ends_with('/')) throw std::invalid_argument("the socket path names a directory");
    } catch (const std::invalid_argument& e) {
        // A NUL would end the message where what() is read as a C string: show it escaped.
        std::string shown;
        for (char c : text) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
        throw std::invalid_argument(fmt::format("invalid address '{}': {}", shown, e.what()));
    }
    return std::string(path);
}

ListenAddress parse_listen_address_impl(std::string_view text) {
    if (text.starts_with(kUnixPrefix)) return ListenAddress{{}, parse_unix_path(text)};
    return ListenAddress{parse_host_port_impl(text, true), {}};
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

ListenAddress field_listen_address(const std::string& file, const Field& field) {
    std::string_view expected = field.value.IsSequence()
                                    ? "a host:port or unix:PATH string (quote IPv6 addresses: \"[::1]:8080\")"
                                    : "a host:port or unix:PATH string";
    return convert(
        file, field, [](const std::string& text) { return parse_listen_address_impl(text); }, expected);
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
    const std::string& path() const { return path_; }

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

    // An integer, or `word` ("auto", "unlimited") standing for `word_value`.
    template <typename T>
    void read_integer_or(std::string_view key, T& out, T min, T max, std::string_view word, T word_value) const {
        const Field* field = find(key);
        if (!field) return;
        std::string expected = fmt::format("an integer between {} and {}, or '{}'", min, max, word);
        std::string text = scalar(*field, expected);
        if (text == word) {
            out = word_value;
            return;
        }
        std::optional<uint64_t> value = parse_decimal(text);
        if (!value || *value < min || *value > max) {
            fail(*field, fmt::format("'{}' must be {}, got {}", field->path, expected, describe(field->value)));
        }
        out = static_cast<T>(*value);
    }

    void read_host_port(std::string_view key, HostPort& out, bool allow_port_zero) const {
        const Field* field = find(key);
        if (field) out = field_host_port(file_, *field, allow_port_zero);
    }

    // Only the YAML 1.2 core spellings: "yes", "on" or "1" for a flag is more likely a slip than a choice.
    void read_bool(std::string_view key, bool& out) const {
        const Field* field = find(key);
        if (!field) return;
        std::string text = scalar(*field, "true or false");
        if (text != "true" && text != "false") {
            fail(*field, fmt::format("'{}' must be true or false, got {}", field->path, describe(field->value)));
        }
        out = text == "true";
    }

    // The same readers for a key that may be left unset (a backend's own health keys).
    void read_duration(std::string_view key, std::optional<Millis>& out, Millis min = 1ms, Millis max = 24h) const {
        if (!find(key)) return;
        Millis value{};
        read_duration(key, value, min, max);
        out = value;
    }
    template <typename T>
    void read_integer(std::string_view key, std::optional<T>& out, T min, T max) const {
        if (!find(key)) return;
        T value{};
        read_integer(key, value, min, max);
        out = value;
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

// ---------------------------------------------------------------------------------------------------------------
// Health check keys, shared by the `health:` section and a backend's own `health:` map.

constexpr uint32_t kMaxThreshold = 1000;

// The request target of a check goes on the request line as written: an origin-form path, no spaces.
void read_check_path(const MapReader& map, std::string_view key, std::string& out) {
    const Field* field = map.find(key);
    if (!field) return;
    std::string path = map.scalar(*field, "a path such as /health");
    if (!path.starts_with('/')) {
        map.fail(*field, fmt::format("'{}' must start with '/', got '{}'", field->path, path));
    }
    for (char c : path) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
            map.fail(*field, fmt::format("'{}' must not contain spaces or control characters", field->path));
        }
    }
    out = std::move(path);
}

// The Host header of a check: a name or address, with an optional port ("svc.internal", "[::1]:8080").
void read_check_host(const MapReader& map, std::string_view key, std::string& out) {
    const Field* field = map.find(key);
    if (!field) return;
    std::string host = map.scalar(*field, "a host name");
    if (host.empty()) map.fail(*field, fmt::format("'{}' must not be empty", field->path));
    constexpr std::string_view kPunctuation = "-._:[]";  // names, IPv4, bracketed IPv6, an optional :port
    for (char c : host) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && kPunctuation.find(c) == std::string_view::npos) {
            map.fail(*field, fmt::format("'{}': invalid character '{}' in host '{}'", field->path, c, host));
        }
    }
    out = std::move(host);
}

void read_check_port(const MapReader& map, std::string_view key, uint16_t& out) {
    map.read_integer<uint16_t>(key, out, 1, 65535);
}

// "200", "200-399"; an unquoted 200 arrives as the same scalar.
health::StatusRange parse_status_range(std::string_view text) {
    auto code = [&](std::string_view part) {
        std::optional<uint64_t> n = parse_decimal(part);
        if (!n) {
            throw std::invalid_argument(
                fmt::format("invalid status '{}': expected a code such as 200 or a range such as 200-399", text));
        }
        if (*n < 100 || *n > 599) throw std::invalid_argument(fmt::format("status {} is not in 100..599", *n));
        return static_cast<int>(*n);
    };
    size_t dash = text.find('-');
    if (dash == std::string_view::npos) {
        int c = code(text);
        return {c, c};
    }
    health::StatusRange range{code(text.substr(0, dash)), code(text.substr(dash + 1))};
    if (range.low > range.high) throw std::invalid_argument(fmt::format("the range '{}' is reversed", text));
    return range;
}

// A code, a range, or a list of them.
void read_expected_statuses(const MapReader& map, std::vector<health::StatusRange>& out) {
    const Field* field = map.find("expected_statuses");
    if (!field) return;
    constexpr std::string_view kExpected = "a status code or range (\"200-399\"), or a list of them";
    std::vector<health::StatusRange> ranges;
    if (field->value.IsSequence()) {
        if (field->value.size() == 0) {
            map.fail(*field, fmt::format("'{}' must not be an empty list", field->path));
        }
        size_t i = 0;
        for (const YAML::Node& item : field->value) {
            Field entry{fmt::format("{}[{}]", field->path, i++), item, item};
            ranges.push_back(convert(map.file(), entry, parse_status_range, kExpected));
        }
    } else {
        ranges.push_back(convert(map.file(), *field, parse_status_range, kExpected));
    }
    out = std::move(ranges);
}

// "10%" of the interval, or a duration.
void read_jitter(const MapReader& map, health::Jitter& out) {
    const Field* field = map.find("jitter");
    if (!field) return;
    std::string text = map.scalar(*field, "a percentage such as 10% or a duration such as 500ms");
    if (text.ends_with('%')) {
        std::optional<uint64_t> percent = parse_decimal(std::string_view(text).substr(0, text.size() - 1));
        if (!percent || *percent > 50) {
            map.fail(*field, fmt::format("'{}' must be a percentage from 0% to 50% or a duration, got '{}'",
                                         field->path, text));
        }
        out = health::Jitter{true, static_cast<uint32_t>(*percent), Millis{0}};
        return;
    }
    Millis duration = convert(map.file(), *field, parse_duration, "a percentage such as 10% or a duration");
    if (duration > 24h) map.fail(*field, fmt::format("'{}' must be at most 24h, got '{}'", field->path, text));
    out = health::Jitter{false, 0, duration};
}

// A backend's own `health:` keys.
health::CheckOverrides read_check_overrides(const MapReader& backend) {
    MapReader map = backend.section("health", {"path", "interval", "timeout", "rise", "fall", "port", "host"});
    health::CheckOverrides own;
    if (map.find("path")) read_check_path(map, "path", own.path.emplace());
    map.read_duration("interval", own.interval);
    map.read_duration("timeout", own.timeout);
    map.read_integer<uint32_t>("rise", own.rise, 1, kMaxThreshold);
    map.read_integer<uint32_t>("fall", own.fall, 1, kMaxThreshold);
    if (map.find("port")) read_check_port(map, "port", own.port.emplace());
    if (map.find("host")) read_check_host(map, "host", own.host.emplace());
    return own;
}

// ---------------------------------------------------------------------------------------------------------------
// TLS: a listener's `tls:` section, and a backend's (or `upstream:`'s) `tls:`. The files they name are read now,
// with net/tls_files.h's checks, so that a config that loads can build its OpenSSL contexts; each failure points
// at the key that names the file.

// Where findings that are not errors go while a config loads.
using Warnings = std::vector<ConfigWarning>;

void warn(Warnings& warnings, const std::string& file, const Field& field, const std::string& message) {
    YAML::Mark mark = field.mark();
    if (mark.is_null()) {
        warnings.push_back(ConfigWarning{file, 0, 0, message});
    } else {
        warnings.push_back(ConfigWarning{file, mark.line + 1, mark.column + 1, message});
    }
}

// Runs one of net/tls_files.h's checks; what it throws becomes an error at `field`.
template <typename Check>
auto check_tls_file(const MapReader& map, const Field& field, Check check) {
    try {
        return check();
    } catch (const std::runtime_error& e) {
        map.fail(field, fmt::format("'{}': {}", field.path, e.what()));
    }
}

// A file path, as written: relative ones are relative to lb's working directory.
std::string read_path(const MapReader& map, const Field& field) {
    std::string path = map.scalar(field, "a file path");
    if (path.empty()) map.fail(field, fmt::format("'{}' must not be empty", field.path));
    if (path.find('\0') != std::string::npos) map.fail(field, fmt::format("'{}' contains a NUL byte", field.path));
    return path;
}

void read_tls_version(const MapReader& map, std::string_view key, net::TlsVersion& out) {
    const Field* field = map.find(key);
    if (!field) return;
    std::string text = map.scalar(*field, "\"1.2\" or \"1.3\"");
    if (text == "1.2") {
        out = net::TlsVersion::tls1_2;
    } else if (text == "1.3") {
        out = net::TlsVersion::tls1_3;
    } else {
        map.fail(*field, fmt::format("'{}' must be \"1.2\" or \"1.3\", got {}", field->path, describe(field->value)));
    }
}

// A certificate and its key: the certificate is read and dated (expired: an error; expiring within 30 days: a
// warning), the key matched against it. The keys are `cert` and `key` in `map`, both required.
void read_certificate_files(const MapReader& map, net::CertificateFiles& out, Warnings& warnings) {
    const Field* cert = map.find("cert");
    const Field* key = map.find("key");
    if (!cert) map.fail_here(fmt::format("'{}' is required", child_path(map.path(), "cert")));
    if (!key) map.fail_here(fmt::format("'{}' is required", child_path(map.path(), "key")));
    out.cert = read_path(map, *cert);
    out.key = read_path(map, *key);
    net::CertificateSummary summary = check_tls_file(map, *cert, [&] { return net::read_certificate_file(out.cert); });
    std::optional<std::string> warning = check_tls_file(
        map, *cert, [&] { return net::check_certificate_dates(summary, out.cert, std::chrono::system_clock::now()); });
    if (warning) warn(warnings, map.file(), *cert, fmt::format("'{}': {}", cert->path, *warning));
    check_tls_file(map, *key, [&] { net::check_private_key_file(out.key, out.cert); });
}

// An HTTP field name (RFC 9110 token), for the header that carries a client certificate's subject.
bool is_field_name(std::string_view name) {
    constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
    return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || kTokenPunctuation.find(c) != std::string_view::npos;
    });
}

// `certificates:` a non-empty list of {cert, key, ocsp}.
std::vector<net::CertificateFiles> read_listener_certificates(const MapReader& tls, Warnings& warnings) {
    const Field* field = tls.find("certificates");
    if (!field) {
        tls.fail_here(
            fmt::format("'{}' is required: a list of {{cert, key}} PEM files", child_path(tls.path(), "certificates")));
    }
    if (!field->value.IsSequence()) {
        tls.fail(*field, fmt::format("'{}' must be a list of maps with cert and key, got {}", field->path,
                                     describe(field->value)));
    }
    if (field->value.size() == 0) {
        tls.fail(*field, fmt::format("'{}' must list at least one certificate", field->path));
    }
    std::vector<net::CertificateFiles> certificates;
    for (size_t i = 0; i < field->value.size(); ++i) {
        const YAML::Node& item = field->value[i];
        std::string path = fmt::format("{}[{}]", field->path, i);
        if (!item.IsMap()) {
            tls.fail(Field{path, item, item},
                     fmt::format("'{}' must be a map with cert and key (and optionally ocsp), got {}", path,
                                 describe(item)));
        }
        MapReader entry(tls.file(), item, path, {"cert", "key", "ocsp"});
        net::CertificateFiles files;
        read_certificate_files(entry, files, warnings);
        if (const Field* ocsp = entry.find("ocsp")) {
            files.ocsp = read_path(entry, *ocsp);
            check_tls_file(entry, *ocsp, [&] { net::check_ocsp_response_file(files.ocsp); });
        }
        certificates.push_back(std::move(files));
    }
    return certificates;
}

// A listener's `tls:` section.
net::TlsListenerConfig read_listener_tls(const MapReader& listener, Warnings& warnings) {
    MapReader tls = listener.section(
        "tls", {"certificates", "min_version", "ciphers", "ciphersuites", "groups", "session_tickets",
                "ticket_key_file", "ticket_key_rotation", "client_ca", "verify_client", "client_subject_header"});
    net::TlsListenerConfig config;
    config.certificates = read_listener_certificates(tls, warnings);
    read_tls_version(tls, "min_version", config.min_version);

    if (const Field* field = tls.find("ciphers")) {
        config.ciphers = tls.scalar(*field, "an OpenSSL cipher list");
        check_tls_file(tls, *field, [&] { net::check_cipher_list(config.ciphers); });
    }
    if (const Field* field = tls.find("ciphersuites")) {
        config.ciphersuites = tls.scalar(*field, "TLS 1.3 ciphersuites separated by ':'");
        check_tls_file(tls, *field, [&] { net::check_ciphersuites(config.ciphersuites); });
    }
    if (config.ciphersuites.empty() && config.min_version == net::TlsVersion::tls1_3) {
        const Field* field = tls.find("ciphersuites");
        tls.fail(*field, fmt::format("'{}' is empty and 'min_version' is 1.3: no cipher is left", field->path));
    }
    if (const Field* field = tls.find("groups")) {
        config.groups = tls.scalar(*field, "groups separated by ':'");
        check_tls_file(tls, *field, [&] { net::check_groups(config.groups); });
    }

    tls.read_bool("session_tickets", config.session_tickets);
    if (const Field* field = tls.find("ticket_key_file")) {
        config.ticket_key_file = read_path(tls, *field);
        check_tls_file(tls, *field, [&] { net::check_ticket_key_file(config.ticket_key_file); });
    }
    if (const Field* field = tls.find("ticket_key_rotation")) {
        Millis rotation{};
        tls.read_duration("ticket_key_rotation", rotation, 1min, 24h);
        if (rotation % 1s != 0ms) {
            tls.fail(*field, fmt::format("'{}' must be whole seconds, got {}", field->path, describe(field->value)));
        }
        config.ticket_key_rotation = std::chrono::duration_cast<std::chrono::seconds>(rotation);
    }
    if (!config.session_tickets) {
        for (std::string_view key : {"ticket_key_file", "ticket_key_rotation"}) {
            if (const Field* field = tls.find(key)) {
                tls.fail(*field, fmt::format("'{}' is set but 'session_tickets' is false", field->path));
            }
        }
    }

    if (const Field* field = tls.find("client_ca")) {
        config.client_ca = read_path(tls, *field);
        check_tls_file(tls, *field, [&] { net::check_ca_file(config.client_ca); });
    }
    if (const Field* field = tls.find("verify_client")) {
        std::string text = tls.scalar(*field, "none, optional or required");
        if (text == "none") {
            config.verify_client = net::ClientVerification::none;
        } else if (text == "optional") {
            config.verify_client = net::ClientVerification::optional;
        } else if (text == "required") {
            config.verify_client = net::ClientVerification::required;
        } else {
            tls.fail(*field, fmt::format("'{}' must be none, optional or required, got {}", field->path,
                                         describe(field->value)));
        }
        if (config.verify_client != net::ClientVerification::none && config.client_ca.empty()) {
            tls.fail(*field, fmt::format("'{}' is {} but no 'client_ca' is set: the CA certificates to verify "
                                         "clients against",
                                         field->path, text));
        }
    }
    if (const Field* field = tls.find("client_ca"); field && config.verify_client == net::ClientVerification::none) {
        tls.fail(*field, fmt::format("'{}' is set but 'verify_client' is none: set verify_client to optional or "
                                     "required",
                                     field->path));
    }
    if (const Field* field = tls.find("client_subject_header")) {
        config.client_subject_header = tls.scalar(*field, "a header name");
        if (!is_field_name(config.client_subject_header)) {
            tls.fail(*field, fmt::format("'{}' must be a header name, got {}", field->path, describe(field->value)));
        }
        if (config.verify_client == net::ClientVerification::none) {
            tls.fail(*field, fmt::format("'{}' is set but 'verify_client' is none: there is no client certificate "
                                         "to pass on",
                                         field->path));
        }
    }
    return config;
}

// TLS towards backends: `true`, `false`, or a map of {verify, ca_file, sni, cert, key, min_version}. Written under
// a backend or under `upstream:` (the default for every backend); `owner` is the map it is in.
net::TlsUpstreamConfig read_upstream_tls(const MapReader& owner, const Field& field, Warnings& warnings) {
    net::TlsUpstreamConfig config;
    if (field.value.IsScalar()) {
        std::string text = field.value.Scalar();
        if (text != "true" && text != "false") {
            owner.fail(field, fmt::format("'{}' must be true, false or a map with verify, ca_file, sni, cert, key, "
                                          "min_version, got {}",
                                          field.path, describe(field.value)));
        }
        config.enabled = text == "true";
        return config;
    }
    if (!field.value.IsMap()) {
        owner.fail(field, fmt::format("'{}' must be true, false or a map with verify, ca_file, sni, cert, key, "
                                      "min_version, got {}",
                                      field.path, describe(field.value)));
    }
    MapReader tls(owner.file(), field.value, field.path, {"verify", "ca_file", "sni", "cert", "key", "min_version"});
    config.enabled = true;
    tls.read_bool("verify", config.verify);
    if (const Field* ca = tls.find("ca_file")) {
        if (!config.verify) {
            tls.fail(*ca,
                     fmt::format("'{}' is set but 'verify' is false: nothing would be checked against it", ca->path));
        }
        config.ca_file = read_path(tls, *ca);
        check_tls_file(tls, *ca, [&] { net::check_ca_file(config.ca_file); });
    }
    if (const Field* sni = tls.find("sni")) {
        config.sni = tls.scalar(*sni, "a host name");
        try {
            check_host(config.sni);
        } catch (const std::invalid_argument& e) {
            tls.fail(*sni, fmt::format("'{}': {}", sni->path, e.what()));
        }
        in_addr v4{};
        if (inet_pton(AF_INET, config.sni.c_str(), &v4) == 1) {
            tls.fail(*sni, fmt::format("'{}' must be a host name: TLS sends no IP address as SNI", sni->path));
        }
    }
    if (tls.find("cert") || tls.find("key")) read_certificate_files(tls, config.client_certificate, warnings);
    read_tls_version(tls, "min_version", config.min_version);
    return config;
}

// One backend: "host:port", or a map with its address and options.
// `upstream_tls` is `upstream.tls`, which a backend's own `tls:` replaces.
BackendConfig read_backend(const std::string& file, const YAML::Node& item, const std::string& path,
                           const net::TlsUpstreamConfig& upstream_tls, Warnings& warnings) {
    BackendConfig backend;
    backend.tls = upstream_tls;
    if (item.IsMap()) {
        MapReader map(file, item, path, {"address", "weight", "backup", "max_connections", "health", "tls"});
        const Field* address = map.find("address");
        if (!address) map.fail_here(fmt::format("'{}.address' is required", path));
        backend.address = map.scalar(*address, "a host:port string");
        backend.endpoint = field_host_port(file, *address, false);
        map.read_integer<uint32_t>("weight", backend.weight, pool::kMinWeight, pool::kMaxWeight);
        map.read_bool("backup", backend.backup);
        map.read_integer<uint32_t>("max_connections", backend.max_connections, 0, 1'000'000);
        backend.health = read_check_overrides(map);
        if (const Field* tls = map.find("tls")) backend.tls = read_upstream_tls(map, *tls, warnings);
        return backend;
    }
    Field field{path, item, item};
    backend.address = scalar_text(file, field, "a host:port string or a map with 'address' and 'weight'");
    backend.endpoint = field_host_port(file, field, false);
    return backend;
}

// One `listen:` entry: an address string, or a map with `address` (and, with TLS, its `tls:` section).
ListenerConfig read_listener(const std::string& file, const YAML::Node& item, const std::string& path,
                             Warnings& warnings) {
    ListenerConfig listener;
    if (item.IsMap()) {
        MapReader map(file, item, path, {"address", "tls"});
        const Field* address = map.find("address");
        if (!address) map.fail_here(fmt::format("'{}.address' is required", path));
        listener.address = field_listen_address(file, *address);
        if (const Field* tls = map.find("tls")) {
            // "tls:" alone: the section's whole content is missing; say so at the key.
            if (tls->value.IsNull()) {
                map.fail(*tls,
                         fmt::format("'{}.certificates' is required: a list of {{cert, key}} PEM files", tls->path));
            }
            listener.tls = read_listener_tls(map, warnings);
        }
        return listener;
    }
    listener.address = field_listen_address(file, Field{path, item, item});
    return listener;
}

// `listen:` one address, or a list whose entries are addresses or maps. The same address twice is an error: the
// second bind would fail at start, and lb --check should say so first.
std::vector<ListenerConfig> read_listeners(const MapReader& top, Warnings& warnings) {
    const Field* field = top.find("listen");
    if (!field) return Config{}.listeners;
    if (!field->value.IsSequence()) return {read_listener(top.file(), field->value, "listen", warnings)};
    if (field->value.size() == 0) top.fail(*field, "'listen' must name at least one address");
    // `listen: [::1]:8080` unquoted is a YAML flow list holding "::1": say what happened rather than "no port".
    if (field->value.Style() == YAML::EmitterStyle::Flow && field->value.size() == 1 && field->value[0].IsScalar() &&
        std::count(field->value[0].Scalar().begin(), field->value[0].Scalar().end(), ':') > 1) {
        top.fail(*field,
                 "'listen' must be a host:port or unix:PATH string (quote IPv6 addresses: \"[::1]:8080\"), "
                 "got a list");
    }
    std::vector<ListenerConfig> listeners;
    for (size_t i = 0; i < field->value.size(); ++i) {
        const YAML::Node& item = field->value[i];
        std::string path = fmt::format("listen[{}]", i);
        ListenerConfig listener = read_listener(top.file(), item, path, warnings);
        for (const auto& earlier : listeners) {
            bool same = earlier.address == listener.address;
            bool both_any_port = !listener.address.is_unix() && listener.address.tcp.port == 0;
            if (same && !both_any_port) {
                fail_at(top.file(), item.Mark(),
                        fmt::format("'{}': {} is already listed", path, listener.address.to_string()));
            }
        }
        listeners.push_back(std::move(listener));
    }
    return listeners;
}

// Two entries for one host:port would double its share and confuse metrics that are keyed by address. Names
// compare case-insensitively, as DNS does; addresses are compared as written, not resolved.
std::string backend_identity(const HostPort& endpoint) {
    std::string host = endpoint.host;
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    return fmt::format("{}|{}", host, endpoint.port);
}

// Backends as they are read, pool by pool, with where each was listed.
struct BackendList {
    std::vector<BackendConfig> backends;
    std::vector<std::string> identities;  // backend_identity() of each
    std::vector<std::string> paths;       // "backends[0]", "pools.api.backends[1]"
};

// A non-empty list of backends at `field` (the top-level `backends:` or a pool's). The same host:port twice, in one
// pool or in two, is refused: health, metrics and the admin API know a backend by it.
void read_backend_list(const std::string& file, const Field& field, size_t pool,
                       const net::TlsUpstreamConfig& upstream_tls, BackendList& list, Warnings& warnings) {
    if (!field.value.IsSequence() || field.value.size() == 0) {
        fail_field(file, field,
                   fmt::format("'{}' must be a non-empty list of host:port strings or maps, got {}", field.path,
                               field.value.IsSequence() ? "an empty list" : describe(field.value)));
    }
    for (size_t i = 0; i < field.value.size(); ++i) {
        const YAML::Node& item = field.value[i];
        std::string path = fmt::format("{}[{}]", field.path, i);
        BackendConfig backend = read_backend(file, item, path, upstream_tls, warnings);
        backend.pool = pool;
        std::string identity = backend_identity(backend.endpoint);
        auto earlier = std::find(list.identities.begin(), list.identities.end(), identity);
        if (earlier != list.identities.end()) {
            fail_at(file, item.Mark(),
                    fmt::format("duplicate backend '{}' in '{}' (already listed as '{}')", backend.address, path,
                                list.paths[static_cast<size_t>(earlier - list.identities.begin())]));
        }
        list.identities.push_back(std::move(identity));
        list.paths.push_back(std::move(path));
        list.backends.push_back(std::move(backend));
    }
}

Timeouts read_timeouts(const MapReader& top) {
    MapReader map =
        top.section("timeouts", {"connect", "client_header", "client_keepalive", "client_send", "upstream_response",
                                 "upstream_keepalive", "drain", "drain_idle_grace", "tunnel"});
    Timeouts t;
    map.read_duration("connect", t.connect);
    map.read_duration("client_header", t.client_header);
    map.read_duration("client_keepalive", t.client_keepalive);
    map.read_duration("client_send", t.client_send);
    map.read_duration("upstream_response", t.upstream_response);
    map.read_duration("upstream_keepalive", t.upstream_keepalive);
    map.read_duration("drain", t.drain);
    map.read_duration("drain_idle_grace", t.drain_idle_grace);
    map.read_duration("tunnel", t.tunnel);
    return t;
}

Limits read_limits(const MapReader& top) {
    MapReader map = top.section("limits", {"header_bytes", "header_count", "uri_bytes", "request_body_bytes",
                                           "client_connections", "buffer_per_connection", "buffer_memory"});
    Limits l;
    map.read_size("header_bytes", l.header_bytes, kKiB, kMiB);
    map.read_integer<uint32_t>("header_count", l.header_count, 1, 10'000);
    map.read_size("uri_bytes", l.uri_bytes, 256, kMiB);
    map.read_size("request_body_bytes", l.request_body_bytes, 0, std::numeric_limits<uint64_t>::max());
    map.read_integer_or<uint32_t>("client_connections", l.client_connections, 1, 10'000'000, "auto", 0);
    map.read_size("buffer_per_connection", l.buffer_per_connection, 16 * kKiB, 64 * kMiB);
    map.read_size("buffer_memory", l.buffer_memory, 16 * kMiB, std::numeric_limits<uint64_t>::max());
    return l;
}

// `algorithm:` with its `peak_ewma:` and `consistent_hash:` sections. Each value is checked with the pool's own
// check_balancer_options(), so the config accepts exactly what make_balancer() can build, and the message
// points at the key that is wrong.
// `base`: what the keys left out keep (a pool's: the top level's).
pool::BalancerOptions read_balancer(const MapReader& top, const pool::BalancerOptions& base = {}) {
    pool::BalancerOptions options = base;
    // Fails at `field` if the options so far, with this one value changed, are not something the pool can use.
    auto check = [&](const Field& field) {
        if (std::optional<std::string> error = pool::check_balancer_options(options)) {
            top.fail(field, fmt::format("'{}': {}", field.path, *error));
        }
    };

    if (const Field* field = top.find("algorithm")) {
        options.algorithm = top.scalar(*field, "an algorithm name such as round_robin");
        if (std::optional<std::string> error = pool::check_balancer_name(options.algorithm)) {
            top.fail(*field, fmt::format("'algorithm': {}", *error));
        }
    }

    MapReader ewma = top.section("peak_ewma", {"decay", "default_latency", "failure_penalty"});
    Millis decay = std::chrono::duration_cast<Millis>(options.peak_ewma.decay);
    Millis default_latency = std::chrono::duration_cast<Millis>(options.peak_ewma.default_latency);
    Millis failure_penalty = std::chrono::duration_cast<Millis>(options.peak_ewma.failure_penalty);
    ewma.read_duration("decay", decay);
    ewma.read_duration("default_latency", default_latency, 0ms);
    ewma.read_duration("failure_penalty", failure_penalty, 0ms);
    options.peak_ewma.decay = decay;
    options.peak_ewma.default_latency = default_latency;
    options.peak_ewma.failure_penalty = failure_penalty;

    MapReader hash = top.section("consistent_hash", {"key", "name", "table_size"});
    pool::ConsistentHashOptions& ch = options.consistent_hash;
    const Field* key = hash.find("key");
    if (key) {
        std::string text = hash.scalar(*key, "header, cookie, client_ip or path");
        std::optional<pool::HashKeySource> source = pool::parse_hash_key_source(text);
        if (!source) {
            hash.fail(*key, fmt::format("'{}' must be header, cookie, client_ip or path, got {}", key->path,
                                        describe(key->value)));
        }
        ch.key_source = *source;
    }
    bool named = ch.key_source == pool::HashKeySource::header || ch.key_source == pool::HashKeySource::cookie;
    if (const Field* name = hash.find("name")) {
        if (!named) {
            hash.fail(*name, fmt::format("'{}' is only used with key header or cookie, and key is {}", name->path,
                                         pool::hash_key_source_name(ch.key_source)));
        }
        ch.key_name = hash.scalar(*name, "a header or cookie name");
        if (ch.key_name.empty()) hash.fail(*name, fmt::format("'{}' must not be empty", name->path));
    } else if (named) {
        hash.fail(*key,
                  fmt::format("'consistent_hash.name' is required with key {}: the {} to hash",
                              pool::hash_key_source_name(ch.key_source), pool::hash_key_source_name(ch.key_source)));
    }
    if (const Field* size = hash.find("table_size")) {
        hash.read_integer<uint32_t>("table_size", ch.table_size, 3, std::numeric_limits<uint32_t>::max());
        check(*size);
    }

    // Options for an algorithm that is not in use are most likely a forgotten `algorithm:` line.
    for (std::string_view section : {"peak_ewma", "consistent_hash"}) {
        const Field* field = top.find(section);
        if (field && options.algorithm != section) {
            fail_at(top.file(), field->key.Mark(),
                    fmt::format("'{}' is set but 'algorithm' is '{}'; set 'algorithm: {}' or remove the section",
                                section, options.algorithm, section));
        }
    }
    if (std::optional<std::string> error = pool::check_balancer_options(options)) {
        top.fail_here(fmt::format("algorithm options: {}", *error));  // the checks above should have caught it
    }
    return options;
}

// `queue:` at the top level, or a pool's, whose unset keys keep `base` (the top level's).
QueueConfig read_queue(const MapReader& top, const QueueConfig& base = {}) {
    MapReader map = top.section("queue", {"size", "timeout"});
    QueueConfig q = base;
    map.read_integer<uint32_t>("size", q.size, 0, 1'000'000);
    map.read_duration("timeout", q.timeout);
    return q;
}

health::HealthConfig read_health(const MapReader& top) {
    MapReader map = top.section(
        "health", {"enabled", "path", "interval", "timeout", "rise", "fall", "expected_statuses", "max_response_time",
                   "host", "port", "jitter", "initial_state", "passive", "slow_start", "panic"});
    health::HealthConfig h;
    map.read_bool("enabled", h.enabled);
    read_check_path(map, "path", h.path);
    map.read_duration("interval", h.interval);
    map.read_duration("timeout", h.timeout);
    map.read_integer<uint32_t>("rise", h.rise, 1, kMaxThreshold);
    map.read_integer<uint32_t>("fall", h.fall, 1, kMaxThreshold);
    read_expected_statuses(map, h.expected_statuses);
    map.read_duration("max_response_time", h.max_response_time);
    if (const Field* field = map.find("max_response_time"); field && *h.max_response_time > h.timeout) {
        map.fail(*field, fmt::format("'{}' ({}) must not be above 'health.timeout' ({}): the timeout ends the check "
                                     "first",
                                     field->path, format_duration(*h.max_response_time), format_duration(h.timeout)));
    }
    read_check_host(map, "host", h.host);
    read_check_port(map, "port", h.port);
    read_jitter(map, h.jitter);
    if (const Field* field = map.find("initial_state")) {
        std::string text = map.scalar(*field, "healthy or unhealthy");
        if (text != "healthy" && text != "unhealthy") {
            map.fail(*field,
                     fmt::format("'{}' must be healthy or unhealthy, got {}", field->path, describe(field->value)));
        }
        h.initial_state = text == "healthy" ? health::InitialState::healthy : health::InitialState::unhealthy;
    }

    MapReader passive = map.section("passive", {"consecutive_failures", "base_ejection_time", "max_ejection_time",
                                                "max_ejected_percent", "count_5xx", "passed_check_ends_ejection"});
    health::PassiveHealthConfig& p = h.passive;
    passive.read_integer<uint32_t>("consecutive_failures", p.consecutive_failures, 0, kMaxThreshold);
    passive.read_duration("base_ejection_time", p.base_ejection_time);
    passive.read_duration("max_ejection_time", p.max_ejection_time);
    passive.read_integer<uint32_t>("max_ejected_percent", p.max_ejected_percent, 0, 100);
    passive.read_bool("count_5xx", p.count_5xx);
    passive.read_bool("passed_check_ends_ejection", p.passed_check_ends_ejection);
    if (p.max_ejection_time < p.base_ejection_time) {
        // Point at the one that was written; with both written, at the maximum.
        const Field* field = passive.find("max_ejection_time");
        if (!field) field = passive.find("base_ejection_time");
        passive.fail(*field, fmt::format("'health.passive.max_ejection_time' ({}) must not be below "
                                         "'health.passive.base_ejection_time' ({})",
                                         format_duration(p.max_ejection_time), format_duration(p.base_ejection_time)));
    }

    map.read_duration("slow_start", h.slow_start, 0ms);
    map.read_bool("panic", h.panic);
    return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Pools and routes.

// The shadowed-route check is quadratic: 10,000 routes still check in about a second.
constexpr size_t kMaxRoutes = 10'000;

// A pool or route name appears in logs, /status and metric labels: keep it to what needs no quoting anywhere.
bool is_plain_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

// Fills unset health keys of each backend in `pool` from the pool's own `health:`.
void apply_pool_health(const health::CheckOverrides& pool_health, std::vector<BackendConfig>& backends, size_t first) {
    for (size_t i = first; i < backends.size(); ++i) {
        health::CheckOverrides& own = backends[i].health;
        if (!own.path) own.path = pool_health.path;
        if (!own.interval) own.interval = pool_health.interval;
        if (!own.timeout) own.timeout = pool_health.timeout;
        if (!own.rise) own.rise = pool_health.rise;
        if (!own.fall) own.fall = pool_health.fall;
        if (!own.port) own.port = pool_health.port;
        if (!own.host) own.host = pool_health.host;
    }
}

// `backends:` (the pool "default") and `pools:`, into config.backends and config.pools. Each pool's algorithm and
// retries fall back to the top level's, already in `config`.
void read_pools(const MapReader& top, const net::TlsUpstreamConfig& upstream_tls, Config& config) {
    const Field* top_backends = top.find("backends");
    const Field* pools = top.find("pools");
    if (!top_backends && !pools) {
        top.fail_here("'backends' is required: list at least one backend, e.g. backends: [\"127.0.0.1:9001\"]");
    }
    BackendList list;
    if (top_backends) {
        read_backend_list(top.file(), *top_backends, 0, upstream_tls, list, config.warnings);
        config.pools.push_back({"default", 0, list.backends.size()});
    }
    if (pools) {
        if (!pools->value.IsMap() || pools->value.size() == 0) {
            top.fail(*pools, fmt::format("'pools' must be a map from pool names to pools, got {}",
                                         pools->value.IsMap() ? "an empty map" : describe(pools->value)));
        }
        for (auto it = pools->value.begin(); it != pools->value.end(); ++it) {
            const std::string name = it->first.IsScalar() ? it->first.Scalar() : std::string();
            if (!is_plain_name(name)) {
                fail_at(top.file(), it->first.Mark(),
                        fmt::format("pool names are letters, digits, '_', '-' and '.' (at most 64), got {}",
                                    describe(it->first)));
            }
            for (const PoolConfig& earlier : config.pools) {
                if (earlier.name != name) continue;
                fail_at(top.file(), it->first.Mark(),
                        name == "default" && top_backends
                            ? std::string("pool 'default' is the top-level 'backends': name this pool otherwise")
                            : fmt::format("duplicate pool '{}'", name));
            }
            const std::string path = "pools." + name;
            MapReader map(
                top.file(), it->second, path,
                {"backends", "algorithm", "peak_ewma", "consistent_hash", "health", "retries", "queue", "upstream"});
            const Field* backends = map.find("backends");
            if (!backends) map.fail_here(fmt::format("'{}.backends' is required", path));
            PoolConfig pool{name, list.backends.size(), 0};
            // Its own `upstream:`, each key falling back to the top level's.
            MapReader upstream = map.section("upstream", {"keepalive", "tls"});
            if (upstream.find("keepalive")) {
                pool.upstream_keepalive = config.upstream_keepalive;
                upstream.read_integer_or<unsigned>("keepalive", *pool.upstream_keepalive, 0, 1'000'000, "unlimited",
                                                   kUnlimited);
            }
            net::TlsUpstreamConfig pool_tls = upstream_tls;
            if (const Field* tls = upstream.find("tls")) pool_tls = read_upstream_tls(upstream, *tls, config.warnings);
            if (map.find("queue")) pool.queue = read_queue(map, config.queue);
            read_backend_list(top.file(), *backends, config.pools.size(), pool_tls, list, config.warnings);
            pool.backend_count = list.backends.size() - pool.first_backend;
            if (map.find("algorithm") || map.find("peak_ewma") || map.find("consistent_hash")) {
                pool.balancer = read_balancer(map, config.balancer);
            }
            map.read_integer<unsigned>("retries", pool.retries, 0, 10);
            apply_pool_health(read_check_overrides(map), list.backends, pool.first_backend);
            config.pools.push_back(std::move(pool));
        }
    }
    config.backends = std::move(list.backends);
    // Each distinct queue.timeout of a pool is a timer lane in every worker, as routes' own timeouts are.
    std::vector<Millis> lengths;
    for (const PoolConfig& pool : config.pools) {
        if (pool.queue && std::find(lengths.begin(), lengths.end(), pool.queue->timeout) == lengths.end()) {
            lengths.push_back(pool.queue->timeout);
        }
    }
    constexpr size_t kMostPoolQueueTimeouts = 40;
    if (lengths.size() > kMostPoolQueueTimeouts) {
        top.fail(*pools, fmt::format("pools use {} different queue.timeout lengths; at most {}", lengths.size(),
                                     kMostPoolQueueTimeouts));
    }
}

// A route's `host:` as requests are compared with it: lower-case, no port, "*." only as the first label.
std::string read_route_host(const MapReader& map, const Field& field) {
    std::string host = map.scalar(field, "a host name such as api.example.com or *.example.com");
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view name = host;
    if (name.starts_with("*.")) name.remove_prefix(2);
    const bool valid = !name.empty() && name.size() <= 253 && !name.starts_with('.') && !name.ends_with('.') &&
                       std::all_of(name.begin(), name.end(), [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
                       });
    if (!valid) {
        map.fail(field, fmt::format("'{}' must be a host name without port (a leading '*.' matches any subdomain), "
                                    "got {}",
                                    field.path, describe(field.value)));
    }
    return host;
}

// A path to compare raw request paths with: starts with '/', no space, control character or '?'.
std::string read_route_path(const MapReader& map, const Field& field) {
    std::string path = map.scalar(field, "a path such as /static/");
    const bool valid = path.starts_with('/') && std::none_of(path.begin(), path.end(), [](char c) {
                           return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#';
                       });
    if (!valid) {
        map.fail(field, fmt::format("'{}' must start with '/' and hold no space, '?', '#' or control character, got "
                                    "{}",
                                    field.path, describe(field.value)));
    }
    return path;
}

route::RouteMatch read_route_match(const MapReader& route) {
    MapReader map = route.section("match", {"host", "path_prefix", "path", "method", "header"});
    route::RouteMatch match;
    if (const Field* field = map.find("host")) match.host = read_route_host(map, *field);
    if (const Field* field = map.find("path_prefix")) match.path_prefix = read_route_path(map, *field);
    if (const Field* field = map.find("path")) match.path = read_route_path(map, *field);
    if (const Field* field = map.find("method")) {
        match.method = map.scalar(*field, "a method such as GET");
        // Methods are case-sensitive (RFC 9110 §9.1), and llhttp knows only upper-case ones.
        const bool upper_token =
            !match.method.empty() && std::all_of(match.method.begin(), match.method.end(),
                                                 [](char c) { return (c >= 'A' && c <= 'Z') || c == '-'; });
        if (!upper_token) {
            map.fail(*field, fmt::format("'{}' must be a method in capitals such as GET or POST, got {}", field->path,
                                         describe(field->value)));
        }
    }
    if (map.find("header")) {
        MapReader header = map.section("header", {"name", "value"});
        const Field* name = header.find("name");
        if (!name) header.fail_here(fmt::format("'{}.header.name' is required", map.path()));
        route::HeaderMatch condition{header.scalar(*name, "a header name"), std::nullopt};
        if (!is_field_name(condition.name)) {
            header.fail(*name, fmt::format("'{}' must be a header name, got {}", name->path, describe(name->value)));
        }
        if (const Field* value = header.find("value")) condition.value = header.scalar(*value, "a header value");
        match.headers.push_back(std::move(condition));
    }
    return match;
}

// `set:` and `add:` maps and a `remove:` list of header names. `request` says which direction: a request's Host
// may be set but not removed, and lb's own X-Forwarded-* and request id fields are not a route's to write.
http::HeaderRewrite read_header_rewrite(const MapReader& route, std::string_view key, bool request,
                                        const Config& config) {
    MapReader map = route.section(key, {"set", "add", "remove"});
    http::HeaderRewrite rewrite;
    auto check_name = [&](const MapReader& where, const Field& field, const std::string& name, bool removing,
                          bool adding) {
        if (!is_field_name(name)) {
            where.fail(field, fmt::format("'{}': {} is not a header name", field.path, describe(YAML::Node(name))));
        }
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string reason;
        if (http::is_framing_field(lower)) reason = "lb writes the fields that frame messages and connections";
        if (request && (lower == "x-forwarded-for" || lower == "x-forwarded-proto")) reason = "lb writes it";
        if (config.request_id.enabled && http::equals_ignore_case(lower, config.request_id.header)) {
            reason = "it carries the request id";
        }
        for (const ListenerConfig& listener : config.listeners) {
            if (request && listener.tls && http::equals_ignore_case(lower, listener.tls->client_subject_header)) {
                reason = "lb sets it from the client certificate";
            }
        }
        if (request && lower == "host" && (removing || adding)) {
            reason = "an HTTP/1.1 request has exactly one; 'set' it instead";
        }
        for (const auto* written : {&rewrite.set, &rewrite.add}) {
            for (const auto& [earlier, value] : *written) {
                if (http::equals_ignore_case(earlier, name)) reason = "it is already set or added by this route";
            }
        }
        if (!reason.empty())
            where.fail(field, fmt::format("'{}': '{}' cannot be changed: {}", field.path, name, reason));
    };
    for (auto [which, fields] : {std::pair{"set", &rewrite.set}, std::pair{"add", &rewrite.add}}) {
        const Field* field = map.find(which);
        if (!field) continue;
        if (!field->value.IsMap()) {
            map.fail(*field, fmt::format("'{}' must be a map from header names to values, got {}", field->path,
                                         describe(field->value)));
        }
        for (auto it = field->value.begin(); it != field->value.end(); ++it) {
            Field entry{child_path(field->path, it->first.IsScalar() ? it->first.Scalar() : "?"), it->first,
                        it->second};
            std::string name = scalar_text(map.file(), Field{entry.path, it->first, it->first}, "a header name");
            check_name(map, entry, name, false, std::string_view(which) == "add");
            std::string value = scalar_text(map.file(), entry, "a header value");
            const bool clean = std::none_of(value.begin(), value.end(), [](char c) {
                return (static_cast<unsigned char>(c) < ' ' && c != '\t') || c == 0x7f;
            });
            if (!clean) map.fail(entry, fmt::format("'{}' must not hold control characters", entry.path));
            fields->emplace_back(std::move(name), std::move(value));
        }
    }
    if (const Field* field = map.find("remove")) {
        if (!field->value.IsSequence()) {
            map.fail(*field,
                     fmt::format("'{}' must be a list of header names, got {}", field->path, describe(field->value)));
        }
        for (size_t i = 0; i < field->value.size(); ++i) {
            Field entry{fmt::format("{}[{}]", field->path, i), field->value[i], field->value[i]};
            std::string name = scalar_text(map.file(), entry, "a header name");
            check_name(map, entry, name, true, false);
            rewrite.remove.push_back(std::move(name));
        }
    }
    return rewrite;
}

void read_routes(const MapReader& top, Config& config) {
    const Field* field = top.find("routes");
    if (!field) {
        // Without routes, every request goes to the one pool there is, or to `default` among several.
        if (config.pools.size() > 1 && config.pools.front().name != "default") {
            top.fail(*top.find("pools"),
                     "'routes' is required to choose among several pools (or name one 'default' "
                     "with the top-level 'backends')");
        }
        return;
    }
    if (!field->value.IsSequence() || field->value.size() == 0) {
        top.fail(*field, fmt::format("'routes' must be a non-empty list of routes, got {}",
                                     field->value.IsSequence() ? "an empty list" : describe(field->value)));
    }
    if (field->value.size() > kMaxRoutes) top.fail(*field, fmt::format("'routes' holds at most {} routes", kMaxRoutes));
    for (size_t i = 0; i < field->value.size(); ++i) {
        const YAML::Node& item = field->value[i];
        const std::string path = fmt::format("routes[{}]", i);
        MapReader map(
            top.file(), item, path,
            {"name", "match", "pool", "request_headers", "response_headers", "strip_prefix", "retries", "timeouts"});
        RouteConfig route;
        route.name = path;
        if (const Field* name = map.find("name")) {
            route.name = map.scalar(*name, "a route name");
            if (!is_plain_name(route.name)) {
                map.fail(*name, fmt::format("'{}': route names are letters, digits, '_', '-' and '.' (at most 64), "
                                            "got {}",
                                            name->path, describe(name->value)));
            }
            for (const RouteConfig& earlier : config.routes) {
                if (earlier.name == route.name) map.fail(*name, fmt::format("duplicate route name '{}'", route.name));
            }
        }
        route.line = item.Mark().line + 1;
        route.column = item.Mark().column + 1;
        const Field* pool = map.find("pool");
        if (!pool)
            map.fail_here(fmt::format("'{}.pool' is required: the pool that serves what the route matches", path));
        const std::string pool_name = map.scalar(*pool, "a pool name");
        auto named = std::find_if(config.pools.begin(), config.pools.end(),
                                  [&](const PoolConfig& p) { return p.name == pool_name; });
        if (named == config.pools.end()) {
            std::vector<std::string_view> names;
            for (const PoolConfig& p : config.pools) names.push_back(p.name);
            map.fail(*pool,
                     fmt::format("'{}': unknown pool '{}' (pools: {})", pool->path, pool_name, fmt::join(names, ", ")));
        }
        route.pool = static_cast<size_t>(named - config.pools.begin());
        route.match = read_route_match(map);
        route.request_headers = read_header_rewrite(map, "request_headers", true, config);
        route.response_headers = read_header_rewrite(map, "response_headers", false, config);
        if (const Field* strip = map.find("strip_prefix")) route.strip_prefix = read_route_path(map, *strip);
        map.read_integer<unsigned>("retries", route.retries, 0, 10);
        MapReader timeouts = map.section("timeouts", {"connect", "upstream_response"});
        timeouts.read_duration("connect", route.connect_timeout);
        timeouts.read_duration("upstream_response", route.upstream_response_timeout);
        config.routes.push_back(std::move(route));
    }
    // Each distinct length of a route's own timeout is a timer lane (two: connect and response) in every worker,
    // and a worker has at most DeadlineQueue::kMaxLanes: keep them few.
    std::vector<Millis> lengths;
    for (const RouteConfig& route : config.routes) {
        for (const std::optional<Millis>& own : {route.connect_timeout, route.upstream_response_timeout}) {
            if (own && std::find(lengths.begin(), lengths.end(), *own) == lengths.end()) lengths.push_back(*own);
        }
    }
    constexpr size_t kMostRouteTimeouts = 100;
    if (lengths.size() > kMostRouteTimeouts) {
        top.fail(*field, fmt::format("routes use {} different timeout lengths; at most {}", lengths.size(),
                                     kMostRouteTimeouts));
    }
    // A route no request can reach is almost always a mistake in the order: say so, but load.
    std::vector<route::RouteMatch> matches;
    for (const RouteConfig& route : config.routes) matches.push_back(route.match);
    for (const route::ShadowedRoute& shadowed : route::find_shadowed_routes(matches)) {
        const RouteConfig& route = config.routes[shadowed.route];
        config.warnings.push_back({top.file(), route.line, route.column,
                                   fmt::format("'routes[{}]' can never match: 'routes[{}]' (line {}) takes every "
                                               "request it would",
                                               shadowed.route, shadowed.by, config.routes[shadowed.by].line)});
    }
}

RequestIdConfig read_request_id(const MapReader& top) {
    MapReader map = top.section("request_id", {"enabled", "header"});
    RequestIdConfig request_id;
    map.read_bool("enabled", request_id.enabled);
    if (const Field* field = map.find("header")) {
        request_id.header = map.scalar(*field, "a header name");
        // A name lb gives another meaning to would change how the request is framed or routed.
        constexpr std::string_view kReserved[] = {
            "host", "content-length", "transfer-encoding", "connection",      "keep-alive",       "proxy-connection",
            "te",   "trailer",        "upgrade",           "x-forwarded-for", "x-forwarded-proto"};
        std::string lower = request_id.header;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        bool reserved = std::find(std::begin(kReserved), std::end(kReserved), lower) != std::end(kReserved);
        if (!is_field_name(request_id.header) || reserved) {
            map.fail(*field, fmt::format("'{}' must be a header name lb does not set or read itself, got {}",
                                         field->path, describe(field->value)));
        }
    }
    return request_id;
}

// The admin token: one line of printable characters (what follows "Bearer " in a header), at most 4 KiB, so a
// wrong path (a binary, a huge log) fails here and not as an unexplained 401.
std::string read_admin_token(const MapReader& map, const Field& field, const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (!file) map.fail(field, fmt::format("'{}': cannot read '{}': {}", field.path, path, std::strerror(errno)));
    std::string token(4097, '\0');
    size_t n = std::fread(token.data(), 1, token.size(), file);
    std::fclose(file);
    token.resize(n);
    if (n > 4096) map.fail(field, fmt::format("'{}': '{}' is larger than 4 KiB", field.path, path));
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    if (token.empty()) map.fail(field, fmt::format("'{}': '{}' is empty", field.path, path));
    for (char c : token) {
        if (c <= ' ' || c > '~') {
            map.fail(field,
                     fmt::format("'{}': the token in '{}' must be one word of printable ASCII", field.path, path));
        }
    }
    return token;
}

AdminConfig read_admin(const MapReader& top) {
    MapReader map = top.section("admin", {"enabled", "listen", "token_file"});
    AdminConfig admin;
    map.read_bool("enabled", admin.enabled);
    map.read_host_port("listen", admin.listen, true);
    if (const Field* field = map.find("token_file")) {
        admin.token_file = read_path(map, *field);
        admin.token = read_admin_token(map, *field, admin.token_file);
    }
    return admin;
}

// An access log lb can write: an existing file it may write to, or a new one in a directory it may create files in.
// Found here, with the key's position, rather than as a start-up or reload failure.
void check_log_path(const MapReader& map, const Field& field, const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) map.fail(field, fmt::format("'{}': '{}' is a directory", field.path, path));
        if (::access(path.c_str(), W_OK) != 0) {
            map.fail(field, fmt::format("'{}': cannot write to '{}': {}", field.path, path, std::strerror(errno)));
        }
        return;
    }
    if (errno != ENOENT) {
        map.fail(field, fmt::format("'{}': cannot use '{}': {}", field.path, path, std::strerror(errno)));
    }
    size_t slash = path.rfind('/');
    std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    if (::access(directory.c_str(), W_OK | X_OK) != 0) {
        map.fail(field, fmt::format("'{}': cannot create '{}' in '{}': {}", field.path, path, directory,
                                    std::strerror(errno)));
    }
}

// `access_log:` on when the section is there: `path` is required, `format` is json unless it says text.
access_log::AccessLogConfig read_access_log(const MapReader& top) {
    access_log::AccessLogConfig log;
    const Field* section = top.find("access_log");
    if (!section) return log;
    MapReader map = top.section("access_log", {"path", "format"});
    const Field* path = map.find("path");
    if (!path) {
        fail_at(top.file(), section->key.Mark(),
                fmt::format("'access_log.path' is required: a file to append to, or {}", access_log::kStdout));
    }
    log.path = read_path(map, *path);
    if (log.path != access_log::kStdout) check_log_path(map, *path, log.path);
    if (const Field* format = map.find("format")) {
        std::string text = map.scalar(*format, "json or text");
        if (text != "json" && text != "text") {
            map.fail(*format, fmt::format("'{}' must be json or text, got {}", format->path, describe(format->value)));
        }
        log.format = text == "json" ? access_log::Format::json : access_log::Format::text;
    }
    log.enabled = true;
    return log;
}

Config read_config(const std::string& source, const YAML::Node& root) {
    MapReader top(
        source, root, "",
        {"listen", "workers", "backends", "pools", "routes", "timeouts", "limits", "retries", "upstream", "algorithm",
         "peak_ewma", "consistent_hash", "queue", "health", "admin", "request_id", "metrics", "access_log"});
    Config config;
    config.source = source;
    config.listeners = read_listeners(top, config.warnings);
    config.workers = read_workers(top);
    // `upstream:` before the backends, whose default TLS it holds; its warnings come first, as it is read.
    MapReader upstream = top.section("upstream", {"keepalive", "tls"});
    upstream.read_integer_or<unsigned>("keepalive", config.upstream_keepalive, 0, 1'000'000, "unlimited", kUnlimited);
    net::TlsUpstreamConfig upstream_tls;
    if (const Field* tls = upstream.find("tls")) upstream_tls = read_upstream_tls(upstream, *tls, config.warnings);
    // What pools fall back to, before the pools.
    top.read_integer<unsigned>("retries", config.retries, 0, 10);
    config.balancer = read_balancer(top);
    config.request_id = read_request_id(top);
    config.queue = read_queue(top);
    read_pools(top, upstream_tls, config);
    read_routes(top, config);
    config.timeouts = read_timeouts(top);
    config.limits = read_limits(top);
    config.health = read_health(top);
    config.admin = read_admin(top);
    top.section("metrics", {"enabled"}).read_bool("enabled", config.metrics_enabled);
    config.access_log = read_access_log(top);
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

ListenAddress parse_listen_address(const std::string& text) { return parse_listen_address_impl(text); }

std::string ConfigWarning::to_string() const { return fmt::format("{}:{}:{}: {}", file, line, column, message); }

std::string ListenAddress::to_string() const {
    if (is_unix()) return fmt::format("{}{}", kUnixPrefix, unix_path);
    if (tcp.host.find(':') != std::string::npos) return fmt::format("[{}]:{}", tcp.host, tcp.port);
    return fmt::format("{}:{}", tcp.host, tcp.port);
}

namespace {

// Walks a YAML stream's documents without building them, to say whether there is more than one with content.
// Not YAML::LoadAll: yaml-cpp 0.7's LoadAll never returns on a stream that starts with ',' (its parser yields
// empty documents without moving on), found by fuzz/config_loader.cpp; walking with a bound ends that.
class DocumentCounter final : public YAML::EventHandler {
  public:
    void OnDocumentStart(const YAML::Mark& mark) override {
        ++documents;
        start = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { saw_content(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
        saw_content(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        saw_content(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        saw_content(mark);
    }
    void OnMapEnd() override {}

    size_t documents = 0;
    YAML::Mark start;
    std::optional<YAML::Mark> second_with_content;  // where the first content of a second document is

  private:
    void saw_content(const YAML::Mark& mark) {
        if (documents > 1 && !second_with_content) second_with_content = mark;
    }
};

}  // namespace

Config load_config_string(const std::string& yaml, const std::string& source) {
    YAML::Node document;
    try {
        // Load() would silently use the first of several documents; a second one with content is likely a
        // mistake. Empty ones, as a trailing "---" makes, are harmless, but a stream of nothing but empty
        // documents that does not end is yaml-cpp stuck on input it cannot parse.
        std::istringstream stream(yaml);
        YAML::Parser parser(stream);
        DocumentCounter counter;
        constexpr size_t kMostDocuments = 16;
        while (counter.documents < kMostDocuments && parser.HandleNextDocument(counter)) {
        }
        if (counter.second_with_content) {
            fail_at(source, *counter.second_with_content, "expected one YAML document, found a second");
        }
        if (counter.documents >= kMostDocuments) {
            fail_at(source, counter.start, "YAML syntax error: content that starts no document (a stray ',' or ']'?)");
        }
        document = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
        fail_at(source, e.mark, fmt::format("YAML syntax error: {}", e.msg));
    }
    if (document.IsNull()) throw ConfigError(source, 1, 1, "the config is empty: at least 'backends' is required");
    return read_config(source, document);
}

Config load_config_file(const std::string& path) { return load_config_string(read_file(path), path); }

}  // namespace lb::core
