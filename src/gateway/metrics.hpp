// The gateway's Prometheus metrics (prometheus-cpp core; served as text by GET /metrics).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace asya::gateway {

// Thread-safe. A counter of a label set is looked up in the family once and kept (Family::Add
// builds a label map, hashes it and takes the family's lock on every call: ~4 % of the io
// thread's time with a few requests per tool call).
class Metrics {
 public:
  Metrics();
  // Text exposition format 0.0.4.
  std::string serialize() const;

  void http_request(const std::string& method, int status);
  void tool_call(const std::string& tool, const std::string& outcome,
                 double seconds);        // outcome: started, succeeded, failed, invalid
  void report(const std::string& kind);  // progress, final, branch, joined
  prometheus::Gauge& sse_streams() { return *sse_streams_; }
  prometheus::Gauge& mcp_sessions() { return *mcp_sessions_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Counter>* tool_calls_;
  prometheus::Family<prometheus::Histogram>* tool_call_seconds_;
  prometheus::Family<prometheus::Counter>* reports_;
  prometheus::Gauge* sse_streams_;
  prometheus::Gauge* mcp_sessions_;

  // The counter of `family` with the labels {first_name: first, second_name: second} (no second
  // label when second_name is empty), added to the family the first time.
  prometheus::Counter& counter(prometheus::Family<prometheus::Counter>& family,
                               const char* first_name, const std::string& first,
                               const char* second_name = "", const std::string& second = "");

  std::mutex counters_mutex_;
  std::map<std::pair<prometheus::Family<prometheus::Counter>*, std::string>, prometheus::Counter*>
      counters_;
};

}  // namespace asya::gateway
