// The status page at the admin root, as an operator's browser shows it: the real lb binary with 2 workers and three
// demo backends (one up, one drained through the admin API, one whose port refuses connections), the page loaded
// in headless Chromium, and the DOM it built from /status checked for every backend's state and every worker.
// Chromium runs under `timeout` (which kills its whole process group) with a profile in a temp dir removed after.
// Where Chromium is missing or cannot start at all, the browser cases warn and return; everything else still runs.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "demo/demo_backend.h"
#include "test/support/lb_process.h"
#include "test/support/started_backend.h"
#include "test/support/test_support.h"

using namespace lb::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
}

Response admin(uint16_t port, const std::string& method, const std::string& target) {
    Client client(port);
    client.send(method + " " + target + " HTTP/1.1\r\nHost: admin\r\n\r\n");
    return client.read_response(method == "HEAD");
}

// A private Chromium profile directory, removed with everything in it when the test ends.
class TempDir {
  public:
    TempDir() {
        char templ[] = "/tmp/lb-chromium-XXXXXX";
        REQUIRE(::mkdtemp(templ) != nullptr);
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// The first of the usual names for Chromium on PATH; empty when there is none.
std::string find_chromium() {
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
        CommandResult found = run_command(std::string("command -v ") + name);
        if (found.exit_code == 0) return name;
    }
    return {};
}

struct Rendered {
    int exit_code = -1;
    std::string dom;
    std::string log;  // Chromium's stderr
};

// Loads `url` in headless Chromium and returns the DOM after the page's scripts ran for `virtual_ms` of virtual
// time (timers fire at once, network waits are real): long enough for the page's first load and two refreshes.
// After `limit_s` seconds of wall time `timeout` kills Chromium and its children (its process group), 5 s later
// with SIGKILL. A probe and a page take at most 100 s together: under ctest's 120 s per case.
Rendered render(const std::string& chromium, const std::string& url, int limit_s, int virtual_ms = 5000) {
    TempDir profile;
    const std::string dom_file = profile.path() + "/dom.html";
    const std::string log_file = profile.path() + "/chromium.log";
    const std::string command = "timeout -k 5 " + std::to_string(limit_s) + " " + chromium +
                                " --headless --disable-gpu --no-sandbox --no-first-run --disable-extensions"
                                " --user-data-dir=" +
                                profile.path() + "/profile --virtual-time-budget=" + std::to_string(virtual_ms) +
                                " --dump-dom '" + url + "' >" + dom_file + " 2>" + log_file;
    Rendered rendered;
    // In braces: run_command adds its own 2>&1 after the command, which would otherwise override ours.
    rendered.exit_code = run_command("{ " + command + "; }").exit_code;
    rendered.dom = read_file(dom_file);
    rendered.log = read_file(log_file);
    return rendered;
}

// Whether Chromium runs here at all: it renders a page that needs no network. When it does not (no binary, or a
// sandbox without what it needs), the browser tests warn and return rather than fail.
bool chromium_runs(const std::string& chromium) {
    if (chromium.empty()) {
        WARN("chromium is not installed (scripts/install-deps installs it): the status page's browser test is skipped");
        return false;
    }
    Rendered probe = render(chromium, "data:text/html,<p id=probe>ok</p>", 30, 100);
    if (probe.exit_code != 0 || !contains(probe.dom, "<p id=\"probe\">ok</p>")) {
        WARN("chromium cannot run here (exit " << probe.exit_code << "): the status page's browser test is skipped\n"
                                               << probe.log);
        return false;
    }
    return true;
}

// The <tr ...> ... </tr> of the row whose opening tag starts with `opening`; empty when there is none.
std::string row(const std::string& dom, const std::string& opening) {
    size_t start = dom.find(opening);
    if (start == std::string::npos) return {};
    size_t end = dom.find("</tr>", start);
    return end == std::string::npos ? std::string{} : dom.substr(start, end - start);
}

std::string lb_config(const std::vector<std::string>& backends, const std::string& admin_extra = "") {
    std::string yaml = "listen: 127.0.0.1:0\nworkers: 2\nadmin:\n  listen: 127.0.0.1:0\n" + admin_extra + "backends:\n";
    for (const auto& b : backends) yaml += "  - " + b + "\n";
    return yaml + "health:\n  interval: 100ms\n  timeout: 500ms\n  rise: 1\n  fall: 1\n";
}

}  // namespace

TEST_CASE("the admin root serves the status page, self-contained and locked down", "[admin][binary][status-page]") {
    StartedBackend a("a");
    RunningLb lb("status-page-http", lb_config({a.address()}));
    Response page = admin(lb.admin_port(), "GET", "/");
    CHECK(page.status == 200);
    CHECK(page.header("Content-Type") == "text/html; charset=utf-8");
    CHECK(contains(page.header("Content-Security-Policy"), "default-src 'none'"));
    CHECK(contains(page.header("Content-Security-Policy"), "connect-src 'self'"));
    CHECK(page.header("X-Frame-Options") == "DENY");
    CHECK(contains(page.body, "<title>lb status</title>"));
    // Nothing from elsewhere, and no text parsed as markup.
    CHECK_FALSE(contains(page.body, "http://"));
    CHECK_FALSE(contains(page.body, "https://"));
    CHECK_FALSE(contains(page.body, "innerHTML"));
    CHECK_FALSE(contains(page.body, "outerHTML"));
    CHECK_FALSE(contains(page.body, "insertAdjacentHTML"));
    CHECK(admin(lb.admin_port(), "GET", "/index.html").body == page.body);
    CHECK(admin(lb.admin_port(), "GET", "/other").status == 404);
    CHECK(admin(lb.admin_port(), "POST", "/").status == 405);

    // What the page reads from /status besides the backends and workers.
    std::string status = admin(lb.admin_port(), "GET", "/status").body;
    CHECK(contains(status, "\"config_generation\":1,\"config_file\":\"" + lb.config_path() + "\""));
    CHECK(contains(status, "\"admin_token_required\":false"));
    CHECK(contains(status, "\"uptime_seconds\":"));
    // A reload is a new generation; the uptime is the process's.
    REQUIRE(lb.reload(lb_config({a.address()})));
    CHECK(contains(admin(lb.admin_port(), "GET", "/status").body, "\"config_generation\":2,"));
    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("the status page shows every backend's state and every worker in a browser",
          "[admin][binary][status-page][chromium]") {
    set_watchdog_limit(std::chrono::seconds{115});  // Chromium's start is slow on a loaded machine
    const std::string chromium = find_chromium();
    if (!chromium_runs(chromium)) return;

    StartedBackend a("a");
    StartedBackend b("b");
    RefusingPort refusing;
    const std::string dead = "127.0.0.1:" + std::to_string(refusing.port());
    RunningLb lb("status-page", lb_config({a.address(), b.address(), dead}));
    const uint16_t admin_port = lb.admin_port();
    REQUIRE(admin_port != 0);
    lb.wait_for_log("backend " + dead + " is down");
    for (int i = 0; i < 20; ++i) REQUIRE(http_get(lb.port(), "/").status == 200);
    REQUIRE(admin(admin_port, "POST", "/backends/" + b.address() + "/drain").status == 200);

    Rendered page = render(chromium, "http://127.0.0.1:" + std::to_string(admin_port) + "/", 60);
    INFO(page.dom);
    INFO(page.log);
    REQUIRE(page.exit_code == 0);
    // It refreshed from /status more than once (the rates need two samples).
    CHECK((contains(page.dom, "data-refreshes=\"2\"") || contains(page.dom, "data-refreshes=\"3\"") ||
           contains(page.dom, "data-refreshes=\"4\"")));
    CHECK(contains(page.dom, "<p id=\"problem\" hidden=\"\"></p>"));  // no failed refresh to report

    const std::string up = row(page.dom, "<tr data-backend=\"" + a.address() + "\" data-state=\"up\"");
    const std::string draining = row(page.dom, "<tr data-backend=\"" + b.address() + "\" data-state=\"draining\"");
    const std::string down = row(page.dom, "<tr data-backend=\"" + dead + "\" data-state=\"down\"");
    REQUIRE_FALSE(up.empty());
    REQUIRE_FALSE(draining.empty());
    REQUIRE_FALSE(down.empty());
    CHECK(contains(up, "<span class=\"badge up\">up</span>"));
    CHECK(contains(draining, "<span class=\"badge draining\">draining</span>"));
    CHECK(contains(draining, "drained by the admin API"));
    CHECK(contains(down, "<span class=\"badge down\">down</span>"));
    CHECK(contains(down, "refused"));  // why, and the last check
    // Weight now / configured, and latency from the traffic above (the demo answers in well under a second).
    CHECK(contains(up, "<td class=\"num weight\" title=\"now / in the config file\">1 / 1</td>"));
    CHECK(contains(up, " ms</td>"));
    // No token configured: the buttons are there, each the one that applies.
    CHECK(contains(up, "data-action=\"drain\""));
    CHECK(contains(draining, "data-action=\"enable\""));

    CHECK_FALSE(row(page.dom, "<tr data-worker=\"0\"").empty());
    CHECK_FALSE(row(page.dom, "<tr data-worker=\"1\"").empty());
    CHECK(row(page.dom, "<tr data-worker=\"2\"").empty());
    CHECK(contains(page.dom, "<dd id=\"generation\">1</dd>"));
    CHECK(contains(page.dom, "<dd id=\"backends-up\" class=\"warn\">1 of 3</dd>"));
    CHECK(contains(page.dom, ">" + lb.config_path() + "<"));

    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}

TEST_CASE("with an admin token the status page shows no buttons", "[admin][binary][status-page][chromium]") {
    set_watchdog_limit(std::chrono::seconds{115});  // Chromium's start is slow on a loaded machine
    const std::string chromium = find_chromium();
    if (!chromium_runs(chromium)) return;

    StartedBackend a("a");
    std::string token_file = write_temp_file("status-page-token", "s3cret\n");
    RunningLb lb("status-page-token", lb_config({a.address()}, "  token_file: " + token_file + "\n"));
    CHECK(contains(admin(lb.admin_port(), "GET", "/status").body, "\"admin_token_required\":true"));

    Rendered page = render(chromium, "http://127.0.0.1:" + std::to_string(lb.admin_port()) + "/", 60);
    INFO(page.dom);
    REQUIRE(page.exit_code == 0);
    CHECK_FALSE(row(page.dom, "<tr data-backend=\"" + a.address() + "\"").empty());
    CHECK_FALSE(contains(page.dom, "data-action="));
    CHECK_FALSE(contains(page.dom, "s3cret"));

    lb.process().signal(SIGTERM);
    CHECK(lb.process().wait() == 0);
}
