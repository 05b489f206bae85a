// Micro-benchmark of route matching: what choosing a route costs a request, with 10 and 1,000 routes.
// The routes look like a real edge config: most name a host (some with a path prefix before the host's catch-all,
// some a method), one in ten a wildcard host, one in a hundred only a path prefix (tried for every request), and a
// last route without conditions. Requests cycle
// through the hosts the config names, names under its wildcards and names it does not know.
//   route/find/N:       RouteTable::find on a request already taken apart
//   route/take_find/N:  the same plus taking the request apart (host lower-cased, port dropped, path cut at '?')
//   route/scan/N:       the first match by trying every route in order, for comparison
// Run from a Release build:  ./bench/route_bench --benchmark_min_time=0.3
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "route/route_table.h"

using namespace lb;

namespace {

struct Ignore : http::MessageSink {
    http::HeadAction on_head(const http::MessageHead&) override { return http::HeadAction::proceed; }
    void on_body(std::string_view) override {}
    void on_message_complete() override {}
};

std::vector<route::RouteMatch> make_routes(size_t count) {
    std::vector<route::RouteMatch> routes;
    for (size_t i = 0; routes.size() + 1 < count; ++i) {
        const std::string name = "svc" + std::to_string(i) + ".example.com";
        switch (i % 10) {
            case 0:
                routes.push_back({.host = "*.team" + std::to_string(i) + ".example.net"});
                break;
            case 1:
                // One route in a hundred is for every host: these are tried for every request.
                if (i % 100 == 1) {
                    routes.push_back({.path_prefix = "/internal" + std::to_string(i) + "/"});
                } else {
                    routes.push_back({.host = name});
                }
                break;
            case 2:
                routes.push_back({.host = name, .path_prefix = "/static/"});
                if (routes.size() + 1 < count) routes.push_back({.host = name});
                break;
            case 3:
                routes.push_back({.host = name, .method = "POST"});
                break;
            default:
                routes.push_back({.host = name});
        }
    }
    routes.push_back({});
    return routes;
}

// Parsed requests, kept alive for the benchmark's length.
struct Requests {
    std::vector<std::unique_ptr<Ignore>> sinks;
    std::vector<std::unique_ptr<http::MessageParser>> parsers;
    std::vector<route::RouteRequestStorage> storage;
    std::vector<route::RouteRequest> taken;

    explicit Requests(size_t routes) {
        constexpr size_t kCount = 256;
        storage.resize(kCount);
        for (size_t i = 0; i < kCount; ++i) {
            std::string host;
            switch (i % 4) {
                case 0:
                    host = "unknown" + std::to_string(i) + ".test";
                    break;
                case 1:
                    host = "a.b.team" + std::to_string((i * 10) % routes) + ".example.net";
                    break;
                default:
                    host = "SVC" + std::to_string((i * 7) % routes) + ".Example.com:8080";
            }
            const std::string path = i % 3 == 0 ? "/static/app.js?v=1" : "/api/v1/users/42?page=2";
            sinks.push_back(std::make_unique<Ignore>());
            parsers.push_back(std::make_unique<http::MessageParser>(HTTP_REQUEST, *sinks.back()));
            parsers.back()->feed("GET " + path + " HTTP/1.1\r\nHost: " + host +
                                 "\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n");
            taken.push_back(storage[i].take(parsers.back()->head()));
        }
    }
};

void find(benchmark::State& state) {
    const auto count = static_cast<size_t>(state.range(0));
    route::RouteTable table(make_routes(count));
    Requests requests(count);
    size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(table.find(requests.taken[i++ % requests.taken.size()]));
    }
}

void take_find(benchmark::State& state) {
    const auto count = static_cast<size_t>(state.range(0));
    route::RouteTable table(make_routes(count));
    Requests requests(count);
    route::RouteRequestStorage storage;
    size_t i = 0;
    for (auto _ : state) {
        const http::MessageHead& head = requests.parsers[i++ % requests.parsers.size()]->head();
        benchmark::DoNotOptimize(table.find(storage.take(head)));
    }
}

void scan(benchmark::State& state) {
    const auto count = static_cast<size_t>(state.range(0));
    const auto routes = make_routes(count);
    Requests requests(count);
    size_t i = 0;
    for (auto _ : state) {
        const route::RouteRequest& request = requests.taken[i++ % requests.taken.size()];
        size_t chosen = routes.size();
        for (size_t r = 0; r < routes.size(); ++r) {
            if (route::matches(routes[r], request)) {
                chosen = r;
                break;
            }
        }
        benchmark::DoNotOptimize(chosen);
    }
}

}  // namespace

BENCHMARK(find)->Name("route/find")->Arg(10)->Arg(1000);
BENCHMARK(take_find)->Name("route/take_find")->Arg(10)->Arg(1000);
BENCHMARK(scan)->Name("route/scan")->Arg(10)->Arg(1000);

BENCHMARK_MAIN();
