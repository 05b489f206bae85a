// Reading lb's /metrics in tests. Every helper fails the test when the series it was asked about is missing: a
// renamed metric or a mistyped label must not read as a zero that an equality then accepts.
#pragma once

#include <cstdint>
#include <string>

namespace lb::test {

// The body of GET /metrics on the admin listener at 127.0.0.1:`admin_port`; fails the test unless it is a 200.
std::string scrape_metrics(uint16_t admin_port);

// The value of one series of Prometheus text, named exactly as exposed: "lb_retries_total" or
// "lb_errors_total{kind=\"connect_refused\"}". Fails the test when no such line exists.
double metric_value(const std::string& text, const std::string& series);

// The sum of every sample of the family `name` (any labels) whose label text contains `label_filter`. Fails the test
// when no sample matches.
double metric_sum(const std::string& text, const std::string& name, const std::string& label_filter = "");

// A fresh scrape's value of one series (metric_value).
double scrape_metric(uint16_t admin_port, const std::string& series);

// "lb_backend_X{backend=\"127.0.0.1:PORT\"}" and "lb_backend_X{backend=\"127.0.0.1:PORT\",LABELS}".
std::string backend_series(const std::string& family, uint16_t backend_port, const std::string& more_labels = "");

}  // namespace lb::test
