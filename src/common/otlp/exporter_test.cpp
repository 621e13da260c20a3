#include "common/otlp/exporter.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/otlp/receiver_for_test.hpp"
#include "common/process_metrics.hpp"

namespace asya::otlp {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

std::vector<Span> spans(std::size_t n) {
  std::vector<Span> out;
  for (std::size_t i = 0; i < n; ++i) {
    Span span;
    span.trace_id = new_trace_id();
    span.span_id = new_span_id();
    span.name = std::to_string(i);
    span.start_unix_nano = 1;
    span.end_unix_nano = 2;
    out.push_back(std::move(span));
  }
  return out;
}

ExporterOptions options(std::string url, std::string destination) {
  ExporterOptions o;
  o.settings.url = std::move(url);
  o.settings.headers = {{"api-key", "secret"}};
  o.settings.resource.attributes = {{"service.name", std::string("test")}};
  o.settings.max_queue_spans = 10;
  o.settings.max_batch_spans = 4;
  o.settings.schedule_delay = 50ms;
  o.settings.timeout = 2000ms;
  o.destination = std::move(destination);
  o.retry_delay = 10ms;
  return o;
}

// A loopback port nothing listens on.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(Exporter, SendsBatchesOfOtlpJsonWithTheConfiguredHeaders) {
  testing::Receiver receiver;
  Exporter exporter(options(receiver.url(), "t-ok"));
  EXPECT_EQ(exporter.add(spans(6)), 6u);
  ASSERT_TRUE(exporter.flush(10s));
  auto requests = receiver.requests();
  ASSERT_GE(requests.size(), 2u);  // at most 4 spans per request
  std::size_t total = 0;
  for (const auto& r : requests) {
    EXPECT_TRUE(r.head.starts_with("POST /v1/traces HTTP/1.1")) << r.head;
    EXPECT_NE(r.head.find("Content-Type: application/json"), std::string::npos) << r.head;
    EXPECT_NE(r.head.find("api-key: secret"), std::string::npos) << r.head;
    json::value doc = json::parse(r.body);
    auto n = doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array().size();
    EXPECT_LE(n, 4u);
    total += n;
  }
  EXPECT_EQ(total, 6u);
  EXPECT_EQ(export_counts("t-ok").exported, 6u);
}

std::vector<std::size_t> spans_per_request(testing::Receiver& receiver) {
  std::vector<std::size_t> sizes;
  for (const auto& r : receiver.requests())
    sizes.push_back(json::parse(r.body)
                        .at("resourceSpans")
                        .at(0)
                        .at("scopeSpans")
                        .at(0)
                        .at("spans")
                        .as_array()
                        .size());
  return sizes;
}

// Waits (up to 30 s) until the receiver got `n` spans in all.
bool receives_spans(testing::Receiver& receiver, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    std::size_t total = 0;
    for (std::size_t spans : spans_per_request(receiver)) total += spans;
    if (total >= n) return total == n;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

EncodedSpans encoded(std::size_t n) {
  EncodedSpans out;
  for (auto& span : spans(n)) append_encoded(out, span);
  return out;
}

TEST(Exporter, AFullBatchGoesAtOnceAndAPartialOneAfterTheScheduleDelay) {
  testing::Receiver receiver;
  ExporterOptions o = options(receiver.url(), "t-wake");
  o.settings.schedule_delay = std::chrono::hours(1);  // only a full batch wakes the thread
  Exporter exporter(o);
  exporter.add(spans(3));
  exporter.add(spans(1));  // the batch (4) is full now
  EXPECT_TRUE(receives_spans(receiver, 4));

  ExporterOptions short_delay = options(receiver.url(), "t-wake");
  Exporter second(short_delay);  // schedule_delay 50 ms: a partial batch goes without flush()
  second.add(spans(2));
  EXPECT_TRUE(receives_spans(receiver, 6));
}

TEST(Exporter, FlushSendsAPartialBatchAtOnceInsteadOfWaitingForTheScheduleDelay) {
  testing::Receiver receiver;
  ExporterOptions o = options(receiver.url(), "t-flush");
  o.settings.max_batch_spans = 100;
  o.settings.schedule_delay = std::chrono::hours(1);
  Exporter exporter(o);
  EXPECT_EQ(exporter.add(spans(3)), 3u);
  EXPECT_TRUE(exporter.flush(20s));  // before: waited for the hour, so the 20 s ran out
  EXPECT_EQ(spans_per_request(receiver), std::vector<std::size_t>{3});
  // Spans added after the flush wait for a full batch or the delay again.
  EXPECT_EQ(exporter.add(spans(2)), 2u);
  EXPECT_TRUE(exporter.flush(20s));
  EXPECT_EQ(spans_per_request(receiver), (std::vector<std::size_t>{3, 2}));
  EXPECT_TRUE(exporter.flush(0ms));  // nothing queued: nothing to send, idle at once
  EXPECT_EQ(export_counts("t-flush").exported, 5u);
}

// The export thread's voluntary context switches (it sleeps in a wait), found by its name.
std::optional<long> export_thread_switches() {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "asya-otlp") continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("voluntary_ctxt_switches:"))
        return std::stol(line.substr(line.find(':') + 1));
  }
  return std::nullopt;
}

TEST(Exporter, AddingSpansDoesNotWakeTheExportThreadUntilABatchIsFull) {
  testing::Receiver receiver;
  ExporterOptions o = options(receiver.url(), "t-no-wake");
  o.settings.max_queue_spans = 1000;
  o.settings.max_batch_spans = 500;
  o.settings.schedule_delay = std::chrono::hours(1);
  Exporter exporter(o);
  // The thread has started and is waiting once its switch count stops moving.
  std::optional<long> before = export_thread_switches();
  for (int i = 0; i < 500 && (!before || *before < 1); ++i) {
    std::this_thread::sleep_for(10ms);
    before = export_thread_switches();
  }
  ASSERT_TRUE(before.has_value()) << "no thread named asya-otlp";
  for (int i = 0; i < 300; ++i) ASSERT_EQ(exporter.add(spans(1)), 1u);
  // A wake-up per add would show as hundreds of switches within this window.
  std::this_thread::sleep_for(200ms);
  EXPECT_LE(*export_thread_switches() - *before, 1) << "woken while the batch was not full";
  EXPECT_TRUE(receiver.requests().empty());
  // The 500th span fills the batch: the thread wakes and sends it without a flush.
  EXPECT_EQ(exporter.add(encoded(200)), 200u);
  EXPECT_TRUE(receives_spans(receiver, 500));
}

TEST(Exporter, AReceiverThatIsDownNeverBlocksAddAndDropsAreCounted) {
  Exporter exporter(options(
      std::string("http://127.0.0.1:").append(std::to_string(closed_port())).append("/v1/traces"),
      "t-down"));
  auto started = std::chrono::steady_clock::now();
  std::size_t queued = 0;
  for (int i = 0; i < 5; ++i) queued += exporter.add(spans(10));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);  // add() does no I/O
  EXPECT_LE(queued, 50u);
  exporter.flush(10s);
  exporter.stop(1s);
  ExportCounts counts = export_counts("t-down");
  EXPECT_EQ(counts.exported, 0u);
  // Every span is accounted for: queued then failed, or refused by the full queue.
  EXPECT_EQ(counts.dropped_queue_full + counts.dropped_export_failed + counts.dropped_shutdown,
            50u);
  EXPECT_EQ(counts.dropped_queue_full, 50u - queued);
  EXPECT_GT(counts.dropped_export_failed, 0u);
}

TEST(Exporter, AnErrorStatusIsRetriedThenDropped) {
  testing::Receiver receiver;
  receiver.set_status(503);
  Exporter exporter(options(receiver.url(), "t-503"));
  exporter.add(spans(2));
  ASSERT_TRUE(exporter.flush(10s));
  EXPECT_EQ(receiver.requests().size(), 2u);  // max_attempts
  EXPECT_EQ(export_counts("t-503").dropped_export_failed, 2u);
}

TEST(Exporter, CountersArePrometheusTextWithDestinationAndReason) {
  Exporter exporter(options("http://127.0.0.1:1/v1/traces", "t-metrics"));
  std::string text = process_metrics_text();
  EXPECT_NE(text.find("# TYPE asya_trace_spans_dropped_total counter"), std::string::npos);
  EXPECT_NE(text.find("asya_trace_spans_exported_total{destination=\"t-metrics\"} 0"),
            std::string::npos);
  EXPECT_NE(
      text.find(
          "asya_trace_spans_dropped_total{destination=\"t-metrics\",reason=\"queue_full\"} 0"),
      std::string::npos);
}

// Spans written by a SpanWriter (a sidecar's hop: several spans per part) are queued as they are;
// the queue's bound counts spans, and a part that does not fit is cut at the bound.
TEST(Exporter, EncodedPartsCountAsTheirSpansAndThePartOverTheBoundIsCut) {
  testing::Receiver receiver;
  ExporterOptions o = options(receiver.url(), "t-encoded-bound");  // a queue of 10 spans
  o.settings.max_batch_spans = 100;                                // nothing wakes the thread
  o.settings.schedule_delay = std::chrono::hours(1);
  Exporter exporter(o);
  std::vector<std::size_t> queued;
  for (int part = 0; part < 4; ++part) queued.push_back(exporter.add(encoded(3)));
  EXPECT_EQ(queued, (std::vector<std::size_t>{3, 3, 3, 1}));
  EXPECT_EQ(exporter.add(encoded(2)), 0u);
  exporter.stop(10s);  // sends what is queued
  EXPECT_EQ(spans_per_request(receiver), std::vector<std::size_t>{10});
  ExportCounts counts = export_counts("t-encoded-bound");
  EXPECT_EQ(counts.exported, 10u);
  EXPECT_EQ(counts.dropped_queue_full, 4u);
}

// A sidecar adds one small part per message (a copy: it keeps its buffer): each is appended to the
// last queued part while that makes no more than a batch, so a batch is one part, in order.
TEST(Exporter, SmallPartsAreAppendedToTheLastPartUpToABatchAndKeepTheirOrder) {
  testing::Receiver receiver;
  ExporterOptions o = options(receiver.url(), "t-append");  // batches of 4
  o.settings.max_queue_spans = 100;
  o.settings.schedule_delay = std::chrono::hours(1);
  Exporter exporter(o);
  auto named = [](int from, int n) {
    EncodedSpans part;
    for (int i = from; i < from + n; ++i) {
      Span span = spans(1).front();
      span.name = std::to_string(i);
      append_encoded(part, span);
    }
    return part;
  };
  const EncodedSpans kept = named(0, 1);
  EXPECT_EQ(exporter.add(kept), 1u);
  EXPECT_EQ(kept.count, 1u);  // copied: the caller's part is left as it was
  EXPECT_EQ(exporter.add(named(1, 1)), 1u);
  EXPECT_EQ(exporter.add(named(2, 1)), 1u);
  ASSERT_TRUE(exporter.flush(20s));
  EXPECT_EQ(spans_per_request(receiver), std::vector<std::size_t>{3});
  EXPECT_EQ(exporter.add(named(3, 3)), 3u);
  EXPECT_EQ(exporter.add(named(6, 2)), 2u);  // 3 + 2 > 4: a part of its own; 5 queued wake it
  EXPECT_TRUE(receives_spans(receiver, 3 + 4));
  ASSERT_TRUE(exporter.flush(20s));
  EXPECT_EQ(spans_per_request(receiver), (std::vector<std::size_t>{3, 4, 1}));
  std::vector<std::string> names;
  for (const auto& r : receiver.requests()) {
    const json::value doc = json::parse(r.body);
    for (const auto& span :
         doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").as_array())
      names.emplace_back(span.at("name").as_string());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7"}));
  EXPECT_EQ(export_counts("t-append").exported, 8u);
}

TEST(Exporter, APartLargerThanABatchIsSplitAcrossBatches) {
  testing::Receiver receiver;
  Exporter exporter(options(receiver.url(), "t-encoded-split"));  // batches of 4
  EXPECT_EQ(exporter.add(encoded(10)), 10u);
  ASSERT_TRUE(exporter.flush(10s));
  auto sizes = spans_per_request(receiver);
  std::size_t total = 0;
  for (std::size_t n : sizes) {
    EXPECT_LE(n, 4u);
    total += n;
  }
  EXPECT_EQ(total, 10u);
  EXPECT_GE(sizes.size(), 3u);
  EXPECT_EQ(export_counts("t-encoded-split").exported, 10u);
}

// Waits up to 10 s for `condition`.
template <typename Condition>
bool eventually(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(Exporter, FullBatchesReuseThePartBuffersAndAnIdleExporterGivesThemBack) {
  testing::Receiver receiver;
  ExporterOptions o = options(receiver.url(), "t-spare");  // batches of 4
  o.settings.max_queue_spans = 100;
  o.settings.schedule_delay = std::chrono::hours(1);
  Exporter exporter(o);
  // Spans one message at a time, as a sidecar adds them: full batches go out as they fill, and
  // the buffers of their parts are kept for the parts that follow.
  for (int i = 0; i < 8; ++i) EXPECT_EQ(exporter.add(encoded(1)), 1u);
  ASSERT_TRUE(receives_spans(receiver, 8));
  EXPECT_TRUE(eventually([&] { return exporter.spare_part_buffers() > 0; }));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(exporter.add(encoded(1)), 1u);
  ASSERT_TRUE(receives_spans(receiver, 16));
  EXPECT_EQ(spans_per_request(receiver), (std::vector<std::size_t>{4, 4, 4, 4}));
  // A partial batch (less than a batch per schedule delay: idle) gives them back.
  EXPECT_EQ(exporter.add(encoded(1)), 1u);
  ASSERT_TRUE(exporter.flush(20s));
  EXPECT_TRUE(eventually([&] { return exporter.spare_part_buffers() == 0; }));
  EXPECT_EQ(export_counts("t-spare").exported, 17u);
  EXPECT_EQ(export_counts("t-spare").dropped_queue_full, 0u);
}

}  // namespace
}  // namespace asya::otlp
