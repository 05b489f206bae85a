// Fuzzes lb's response side without sockets: one backend connection's responses, exchange after exchange, parsed
// by http::MessageParser (HTTP_RESPONSE) in the pieces the input's markers cut, and relayed the way ProxySession
// does with http::client_response_framing and http::write_client_response_head.
//
// Input: one byte choosing the request (bits 0-1: GET, HEAD, POST, GET; bit 2: HTTP/1.0; bit 3: its body was
// still streaming when the response came), then the backend's bytes: kNextMarker between exchanges (a reused
// connection), kWriteMarker between reads.
//
// Oracles:
// - no crash, leak or undefined behaviour;
// - read boundaries change nothing: as cut, whole, or a byte at a time, the same responses are accepted;
// - what lb would write to the client re-parses with llhttp into exactly the relayed responses (1xx included),
//   with the same bodies, HEAD answers without one, and each head follows the forwarding rules.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/support/forwarding_rules.h"
#include "fuzz/support/fuzz_input.h"
#include "fuzz/support/violation.h"
#include "fuzz/support/wire_parser.h"
#include "http/message_parser.h"
#include "http/request_head.h"

namespace lb::fuzz {
namespace {

struct Request {
    llhttp_method_t method = HTTP_GET;
    bool http10 = false;
    bool body_streaming = false;  // not yet complete when the response began
};

// A request head as lb's parser produced it, for client_response_framing.
class RequestHead : public http::MessageSink {
  public:
    explicit RequestHead(const Request& request) : parser_(HTTP_REQUEST, *this) {
        std::string text = fmt::format("{} / HTTP/1.{}\r\nHost: fuzz\r\n\r\n", llhttp_method_name(request.method),
                                       request.http10 ? 0 : 1);
        parser_.feed(text);
    }
    const http::MessageHead& head() const { return parser_.head(); }
    http::HeadAction on_head(const http::MessageHead&) override { return http::HeadAction::proceed; }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}

  private:
    http::MessageParser parser_;
};

struct Relayed {
    WireMessage backend;  // the head as MessageParser reported it, and the body it delivered
    http::BodyFraming framing = http::BodyFraming::none;
    bool keep_alive = false;
    bool complete = false;
};

struct Run {
    std::vector<Relayed> responses;  // interim ones included
    bool rejected = false;           // lb would answer 502 or, mid-response, close
    bool ends_with_close = false;    // the client connection ends after the last response
    std::string to_client;
};

WireMessage copy_head(const http::MessageHead& head) {
    WireMessage m;
    m.status = head.status;
    m.version_major = head.version_major;
    m.version_minor = head.version_minor;
    m.reason = std::string(head.reason());
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

// Plays ProxySession's part for one exchange: interim responses to HTTP/1.1 clients, then the final response
// re-framed for the client.
class RelaySink : public http::MessageSink {
  public:
    RelaySink(const Request& request, const http::MessageHead& request_head, Run& run)
        : request_(request), request_head_(request_head), run_(run) {}
    bool final_complete() const { return final_complete_; }
    bool refused() const { return refused_; }
    bool trusted() const { return trusted_; }
    bool upstream_keep_alive() const { return upstream_keep_alive_; }

    http::HeadAction on_head(const http::MessageHead& head) override {
        Relayed relayed{copy_head(head)};
        // As ProxySession refuses them: a status outside 100-599, a 101 nobody asked for, a 1xx with framing.
        if (head.status < 100 || head.status > 599 ||
            (head.status / 100 == 1 && (head.status == 101 || head.has_content_length || head.chunked))) {
            refused_ = true;
            return http::HeadAction::pause;
        }
        if (head.status / 100 == 1) {
            interim_ = true;
            if (!request_.http10) {
                http::write_client_response_head(head, http::BodyFraming::none, false, true, run_.to_client);
                run_.responses.push_back(relayed);
            }
            return http::HeadAction::skip_body;
        }
        relayed.framing = http::client_response_framing(request_head_, head);
        // As ProxySession decides: the client's wish, unless the body ends with the connection or the request
        // was still streaming in.
        relayed.keep_alive =
            request_head_.keep_alive && !request_.body_streaming && relayed.framing != http::BodyFraming::until_close;
        if (relayed.framing == http::BodyFraming::until_close && !request_.http10) {
            violation("a close-delimited body chosen for an HTTP/1.1 client");
        }
        upstream_keep_alive_ = head.keep_alive;
        // A body announced where none may follow leaves the connection's framing in doubt: never reused.
        bool no_body = http::response_has_no_body(request_head_, head);
        trusted_ = !(no_body && (head.chunked || (head.has_content_length && head.content_length > 0)));
        http::write_client_response_head(head, relayed.framing, request_.http10, relayed.keep_alive, run_.to_client);
        run_.responses.push_back(relayed);
        return no_body ? http::HeadAction::skip_body : http::HeadAction::proceed;
    }
    void on_body(std::string_view bytes) override {
        auto& relayed = run_.responses.back();
        relayed.backend.body.append(bytes);
        if (relayed.framing == http::BodyFraming::chunked) {
            http::write_chunk_size(bytes.size(), run_.to_client);
            run_.to_client.append(bytes);
            run_.to_client.append(http::kChunkEnd);
        } else {
            run_.to_client.append(bytes);
        }
    }
    void on_message_complete() override {
        if (interim_) {
            interim_ = false;
            if (!request_.http10) run_.responses.back().complete = true;
            return;
        }
        auto& relayed = run_.responses.back();
        if (relayed.framing == http::BodyFraming::chunked) run_.to_client.append(http::kLastChunk);
        relayed.complete = true;
        final_complete_ = true;
    }

  private:
    const Request& request_;
    const http::MessageHead& request_head_;
    Run& run_;
    bool interim_ = false;
    bool final_complete_ = false;
    bool refused_ = false;
    bool trusted_ = true;
    bool upstream_keep_alive_ = false;
};

// One backend connection: each exchange resets the parser as lb does when it reuses a pooled connection, and
// the connection is reused only after a complete keep-alive response with nothing after it.
Run relay(const Request& request, const std::vector<std::vector<std::string_view>>& exchanges) {
    Run run;
    RequestHead request_head(request);
    http::MessageParser parser(HTTP_RESPONSE, request_head);
    for (const auto& reads : exchanges) {
        RelaySink sink(request, request_head.head(), run);
        parser.reset();
        parser.set_sink(sink);
        bool leftover = false;
        for (std::string_view rest : reads) {
            while (!rest.empty() && !sink.final_complete()) {
                http::FeedResult result = parser.feed(rest);
                if (result.status == http::FeedStatus::error || sink.refused()) {
                    run.rejected = true;
                    return run;
                }
                rest.remove_prefix(result.consumed);
                if (result.status == http::FeedStatus::paused) parser.resume();
            }
            leftover = leftover || !rest.empty();
        }
        if (!sink.final_complete()) {
            // The backend closed: that completes a close-delimited body and cuts anything else short.
            bool completed = parser.head_complete() && parser.in_message() && parser.finish() && sink.final_complete();
            if (!completed) run.rejected = true;
            run.ends_with_close = true;
            return run;
        }
        const Relayed& final_response = run.responses.back();
        if (!final_response.keep_alive) {
            run.ends_with_close = true;
            return run;
        }
        if (leftover || !sink.upstream_keep_alive() || !sink.trusted()) return run;
    }
    return run;
}

std::string describe(const Run& run) {
    std::string out = fmt::format("{} response(s){}:", run.responses.size(), run.rejected ? " then rejected" : "");
    for (const auto& r : run.responses) {
        out += fmt::format(" [{} fields={} body={}{}]", r.backend.status, r.backend.fields.size(),
                           escaped(r.backend.body, 60), r.complete ? "" : " (incomplete)");
    }
    return out;
}

bool same_responses(const Run& a, const Run& b) {
    if (a.rejected != b.rejected || a.responses.size() != b.responses.size()) return false;
    for (size_t i = 0; i < a.responses.size(); ++i) {
        const auto& x = a.responses[i];
        const auto& y = b.responses[i];
        if (x.backend.status != y.backend.status || x.backend.reason != y.backend.reason ||
            x.backend.fields.size() != y.backend.fields.size() || x.framing != y.framing || x.complete != y.complete) {
            return false;
        }
        for (size_t f = 0; f < x.backend.fields.size(); ++f) {
            if (x.backend.fields[f].name != y.backend.fields[f].name ||
                x.backend.fields[f].value != y.backend.fields[f].value) {
                return false;
            }
        }
        bool last = i + 1 == a.responses.size();
        if ((!last || x.complete) && x.backend.body != y.backend.body) return false;
    }
    return true;
}

void check_client_bytes(const Request& request, const Run& run) {
    WireParser client(HTTP_RESPONSE);
    client.set_answers_head([&](size_t, const WireMessage&) { return request.method == HTTP_HEAD; });
    bool parsed = client.feed(run.to_client) && (!run.ends_with_close || client.finish());
    if (!parsed)
        violation("the client bytes do not parse: {}\nclient: {}", client.error(), escaped(run.to_client, 2000));
    const auto& got = client.messages();
    if (got.size() != run.responses.size()) {
        violation("{} response(s) relayed but the client reads {}\nclient: {}", run.responses.size(), got.size(),
                  escaped(run.to_client, 2000));
    }
    for (size_t i = 0; i < got.size(); ++i) {
        const Relayed& relayed = run.responses[i];
        std::string problem = check_relayed_response(relayed.backend, got[i]);
        if (!problem.empty()) violation("response {}: {}\nclient: {}", i, problem, escaped(run.to_client, 2000));
        // A close-delimited body cut short looks whole to the client: that framing cannot tell (HTTP/1.0 only).
        bool indistinguishable = relayed.framing == http::BodyFraming::until_close && !relayed.complete;
        if (got[i].complete != relayed.complete && !indistinguishable) {
            violation("response {}: relayed complete={}, the client reads complete={}\nclient: {}", i, relayed.complete,
                      got[i].complete, escaped(run.to_client, 2000));
        }
        std::string_view expected_body = request.method == HTTP_HEAD ? std::string_view() : relayed.backend.body;
        if (got[i].body != expected_body) {
            violation("response {}: body '{}' reaches the client as '{}'", i, escaped(expected_body),
                      escaped(got[i].body));
        }
        if (got[i].interim()) continue;
        bool close = got[i].count("connection") == 1 && got[i].find("connection")->value == "close";
        if (close == relayed.keep_alive)
            violation("response {}: keep_alive={} but Connection says otherwise", i, relayed.keep_alive);
        if (relayed.framing == http::BodyFraming::content_length &&
            (!got[i].has_content_length || got[i].content_length != relayed.backend.content_length)) {
            violation("response {}: Content-Length {} not passed on", i, relayed.backend.content_length);
        }
    }
}

}  // namespace
}  // namespace lb::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace lb::fuzz;
    if (size == 0) return 0;
    Request request;
    static constexpr llhttp_method_t kMethods[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_GET};
    request.method = kMethods[data[0] & 3];
    request.http10 = (data[0] & 4) != 0;
    request.body_streaming = (data[0] & 8) != 0;
    std::string_view input = as_text(data + 1, size - 1);

    std::vector<std::vector<std::string_view>> cut;
    std::vector<std::string> joined_text;
    for (std::string_view exchange : split(input, kNextMarker)) {
        cut.push_back(split(exchange, kWriteMarker));
        joined_text.emplace_back();
        for (auto piece : cut.back()) joined_text.back().append(piece);
    }
    std::vector<std::vector<std::string_view>> joined, bytewise;
    for (const auto& text : joined_text) {
        joined.push_back({text});
        bytewise.emplace_back();
        for (size_t i = 0; i < text.size() && input.size() <= 4096; ++i) {
            bytewise.back().push_back(std::string_view(text).substr(i, 1));
        }
    }

    Run as_cut = relay(request, cut);
    Run as_whole = relay(request, joined);
    if (!same_responses(as_cut, as_whole)) {
        violation("read boundaries change what is relayed\nas cut: {}\nwhole:  {}", describe(as_cut),
                  describe(as_whole));
    }
    if (input.size() <= 4096) {
        Run as_bytes = relay(request, bytewise);
        if (!same_responses(as_bytes, as_whole)) {
            violation("read boundaries change what is relayed\nbyte by byte: {}\nwhole:        {}", describe(as_bytes),
                      describe(as_whole));
        }
    }
    check_client_bytes(request, as_cut);
    return 0;
}
