// The sidecar's metrics: each call counts in the series of its labels, whether the labels were
// seen before (the metric found again by value) or not, from several threads at once; and the
// HTTP answers of its probes.
#include "sidecar/metrics.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
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

// The whole answer (status line, headers, body) of `GET target` on 127.0.0.1:`port`.
std::string http_get(int port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
        answer.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

std::string body_of(const std::string& answer) {
  auto at = answer.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : answer.substr(at + 4);
}

// Readiness drops with its reason in the body while liveness stays 200: a probe that restarts
// the container on /healthz never restarts a sidecar that waits for its runtime.
TEST(SidecarProbes, ReadyzSaysWhyItIsNotReadyWhileHealthzStaysOk) {
  Metrics metrics("asya-a", "sqlite");
  std::mutex mutex;
  Readiness readiness{false, "runtime unavailable (no socket)"};
  MetricsServer server(metrics, [&] {
    std::lock_guard lock(mutex);
    return readiness;
  });
  ASSERT_TRUE(server.start("127.0.0.1:0").ok());

  std::string answer = http_get(server.port(), "/readyz");
  EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
  EXPECT_EQ(body_of(answer), "not ready: runtime unavailable (no socket)\n");
  answer = http_get(server.port(), "/healthz");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  EXPECT_EQ(body_of(answer), "ok\n");

  {
    std::lock_guard lock(mutex);
    readiness = {true, {}};
  }
  answer = http_get(server.port(), "/readyz");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  EXPECT_EQ(body_of(answer), "ready\n");
  server.stop();
}

}  // namespace
}  // namespace asya::sidecar
