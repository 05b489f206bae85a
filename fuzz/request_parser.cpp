// Fuzzes lb's request side without sockets: http::MessageParser (HTTP_REQUEST, small head limits) fed the input in
// the pieces its markers cut, the session's Host rule, and http::write_upstream_request_head with the body
// re-framed as lb forwards it.
//
// Oracles:
// - no crash, leak or undefined behaviour;
// - read boundaries change nothing: fed as cut, whole, or a byte at a time, the parser accepts the same
//   requests (heads and bodies) and rejects at the same one;
// - what lb would send upstream re-parses with llhttp into exactly the accepted requests, with the same bodies,
//   and every head follows the forwarding rules (fuzz/support/forwarding_rules.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/support/forwarding_rules.h"
#include "fuzz/support/fuzz_input.h"
#include "fuzz/support/violation.h"
#include "fuzz/support/wire_parser.h"
#include "http/header_rules.h"
#include "http/message_parser.h"
#include "http/request_head.h"

namespace lb::fuzz {
namespace {

constexpr std::string_view kClientAddress = "192.0.2.7";
// Small enough that the fuzzer reaches every limit with short inputs.
constexpr http::HeadLimits kLimits{.header_bytes = 1024, .header_count = 12, .uri_bytes = 256};

struct Accepted {
    WireMessage head;  // as MessageParser reported it
    bool complete = false;
    size_t upstream_offset = 0;  // where its head starts in Run::upstream
};

struct Run {
    std::vector<Accepted> requests;
    bool rejected = false;  // a parse error, a limit, or the Host rule
    std::string upstream;   // what lb would write to the backend
    // lb sends what a read produced only once that read parsed without error: on an error, what the failing
    // read added goes nowhere.
    size_t upstream_sent = 0;
};

WireMessage copy_head(const http::MessageHead& head) {
    WireMessage m;
    m.method = head.method;
    m.version_major = head.version_major;
    m.version_minor = head.version_minor;
    m.target = std::string(head.target());
    for (size_t i = 0; i < head.field_count(); ++i) {
        auto f = head.field(i);
        m.fields.push_back({std::string(f.name), std::string(f.value)});
    }
    m.chunked = head.chunked;
    m.has_content_length = head.has_content_length;
    m.content_length = head.content_length;
    m.keep_alive = head.keep_alive;
    m.head_complete = true;
    return m;
}

// Plays ProxySession's part: checks Host, writes the upstream head (passing an Upgrade on), re-frames the body.
class ForwardingSink : public http::MessageSink {
  public:
    explicit ForwardingSink(Run& run) : run_(run) {}
    bool host_rejected() const { return host_rejected_; }

    http::HeadAction on_head(const http::MessageHead& head) override {
        // As ProxySession: a head the rules refuse (Host count, CONNECT) is answered 400, never forwarded.
        if (http::validate_request_head(head) != http::ParseError::none) {
            host_rejected_ = true;
            return http::HeadAction::pause;
        }
        run_.requests.push_back({copy_head(head), false, run_.upstream.size()});
        framing_ = http::upstream_request_framing(head);
        // As ProxySession: an upgrade the request asks for is passed on with "Connection: upgrade".
        const http::ForwardedFor forwarded{.client_address = kClientAddress,
                                           .proto = "http",
                                           .backend_host = "backend.test:80",
                                           .upgrade = http::requested_upgrade(head)};
        http::write_upstream_request_head(head, forwarded, true, run_.upstream);
        return http::HeadAction::proceed;
    }
    void on_body(std::string_view bytes) override {
        run_.requests.back().head.body.append(bytes);
        if (framing_ == http::BodyFraming::chunked) {
            http::write_chunk_size(bytes.size(), run_.upstream);
            run_.upstream.append(bytes);
            run_.upstream.append(http::kChunkEnd);
        } else {
            run_.upstream.append(bytes);
        }
    }
    void on_message_complete() override {
        if (framing_ == http::BodyFraming::chunked) run_.upstream.append(http::kLastChunk);
        run_.requests.back().complete = true;
    }

  private:
    Run& run_;
    http::BodyFraming framing_ = http::BodyFraming::none;
    bool host_rejected_ = false;
};

Run parse(const std::vector<std::string_view>& pieces) {
    Run run;
    ForwardingSink sink(run);
    http::MessageParser parser(HTTP_REQUEST, sink, kLimits);
    for (std::string_view rest : pieces) {
        while (!rest.empty()) {
            http::FeedResult result = parser.feed(rest);
            if (result.status == http::FeedStatus::error || sink.host_rejected()) {
                run.rejected = true;
                return run;
            }
            run.upstream_sent = run.upstream.size();
            rest.remove_prefix(result.consumed);
            if (result.status == http::FeedStatus::paused) parser.resume();
        }
    }
    return run;
}

std::string describe(const Run& run) {
    std::string out = fmt::format("{} request(s){}:", run.requests.size(), run.rejected ? " then rejected" : "");
    for (const auto& r : run.requests) {
        out +=
            fmt::format(" [{} {} fields={} body={}{}]", llhttp_method_name(r.head.method), escaped(r.head.target, 60),
                        r.head.fields.size(), escaped(r.head.body, 60), r.complete ? "" : " (incomplete)");
    }
    return out;
}

bool same_requests(const Run& a, const Run& b) {
    if (a.rejected != b.rejected || a.requests.size() != b.requests.size()) return false;
    for (size_t i = 0; i < a.requests.size(); ++i) {
        const auto& x = a.requests[i];
        const auto& y = b.requests[i];
        if (x.head.method != y.head.method || x.head.target != y.head.target ||
            x.head.version_minor != y.head.version_minor || x.head.fields.size() != y.head.fields.size() ||
            x.head.chunked != y.head.chunked || x.head.content_length != y.head.content_length) {
            return false;
        }
        for (size_t f = 0; f < x.head.fields.size(); ++f) {
            if (x.head.fields[f].name != y.head.fields[f].name || x.head.fields[f].value != y.head.fields[f].value) {
                return false;
            }
        }
        // A request cut off by the end of the input or an error may have been cut at another byte.
        bool last = i + 1 == a.requests.size();
        if (!last && (x.head.body != y.head.body || x.complete != y.complete)) return false;
        if (last && x.complete != y.complete) return false;
        if (last && x.complete && x.head.body != y.head.body) return false;
    }
    return true;
}

void check_upstream(const Run& run) {
    std::string_view bytes = std::string_view(run.upstream).substr(0, run.upstream_sent);
    size_t forwarded = 0;
    while (forwarded < run.requests.size() && run.requests[forwarded].upstream_offset < bytes.size()) ++forwarded;
    WireParser upstream(HTTP_REQUEST);
    if (!upstream.feed(bytes)) {
        violation("the upstream bytes do not parse: {}\nupstream: {}", upstream.error(), escaped(bytes, 2000));
    }
    const auto& sent = upstream.messages();
    if (sent.size() != forwarded) {
        violation("{} request(s) forwarded but {} parsed upstream\nupstream: {}", forwarded, sent.size(),
                  escaped(bytes, 2000));
    }
    for (size_t i = 0; i < sent.size(); ++i) {
        const Accepted& client = run.requests[i];
        size_t end = i + 1 < run.requests.size() ? run.requests[i + 1].upstream_offset : run.upstream.size();
        bool cut = end > run.upstream_sent;  // part of it was written by the read that failed
        if (!sent[i].head_complete) violation("upstream head {} is incomplete", i);
        std::string problem = check_forwarded_request(client.head, sent[i], kClientAddress);
        if (!problem.empty()) violation("request {}: {}\nupstream: {}", i, problem, escaped(run.upstream, 2000));
        if (sent[i].complete != (client.complete && !cut)) {
            violation("request {}: complete={} but upstream complete={}", i, client.complete, sent[i].complete);
        }
        if (cut && client.head.body.compare(0, sent[i].body.size(), sent[i].body) != 0) {
            violation("request {}: body '{}' cut as '{}'", i, escaped(client.head.body), escaped(sent[i].body));
        }
        if (!cut && sent[i].body != client.head.body) {
            violation("request {}: body '{}' forwarded as '{}'", i, escaped(client.head.body), escaped(sent[i].body));
        }
    }
}

}  // namespace
}  // namespace lb::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace lb::fuzz;
    std::string_view input = as_text(data, size);
    std::vector<std::string_view> pieces = split(input, kWriteMarker);
    std::string whole;
    for (auto p : pieces) whole.append(p);

    Run cut = parse(pieces);
    Run joined = parse({whole});
    if (!same_requests(cut, joined)) {
        violation("read boundaries change what is accepted\nas cut: {}\nwhole:  {}", describe(cut), describe(joined));
    }
    if (whole.size() <= 4096) {
        std::vector<std::string_view> bytes;
        for (size_t i = 0; i < whole.size(); ++i) bytes.push_back(std::string_view(whole).substr(i, 1));
        Run bytewise = parse(bytes);
        if (!same_requests(bytewise, joined)) {
            violation("read boundaries change what is accepted\nbyte by byte: {}\nwhole:        {}", describe(bytewise),
                      describe(joined));
        }
    }
    check_upstream(cut);
    return 0;
}
