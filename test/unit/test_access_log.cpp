// The access log: both line formats byte for byte, escaping of whatever a hostile client sends, the bounded ring
// between a worker and the writer, and the writer thread (file writes, reopen, the final flush).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "access_log/access_log_line.h"
#include "access_log/access_log_writer.h"
#include "base/json_string.h"

using namespace lb::access_log;

namespace {

AccessRecord full_record() {
    AccessRecord r;
    r.client = "192.0.2.7";
    r.method = "GET";
    r.target = "/a?b=c";
    r.protocol = "HTTP/1.1";
    r.status = 200;
    r.bytes_in = 78;
    r.bytes_out = 1234;
    r.request_ns = 1'234'567;
    r.upstream_connect_ns = 45'678;
    r.upstream_response_ns = 1'100'000;
    r.backend = "127.0.0.1:9001";
    r.retries = 1;
    r.request_id = "0f8c2a4e-1b7d-4c3e-9a65-2d1f0e8b7c6a";
    r.tls_version = "TLSv1.3";
    return r;
}

std::string json_of(const AccessRecord& r) {
    std::string out;
    format_line(Format::json, r, "2026-12-01T09:30:17.123Z", out);
    return out;
}

std::string text_of(const AccessRecord& r) {
    std::string out;
    format_line(Format::text, r, "2026-12-01T09:30:17.123Z", out);
    return out;
}

std::string json_string(std::string_view s) {
    std::string out;
    lb::base::append_json_string(s, out);
    return out;
}

std::string text_field(std::string_view s) {
    std::string out;
    append_text_field(s, out);
    return out;
}

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

class TempDir {
  public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "lb-test-access-log-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string path(const std::string& name) const { return (path_ / name).string(); }

  private:
    std::filesystem::path path_;
};

}  // namespace

TEST_CASE("a JSON line has every field, in a fixed order", "[access_log]") {
    CHECK(json_of(full_record()) ==
          "{\"time\":\"2026-12-01T09:30:17.123Z\",\"client\":\"192.0.2.7\",\"method\":\"GET\",\"target\":\"/a?b=c\","
          "\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_in\":78,\"bytes_out\":1234,\"request_time\":0.001234,"
          "\"upstream_connect_time\":0.000045,\"upstream_response_time\":0.001100,\"backend\":\"127.0.0.1:9001\","
          "\"retries\":1,\"request_id\":\"0f8c2a4e-1b7d-4c3e-9a65-2d1f0e8b7c6a\",\"tls\":\"TLSv1.3\"}\n");
}

TEST_CASE("a text line is positional, with - for what lb does not have", "[access_log]") {
    CHECK(text_of(full_record()) ==
          "2026-12-01T09:30:17.123Z 192.0.2.7 \"GET /a?b=c HTTP/1.1\" 200 78 1234 0.001234 0.000045 0.001100 "
          "127.0.0.1:9001 1 0f8c2a4e-1b7d-4c3e-9a65-2d1f0e8b7c6a TLSv1.3\n");
    // lb's own 400 to a request whose head never parsed: no method, target, backend, upstream times, id or TLS.
    AccessRecord refused;
    refused.client = "::1";
    refused.status = 400;
    refused.bytes_in = 17;
    refused.bytes_out = 120;
    refused.request_ns = 2'000;
    CHECK(text_of(refused) == "2026-12-01T09:30:17.123Z ::1 \"- - -\" 400 17 120 0.000002 - - - 0 - -\n");
    CHECK(json_of(refused) ==
          "{\"time\":\"2026-12-01T09:30:17.123Z\",\"client\":\"::1\",\"method\":null,\"target\":null,"
          "\"protocol\":null,\"status\":400,\"bytes_in\":17,\"bytes_out\":120,\"request_time\":0.000002,"
          "\"upstream_connect_time\":null,\"upstream_response_time\":null,\"backend\":null,\"retries\":0,"
          "\"request_id\":null,\"tls\":null}\n");
}

TEST_CASE("JSON strings escape what JSON requires and keep valid UTF-8", "[access_log]") {
    CHECK(json_string("") == "\"\"");
    CHECK(json_string("plain /path?q=1") == "\"plain /path?q=1\"");
    CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(json_string("a\nb\rc\td") == "\"a\\nb\\rc\\td\"");
    CHECK(json_string(std::string_view("\0\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\\u007f\"");
    // Valid UTF-8, two to four bytes: kept as it is.
    CHECK(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

TEST_CASE("bytes that are not UTF-8 become \\xHH in JSON, never raw", "[access_log]") {
    CHECK(json_string("\xff") == "\"\\\\xff\"");
    CHECK(json_string("a\x80z") == "\"a\\\\x80z\"");
    CHECK(json_string("\xc3") == "\"\\\\xc3\"");                        // a sequence cut short at the end
    CHECK(json_string("\xc3(") == "\"\\\\xc3(\"");                      // a lead byte without its continuation
    CHECK(json_string("\xc0\xaf") == "\"\\\\xc0\\\\xaf\"");             // an overlong '/'
    CHECK(json_string("\xe0\x80\xaf") == "\"\\\\xe0\\\\x80\\\\xaf\"");  // an overlong three-byte form
    CHECK(json_string("\xed\xa0\x80") == "\"\\\\xed\\\\xa0\\\\x80\"");  // a UTF-16 surrogate
    CHECK(json_string("\xf4\x90\x80\x80") == "\"\\\\xf4\\\\x90\\\\x80\\\\x80\"");  // above U+10FFFF
    CHECK(json_string("\xf5\x80\x80\x80") == "\"\\\\xf5\\\\x80\\\\x80\\\\x80\"");
}

TEST_CASE("a hostile target stays inside its field in both formats", "[access_log]") {
    AccessRecord r = full_record();
    std::string target = "/x\" y\\z\r\n{\"status\":999}\xff\x01";
    r.target = target;
    std::string json = json_of(r);
    CHECK(json.find('\n') == json.size() - 1);
    CHECK(json.find("\"target\":\"/x\\\" y\\\\z\\r\\n{\\\"status\\\":999}\\\\xff\\u0001\",") != std::string::npos);
    std::string text = text_of(r);
    CHECK(text.find('\n') == text.size() - 1);
    CHECK(text.find("\"GET /x\\x22\\x20y\\x5cz\\x0d\\x0a{\\x22status\\x22:999}\\xff\\x01 HTTP/1.1\"") !=
          std::string::npos);
}

TEST_CASE("text fields escape separators, quotes, controls and high bytes", "[access_log]") {
    CHECK(text_field("") == "-");
    CHECK(text_field("abc-123") == "abc-123");
    CHECK(text_field("a b") == "a\\x20b");
    CHECK(text_field("\"\\") == "\\x22\\x5c");
    CHECK(text_field("\t\x7f\x80\xff") == "\\x09\\x7f\\x80\\xff");
}

TEST_CASE("durations are seconds with microseconds", "[access_log]") {
    auto seconds = [](uint64_t ns) {
        std::string out;
        append_seconds(ns, out);
        return out;
    };
    CHECK(seconds(0) == "0.000000");
    CHECK(seconds(999) == "0.000000");
    CHECK(seconds(1'000) == "0.000001");
    CHECK(seconds(123'456'789) == "0.123456");
    CHECK(seconds(61'000'000'000) == "61.000000");
}

TEST_CASE("timestamps are UTC with milliseconds, the second reused", "[access_log]") {
    Timestamp stamp;
    CHECK(stamp.format(timespec{0, 0}) == "1970-01-01T00:00:00.000Z");
    CHECK(stamp.format(timespec{1'796'117'417, 123'999'999}) == "2026-12-01T09:30:17.123Z");
    CHECK(stamp.format(timespec{1'796'117'417, 5'000'000}) == "2026-12-01T09:30:17.005Z");
    CHECK(stamp.format(timespec{1'796'117'418, 999'000'000}) == "2026-12-01T09:30:18.999Z");
}

TEST_CASE("the ring keeps whole lines, wraps, and drops what does not fit", "[access_log]") {
    LineBuffer ring;
    CHECK(ring.pending().size() == 0);
    CHECK(ring.push("one\n") == LineBuffer::Push::stored);
    CHECK(ring.push("two\n") == LineBuffer::Push::stored);
    LineBuffer::Pending p = ring.pending();
    CHECK(p.first == "one\ntwo\n");
    CHECK(p.second.empty());
    ring.consume(p.size());
    CHECK(ring.pending().size() == 0);

    // Fill to a quarter: the push that crosses it asks for the writer, once.
    const std::string line(1000, 'x');
    size_t pushes = 0;
    int wakes = 0;
    while (ring.pending().size() + line.size() <= LineBuffer::kCapacity) {
        if (ring.push(line) == LineBuffer::Push::stored_wake) ++wakes;
        ++pushes;
    }
    CHECK(wakes == 1);
    CHECK(ring.push(line) == LineBuffer::Push::dropped);
    CHECK(ring.pending().size() == pushes * line.size());

    // Take most of it, then push across the end of the storage: the bytes come back as two pieces, in order.
    ring.consume(ring.pending().size() - 10);
    std::string wrapping(LineBuffer::kCapacity / 2, 'y');
    wrapping.back() = '\n';
    REQUIRE(ring.push(wrapping) != LineBuffer::Push::dropped);
    p = ring.pending();
    CHECK(p.size() == 10 + wrapping.size());
    CHECK_FALSE(p.second.empty());
    CHECK(std::string(p.first) + std::string(p.second) == std::string(10, 'x') + wrapping);
}

TEST_CASE("the writer writes every worker's lines, reopens on request, and flushes when it stops", "[access_log]") {
    TempDir dir;
    const std::string path = dir.path("access.log");
    auto writer = std::make_shared<Writer>(path, std::chrono::milliseconds(10));
    auto poll_until = [](auto&& done) {
        for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return done();
    };
    auto lines_in = [](const std::string& file) {
        std::string text = read_all(file);
        return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    };
    constexpr size_t kPerWorker = 2000;
    {
        WorkerLog a(writer, Format::json), b(writer, Format::text);
        // Catch's assertions are not thread-safe: the workers count, the test checks.
        size_t stored_a = 0, stored_b = 0;
        std::thread ta([&] {
            for (size_t i = 0; i < kPerWorker; ++i) stored_a += a.write(full_record());
        });
        std::thread tb([&] {
            for (size_t i = 0; i < kPerWorker; ++i) stored_b += b.write(full_record());
        });
        ta.join();
        tb.join();
        CHECK(stored_a == kPerWorker);
        CHECK(stored_b == kPerWorker);
        REQUIRE(poll_until([&] { return lines_in(path) == 2 * kPerWorker; }));

        // logrotate: move the file, signal; new lines go to a new file at the old path.
        std::filesystem::rename(path, dir.path("access.log.1"));
        writer->reopen();
        REQUIRE(poll_until([&] { return std::filesystem::exists(path); }));
        CHECK(a.write(full_record()));
        REQUIRE(poll_until([&] { return lines_in(path) == 1; }));
        CHECK(lines_in(dir.path("access.log.1")) == 2 * kPerWorker);
        // A line written just before the worker goes is still written.
        CHECK(b.write(full_record()));
    }
    writer.reset();
    CHECK(lines_in(path) == 2);
    std::string text = read_all(path);
    CHECK(text.starts_with("{\"time\":"));
    CHECK(text.find("\n20") != std::string::npos);  // the text line, starting with its year
}

TEST_CASE("the writer refuses a path it cannot open", "[access_log]") {
    TempDir dir;
    CHECK_THROWS_WITH(Writer(dir.path("missing/access.log")),
                      "access_log: cannot open '" + dir.path("missing/access.log") + "': No such file or directory");
}

namespace {

// A strict decoder for the JSON strings lb::base::append_json_string writes: the escapes JSON defines, and nothing raw
// that JSON forbids (control characters, an unescaped quote or backslash, bytes that are not UTF-8). Empty on a
// violation.
std::optional<std::string> decode_json_string(std::string_view s) {
    if (s.size() < 2 || s.front() != '"' || s.back() != '"') return std::nullopt;
    s = s.substr(1, s.size() - 2);
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == '"') return std::nullopt;
        if (c >= 0x80) {
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
            if (n == 0 || i + n > s.size()) return std::nullopt;
            for (size_t k = 1; k < n; ++k) {
                if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return std::nullopt;
            }
            out.append(s.substr(i, n));
            i += n - 1;
            continue;
        }
        if (c != '\\') {
            out += static_cast<char>(c);
            continue;
        }
        if (++i == s.size()) return std::nullopt;
        switch (s[i]) {
            case '"':
            case '\\':
                out += s[i];
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u':
                if (i + 4 >= s.size() || s.substr(i + 1, 2) != "00") return std::nullopt;
                out += static_cast<char>(std::stoi(std::string(s.substr(i + 3, 2)), nullptr, 16));
                i += 4;
                break;
            default:
                return std::nullopt;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("any bytes at all make a JSON string that decodes, and a text field with no separator", "[access_log]") {
    // Every single byte, then random strings weighted towards the troublesome bytes, from a fixed seed.
    std::vector<std::string> inputs;
    for (int b = 0; b < 256; ++b) inputs.emplace_back(1, static_cast<char>(b));
    uint64_t state = 0x9e3779b97f4a7c15;
    auto next = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    const std::string troublesome = "\"\\\n\r\t \x01\x7f\x80\xbf\xc2\xc3\xe0\xed\xf0\xf4\xff/a";
    for (int n = 0; n < 20000; ++n) {
        std::string s(next() % 24, '\0');
        for (char& c : s) c = next() % 2 ? troublesome[next() % troublesome.size()] : static_cast<char>(next());
        inputs.push_back(std::move(s));
    }
    for (const std::string& input : inputs) {
        std::string json = json_string(input);
        std::optional<std::string> decoded = decode_json_string(json);
        INFO("input bytes: " << text_field(input));
        REQUIRE(decoded);
        // What was valid UTF-8 comes back as it was; so does all of an input that was plain ASCII.
        bool ascii =
            std::all_of(input.begin(), input.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
        if (ascii) CHECK(*decoded == input);

        std::string text = text_field(input);
        CHECK(std::none_of(text.begin(), text.end(), [](char ch) {
            auto c = static_cast<unsigned char>(ch);
            return c <= 0x20 || c >= 0x7f || c == '"';
        }));
    }
}
