// The Prometheus exposition: names follow the conventions, every family has one HELP and one TYPE line and its
// samples together, label values are escaped, and promtool accepts the whole output. Also the /proc/self reading.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/exposition.h"
#include "metrics/process_stats.h"
#include "metrics/shard_metrics.h"
#include "metrics/snapshot.h"

using namespace lb::metrics;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_snake_case(std::string_view name) {
    if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z')) return false;
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return name.find("__") == std::string_view::npos && !ends_with(name, "_");
}

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A block with every kind of metric non-zero, and a backend name that needs every escape.
struct Fixture {
    static constexpr std::string_view kWeirdName = "we\\ird\"na\nme:80";
    ShardMetrics shard{2};
    std::vector<std::string> names{"10.0.0.1:8080", std::string(kWeirdName)};

    Fixture() {
        shard.on_client_accepted();
        shard.on_client_accepted();
        shard.on_client_closed();
        shard.on_client_bytes_received(1234);
        shard.on_client_bytes_sent(56789);
        shard.on_request_done(200, 1'500'000);
        shard.on_response_sent(RequestMethodLabel::slot("GET"), 200);
        shard.on_error(ErrorKind::upstream_reset);
        shard.on_retry();
        shard.on_queue_wait();
        for (BackendIndex b = 0; b < 2; ++b) {
            shard.on_backend_response(b, MethodClass::get, 200, 700'000);
            shard.on_backend_response(b, MethodClass::delete_, 502, 3'000'000'000);
            shard.on_upstream_opened(b);
            shard.on_upstream_opened(b);
            shard.on_upstream_parked(b);
            shard.on_passive_ejection(b);
            shard.on_health_check(b, HealthResult::success);
            shard.set_backend_up(b, true);
            shard.set_backend_weight(b, 5);
        }
    }

    std::string render(bool with_process = true) const {
        const ShardMetrics* blocks[] = {&shard};
        ExpositionInfo info{
            .version = "1.2.3-\"test\"", .shards = 1, .backend_names = names, .start_time_seconds = 1700000000.25};
        if (with_process) info.process = read_process_stats();
        return render_prometheus(merge(blocks), info);
    }
};

struct Family {
    int help_lines = 0;
    int type_lines = 0;
    std::string type;
    int samples = 0;
};

// Parses the text format enough to check its structure: HELP/TYPE counts per family and that the samples of a
// family are contiguous and come after its TYPE.
std::map<std::string, Family> parse_families(const std::string& text, std::vector<std::string>& problems) {
    std::map<std::string, Family> families;
    std::set<std::string> finished;
    std::string current;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
            std::istringstream words(line.substr(7));
            std::string name;
            words >> name;
            if (name != current) {
                if (!current.empty()) finished.insert(current);
                if (finished.count(name)) problems.push_back("family split: " + name);
                current = name;
            }
            if (line[2] == 'H') {
                ++families[name].help_lines;
            } else {
                ++families[name].type_lines;
                words >> families[name].type;
            }
            continue;
        }
        const std::string sample_name = line.substr(0, line.find_first_of("{ "));
        std::string family = sample_name;
        if (families.count(current) && families[current].type == "histogram") {
            for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
                if (ends_with(sample_name, suffix)) family = sample_name.substr(0, sample_name.size() - suffix.size());
            }
        }
        if (family != current) problems.push_back("sample outside its family: " + line);
        ++families[family].samples;
    }
    return families;
}

}  // namespace

TEST_CASE("label values and help texts are escaped as the text format requires", "[metrics][exposition]") {
    CHECK(escape_label_value("plain:80") == "plain:80");
    CHECK(escape_label_value("a\\b") == "a\\\\b");
    CHECK(escape_label_value("a\"b") == "a\\\"b");
    CHECK(escape_label_value("a\nb") == "a\\nb");
    CHECK(escape_label_value("\\\"\n") == "\\\\\\\"\\n");
    CHECK(escape_help("say \"hi\"\\\n") == "say \"hi\"\\\\\\n");

    const std::string text = Fixture().render(false);
    // The raw name never appears (its newline would break the line); the escaped one does, on every backend series.
    CHECK_THAT(text, !Catch::Contains(std::string(Fixture::kWeirdName)));
    CHECK_THAT(text, Catch::Contains("lb_backend_up{backend=\"we\\\\ird\\\"na\\nme:80\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("lb_build_info{version=\"1.2.3-\\\"test\\\"\"} 1\n"));
}

TEST_CASE("metric names follow the Prometheus conventions", "[metrics][exposition]") {
    std::set<std::string_view> seen;
    for (const FamilyInfo& f : kListFamilies) {
        INFO(f.name);
        CHECK(is_snake_case(f.name));
        CHECK(f.name.rfind(f.per_backend ? "lb_backend_" : "lb_", 0) == 0);
        CHECK(seen.insert(f.name).second);
        CHECK_FALSE(f.help.empty());
        // Counters and only counters end in _total; histograms here are latencies, in base unit seconds.
        CHECK(ends_with(f.name, "_total") == (f.type == MetricType::counter));
        if (f.type == MetricType::histogram) CHECK(ends_with(f.name, "_seconds"));
        // Suffixes the format reserves for histogram and summary series.
        for (std::string_view reserved : {"_count", "_sum", "_bucket", "_created"})
            CHECK_FALSE(ends_with(f.name, reserved));
        // Units are base units: no milliseconds or kilobytes.
        for (std::string_view unit : {"_ms", "_milliseconds", "_microseconds", "_kb", "_kilobytes"}) {
            CHECK(f.name.find(unit) == std::string_view::npos);
        }
    }
}

TEST_CASE("every family has one HELP, one TYPE and contiguous samples", "[metrics][exposition]") {
    const std::string text = Fixture().render(true);
    std::vector<std::string> problems;
    const auto families = parse_families(text, problems);
    CHECK(problems.empty());
    for (const auto& problem : problems) UNSCOPED_INFO(problem);

    for (const auto& [name, family] : families) {
        INFO(name);
        CHECK(family.help_lines == 1);
        CHECK(family.type_lines == 1);
        CHECK(family.samples > 0);
    }
    // Every family of the list is exported, with the type the list gives it.
    for (const FamilyInfo& f : kListFamilies) {
        INFO(f.name);
        const auto it = families.find(std::string(f.name));
        REQUIRE(it != families.end());
        CHECK(it->second.type == (f.type == MetricType::counter ? "counter"
                                  : f.type == MetricType::gauge ? "gauge"
                                                                : "histogram"));
    }
    for (const char* name : {"lb_shards", "lb_build_info", "lb_process_start_time_seconds", "process_cpu_seconds_total",
                             "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
                             "process_max_fds", "process_virtual_memory_bytes"}) {
        INFO(name);
        CHECK(families.count(name) == 1);
    }
    CHECK_THAT(text, Catch::Contains("\nlb_shards 1\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_process_start_time_seconds 1700000000.25\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_client_connections_active 1\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_errors_total{kind=\"upstream_reset\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_errors_total{kind=\"no_backend\"} 0\n"));  // all kinds, zeros included
    CHECK_THAT(text,
               Catch::Contains("\nlb_backend_health_checks_total{backend=\"10.0.0.1:8080\",result=\"timeout\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_backend_upstream_connections_idle{backend=\"10.0.0.1:8080\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("\nlb_backend_upstream_connections_active{backend=\"10.0.0.1:8080\"} 1\n"));
    CHECK_THAT(text, Catch::Contains(
                         "\nlb_backend_requests_total{backend=\"10.0.0.1:8080\",method=\"DELETE\",code=\"502\"} 1\n"));
}

TEST_CASE("backends without a name are left out", "[metrics][exposition]") {
    ShardMetrics shard(3);
    const ShardMetrics* blocks[] = {&shard};
    const std::string names[] = {"only:1"};
    const std::string text = render_prometheus(merge(blocks), ExpositionInfo{.version = "t", .backend_names = names});
    CHECK_THAT(text, Catch::Contains("lb_backend_up{backend=\"only:1\"} 0\n"));
    CHECK(text.find("backend=\"\"") == std::string::npos);
    size_t up_lines = 0;
    for (size_t pos = 0; (pos = text.find("\nlb_backend_up{", pos)) != std::string::npos; ++pos) ++up_lines;
    CHECK(up_lines == 1);
}

TEST_CASE("process stats come from /proc/self", "[metrics][process]") {
    const ProcessStats before = read_process_stats();
    REQUIRE(before.cpu_seconds);
    REQUIRE(before.resident_memory_bytes);
    REQUIRE(before.virtual_memory_bytes);
    REQUIRE(before.open_fds);
    REQUIRE(before.start_time_seconds);
    CHECK(*before.cpu_seconds >= 0);
    CHECK(*before.resident_memory_bytes > 1024 * 1024);  // a running C++ test binary is well over 1 MiB
    CHECK(*before.virtual_memory_bytes >= *before.resident_memory_bytes);
    // Started in the past, and not before this test binary could plausibly have started (an hour of slack for slow CI).
    CHECK(*before.start_time_seconds <= now_seconds() + 1);
    CHECK(*before.start_time_seconds > now_seconds() - 3600);
    if (before.max_fds) CHECK(*before.max_fds >= *before.open_fds);

    // The fd count is exact: one more open descriptor shows as one more.
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const ProcessStats during = read_process_stats();
    ::close(fd);
    REQUIRE(during.open_fds);
    CHECK(*during.open_fds == *before.open_fds + 1);
}

// promtool is the reference parser and linter. CI installs it (Debian: apt-get install prometheus); a missing
// promtool fails the test so that CI cannot silently stop checking. Set LB_SKIP_PROMTOOL=1 to skip it locally.
TEST_CASE("promtool check metrics accepts the exposition", "[metrics][exposition][promtool]") {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        if (const char* skip = std::getenv("LB_SKIP_PROMTOOL"); skip != nullptr && std::string(skip) == "1") {
            WARN("promtool not found and LB_SKIP_PROMTOOL=1: exposition not checked by promtool");
            return;
        }
        FAIL("promtool not found in PATH: install it (apt-get install prometheus) or set LB_SKIP_PROMTOOL=1");
    }

    const std::string text = Fixture().render(true);
    char path[] = "/tmp/lb_metrics_XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);

    const std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string output;
    char buffer[512];
    while (const size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
    const int status = ::pclose(pipe);
    ::unlink(path);

    INFO("promtool said:\n" << output << "\nfor:\n" << text);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 1: parse error, 3: lint problems
    CHECK(output.empty());
}
