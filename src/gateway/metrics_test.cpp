// The gateway's counters keep one series per label set, looked up once and counted every time.
#include "gateway/metrics.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace {

// The value of the series line that starts with `series` in the text exposition ("" when absent).
std::string value_of(const std::string& text, const std::string& series) {
  std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  std::size_t start = at + series.size() + 2;
  return text.substr(start, text.find('\n', start) - start);
}

TEST(GatewayMetrics, EachLabelSetIsOneSeriesCountedByEveryCallFromAnyThread) {
  asya::gateway::Metrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 250; ++i) {
        metrics.http_request("POST", 200);
        metrics.report("progress");
        metrics.tool_call("echo", "started", 0);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  metrics.http_request("POST", 503);
  metrics.http_request("GET", 200);
  metrics.report("final");
  metrics.tool_call("echo", "succeeded", 0.2);
  std::string text = metrics.serialize();
  EXPECT_EQ(value_of(text, R"(asya_gateway_http_requests_total{code="200",method="POST"})"),
            "1000");
  EXPECT_EQ(value_of(text, R"(asya_gateway_http_requests_total{code="503",method="POST"})"), "1");
  EXPECT_EQ(value_of(text, R"(asya_gateway_http_requests_total{code="200",method="GET"})"), "1");
  EXPECT_EQ(value_of(text, R"(asya_gateway_sidecar_reports_total{kind="progress"})"), "1000");
  EXPECT_EQ(value_of(text, R"(asya_gateway_sidecar_reports_total{kind="final"})"), "1");
  EXPECT_EQ(value_of(text, R"(asya_gateway_tool_calls_total{outcome="started",tool="echo"})"),
            "1000");
  EXPECT_EQ(value_of(text, R"(asya_gateway_tool_calls_total{outcome="succeeded",tool="echo"})"),
            "1");
  // Label sets whose values join to the same text are still two series.
  metrics.tool_call("ab", "c", 0);
  metrics.tool_call("a", "bc", 0);
  text = metrics.serialize();
  EXPECT_EQ(value_of(text, R"(asya_gateway_tool_calls_total{outcome="c",tool="ab"})"), "1");
  EXPECT_EQ(value_of(text, R"(asya_gateway_tool_calls_total{outcome="bc",tool="a"})"), "1");
}

}  // namespace
