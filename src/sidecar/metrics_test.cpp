// The sidecar's metrics: each call counts in the series of its labels, whether the labels were
// seen before (the metric found again by value) or not, from several threads at once.
#include "sidecar/metrics.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace asya::sidecar {
namespace {

// The value of the sample line that starts with `series` (name and labels as serialized), or -1.
double sample(const std::string& text, const std::string& series) {
  std::size_t at = 0;
  while ((at = text.find(series, at)) != std::string::npos) {
    if ((at == 0 || text[at - 1] == '\n') && text.compare(at + series.size(), 1, " ") == 0)
      return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST(SidecarMetrics, EachLabelValueCountsInItsOwnSeriesCallAfterCall) {
  Metrics metrics("asya-a", "sqlite");
  for (int i = 0; i < 3; ++i) metrics.processed("ok");
  metrics.processed("error");
  metrics.sent("asya-b", "success");
  metrics.sent("asya-b", "success");
  metrics.sent("asya-b", "error");  // same queue, another type: its own series
  metrics.sent("asya-c", "success");
  metrics.envelope_size("received", 100);
  metrics.envelope_size("received", 2000);
  metrics.envelope_size("sent", 300);
  metrics.send_duration("asya-b", 0.002);
  metrics.send_duration("asya-b", 0.004);
  metrics.send_duration("asya-c", 0.5);
  metrics.gateway_report_sent();
  metrics.gateway_report_sent();
  metrics.gateway_report_dropped();
  const std::string text = metrics.serialize();

  EXPECT_EQ(sample(text, R"(asya_actor_messages_processed_total{queue="asya-a",status="ok"})"), 3);
  EXPECT_EQ(sample(text, R"(asya_actor_messages_processed_total{queue="asya-a",status="error"})"),
            1);
  EXPECT_EQ(
      sample(
          text,
          R"(asya_actor_messages_sent_total{destination_queue="asya-b",message_type="success"})"),
      2);
  EXPECT_EQ(
      sample(text,
             R"(asya_actor_messages_sent_total{destination_queue="asya-b",message_type="error"})"),
      1);
  EXPECT_EQ(
      sample(
          text,
          R"(asya_actor_messages_sent_total{destination_queue="asya-c",message_type="success"})"),
      1);
  EXPECT_EQ(sample(text, R"(asya_actor_envelope_size_bytes_count{direction="received"})"), 2);
  EXPECT_EQ(sample(text, R"(asya_actor_envelope_size_bytes_sum{direction="received"})"), 2100);
  EXPECT_EQ(sample(text, R"(asya_actor_envelope_size_bytes_count{direction="sent"})"), 1);
  EXPECT_EQ(
      sample(text, R"(asya_actor_envelope_size_bytes_bucket{direction="received",le="1024"})"), 1);
  EXPECT_EQ(
      sample(
          text,
          R"(asya_actor_queue_send_duration_seconds_count{destination_queue="asya-b",transport="sqlite"})"),
      2);
  EXPECT_EQ(
      sample(
          text,
          R"(asya_actor_queue_send_duration_seconds_count{destination_queue="asya-c",transport="sqlite"})"),
      1);
  EXPECT_EQ(sample(text, R"(asya_actor_gateway_reports_total{result="sent"})"), 2);
  EXPECT_EQ(sample(text, R"(asya_actor_gateway_reports_total{result="dropped"})"), 1);
}

TEST(SidecarMetrics, CallsFromSeveralThreadsAreAllCounted) {
  Metrics metrics("asya-a", "sqlite");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < 1000; ++i) {
        metrics.sent("asya-q" + std::to_string(i % 3), "success");
        metrics.envelope_size(t % 2 ? "sent" : "received", 10);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::string text = metrics.serialize();
  double sent = 0;
  for (int q = 0; q < 3; ++q) {
    sent += sample(text, "asya_actor_messages_sent_total{destination_queue=\"asya-q" +
                             std::to_string(q) + "\",message_type=\"success\"}");
  }
  EXPECT_EQ(sent, 4000);
  EXPECT_EQ(sample(text, R"(asya_actor_envelope_size_bytes_count{direction="received"})"), 2000);
  EXPECT_EQ(sample(text, R"(asya_actor_envelope_size_bytes_count{direction="sent"})"), 2000);
}

}  // namespace
}  // namespace asya::sidecar
