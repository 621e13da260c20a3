#include "gateway/metrics.hpp"

#include <prometheus/text_serializer.h>

#include "common/process_metrics.hpp"

namespace asya::gateway {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  http_requests_ = &prometheus::BuildCounter()
                        .Name("asya_gateway_http_requests_total")
                        .Help("HTTP requests answered, by method and status code")
                        .Register(*registry_);
  tool_calls_ = &prometheus::BuildCounter()
                     .Name("asya_gateway_tool_calls_total")
                     .Help("Tool calls by tool and outcome (started, succeeded, failed, invalid)")
                     .Register(*registry_);
  tool_call_seconds_ =
      &prometheus::BuildHistogram()
           .Name("asya_gateway_tool_call_duration_seconds")
           .Help("Time from a tool call to its final status, for calls that waited")
           .Register(*registry_);
  reports_ = &prometheus::BuildCounter()
                  .Name("asya_gateway_sidecar_reports_total")
                  .Help("Reports received from sidecars, by kind (progress, final, branch, joined)")
                  .Register(*registry_);
  sse_streams_ = &prometheus::BuildGauge()
                      .Name("asya_gateway_sse_streams")
                      .Help("Open SSE streams (REST and MCP)")
                      .Register(*registry_)
                      .Add({});
  mcp_sessions_ = &prometheus::BuildGauge()
                       .Name("asya_gateway_mcp_sessions")
                       .Help("Open MCP sessions")
                       .Register(*registry_)
                       .Add({});
}

std::string Metrics::serialize() const {
  prometheus::TextSerializer serializer;
  // Process-wide families (common/process_metrics.hpp): the trace exporter's counters.
  return serializer.Serialize(registry_->Collect()) + process_metrics_text();
}

prometheus::Counter& Metrics::counter(prometheus::Family<prometheus::Counter>& family,
                                      const char* first_name, const std::string& first,
                                      const char* second_name, const std::string& second) {
  // The first value's length first: no two label sets share a key, whatever bytes they hold.
  std::string key = std::to_string(first.size());
  key.push_back(':');
  key += first;
  key += second;
  std::lock_guard lock(counters_mutex_);
  auto [it, inserted] = counters_.try_emplace({&family, std::move(key)}, nullptr);
  if (inserted) {
    prometheus::Labels labels{{first_name, first}};
    if (*second_name != '\0') labels.emplace(second_name, second);
    it->second = &family.Add(labels);
  }
  return *it->second;
}

void Metrics::http_request(const std::string& method, int status) {
  counter(*http_requests_, "method", method, "code", std::to_string(status)).Increment();
}

void Metrics::tool_call(const std::string& tool, const std::string& outcome, double seconds) {
  counter(*tool_calls_, "tool", tool, "outcome", outcome).Increment();
  if (outcome == "succeeded" || outcome == "failed") {
    static const prometheus::Histogram::BucketBoundaries buckets{0.01, 0.05, 0.1, 0.5, 1,
                                                                 5,    10,   30,  60,  300};
    tool_call_seconds_->Add({{"tool", tool}}, buckets).Observe(seconds);
  }
}

void Metrics::report(const std::string& kind) {
  counter(*reports_, "kind", kind).Increment();
}

}  // namespace asya::gateway
