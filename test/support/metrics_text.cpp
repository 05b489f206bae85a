#include "test/support/metrics_text.h"

#include <catch2/catch.hpp>
#include <sstream>

#include "test/support/test_support.h"

namespace lb::test {

std::string scrape_metrics(uint16_t admin_port) {
    Response r = http_get(admin_port, "/metrics");
    REQUIRE(r.status == 200);
    return r.body;
}

double metric_value(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    FAIL("no series " << series << " in the scrape");
    return 0;
}

double metric_sum(const std::string& text, const std::string& name, const std::string& label_filter) {
    std::istringstream in(text);
    std::string line;
    double total = 0;
    bool matched = false;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        size_t end = line.find_first_of("{ ");
        if (end == std::string::npos || line.compare(0, end, name) != 0 || end != name.size()) continue;
        std::string labels = line[end] == '{' ? line.substr(end, line.find('}') - end + 1) : "";
        if (labels.find(label_filter) == std::string::npos) continue;
        total += std::stod(line.substr(line.rfind(' ') + 1));
        matched = true;
    }
    if (!matched) FAIL("no sample of " << name << " with labels containing '" << label_filter << "' in the scrape");
    return total;
}

double scrape_metric(uint16_t admin_port, const std::string& series) {
    return metric_value(scrape_metrics(admin_port), series);
}

std::string backend_series(const std::string& family, uint16_t backend_port, const std::string& more_labels) {
    std::string labels = "backend=\"127.0.0.1:" + std::to_string(backend_port) + "\"";
    if (!more_labels.empty()) labels += "," + more_labels;
    return family + "{" + labels + "}";
}

}  // namespace lb::test
