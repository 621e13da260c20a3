// The gateway's Prometheus metrics (prometheus-cpp core; served as text by GET /metrics).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace asya::gateway {

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
};

}  // namespace asya::gateway
