// Metrics that a library keeps for the whole process (e.g. the SQLite transport's write-lock
// holds), appended by each metrics endpoint of the process to its own families, so that a
// library needs no dependency on an endpoint and an endpoint none on the library.
#pragma once

#include <functional>
#include <string>

namespace asya {

// Registers `text`, called on every scrape: Prometheus text exposition format 0.0.4 (# HELP and
// # TYPE lines and samples of families no other source uses). Thread-safe; sources stay
// registered for the life of the process.
void add_process_metrics(std::function<std::string()> text);

// The text of every registered source, in registration order ("" when none).
std::string process_metrics_text();

}  // namespace asya
