// The GatewayReporter's coalescing (PROTOCOL §7 POST /envelopes/reports), against a small HTTP
// server that records every request and can hold its answers back (a busy gateway).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/fake_gateway_test_support.hpp"
#include "sidecar/gateway_reporter.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
using test_support::Counts;
using test_support::FakeGateway;
using test_support::Seen;

GatewayReporterOptions options_for(const FakeGateway& gateway, Counts& counts) {
  return test_support::reporter_options(gateway.url(), counts);
}

std::string progress_of(const std::string& id) {
  return test_support::completed_report(id);
}

TEST(ReportBatching, ALoneReportIsSentAtOnceInItsSingleForm) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(options_for(gateway, counts));
  ASSERT_TRUE(reporter.post(envelope_path("e1", "progress"), progress_of("e1")));
  // Nothing else is posted: the report goes out on its own, without waiting for company.
  ASSERT_TRUE(gateway.wait_for_requests(1));
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, "/envelopes/e1/progress");
  EXPECT_EQ(seen[0].body, progress_of("e1"));
  EXPECT_EQ(counts.sent.load(), 1);
}

TEST(ReportBatching, ReportsQueuedWhileTheGatewayIsBusyGoInOneBatchInQueueOrder) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(options_for(gateway, counts));
  gateway.hold();
  ASSERT_TRUE(reporter.post(envelope_path("e0", "progress"), progress_of("e0")));
  ASSERT_TRUE(gateway.wait_for_requests(1));  // e0 is with the gateway, unanswered
  ASSERT_TRUE(reporter.post(envelope_path("e1", "progress"), progress_of("e1")));
  ASSERT_TRUE(
      reporter.post(envelope_path("e1", "final"), final_body("e1", true, "7", "", "", {"a"}, 0)));
  ASSERT_TRUE(reporter.post(envelope_path("e/2", "progress"), progress_of("e/2")));
  gateway.release();
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].path, "/envelopes/e0/progress");
  EXPECT_EQ(seen[1].path, kReportBatchPath);
  EXPECT_EQ(seen[1].batch_ids, (std::vector<std::string>{"e1", "e1", "e/2"}));
  EXPECT_NE(
      seen[1].body.find(R"("kind":"final","report":{"id":"e1","status":"succeeded","result":7)"),
      std::string::npos)
      << seen[1].body;
  EXPECT_EQ(counts.sent.load(), 4);
  EXPECT_EQ(counts.dropped.load(), 0);
}

TEST(ReportBatching, ABatchHoldsAtMostMaxBatchReports) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporterOptions o = options_for(gateway, counts);
  o.max_batch = 4;
  GatewayReporter reporter(o);
  gateway.hold();
  ASSERT_TRUE(reporter.post(envelope_path("first", "progress"), progress_of("first")));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  for (int i = 0; i < 10; ++i) {
    std::string id = "e";
    id += std::to_string(i);
    ASSERT_TRUE(reporter.post(envelope_path(id, "progress"), progress_of(id)));
  }
  gateway.release();
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(seen.size(), 4u);  // the lone first, then 4 + 4 + 2
  EXPECT_EQ(seen[1].batch_ids, (std::vector<std::string>{"e0", "e1", "e2", "e3"}));
  EXPECT_EQ(seen[2].batch_ids, (std::vector<std::string>{"e4", "e5", "e6", "e7"}));
  EXPECT_EQ(seen[3].batch_ids, (std::vector<std::string>{"e8", "e9"}));
  EXPECT_EQ(counts.sent.load(), 11);
}

TEST(ReportBatching, AReportThatCannotBeBatchedKeepsItsPlaceInTheQueue) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(options_for(gateway, counts));
  gateway.hold();
  ASSERT_TRUE(reporter.post(envelope_path("e0", "progress"), progress_of("e0")));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  ASSERT_TRUE(reporter.post(envelope_path("e1", "progress"), progress_of("e1")));
  ASSERT_TRUE(reporter.post(envelope_path("e2", "progress"), progress_of("e2")));
  ASSERT_TRUE(reporter.post("/envelopes", fanout_body("e2-1", "e2", {"a"}, 0)));
  ASSERT_TRUE(reporter.post(envelope_path("e2-1", "final"),
                            final_body("e2-1", true, "1", "", "", {"a"}, 0)));
  gateway.release();
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[1].batch_ids, (std::vector<std::string>{"e1", "e2"}));
  EXPECT_EQ(seen[2].path, "/envelopes");  // after e1 and e2, before e2-1's final
  EXPECT_EQ(seen[3].path, "/envelopes/e2-1/final");
  EXPECT_EQ(counts.sent.load(), 5);
}

TEST(ReportBatching, OneRefusedReportInABatchLosesNoOtherAndAFailedOneIsRetriedAlone) {
  FakeGateway gateway;
  std::atomic<int> flaky_tries{0};
  gateway.item_status = [&](const std::string& id) {
    if (id == "unknown") return 404;
    if (id == "bad") return 400;
    if (id == "flaky") return ++flaky_tries == 1 ? 503 : 200;
    return 200;
  };
  Counts counts;
  GatewayReporter reporter(options_for(gateway, counts));
  gateway.hold();
  ASSERT_TRUE(reporter.post(envelope_path("e0", "progress"), progress_of("e0")));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  for (const char* id : {"unknown", "bad", "flaky", "good"})
    ASSERT_TRUE(reporter.post(envelope_path(id, "progress"), progress_of(id)));
  gateway.release();
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].batch_ids, (std::vector<std::string>{"unknown", "bad", "flaky", "good"}));
  // Only the report that may succeed later goes again; the refused ones are not retried.
  EXPECT_EQ(seen[2].batch_ids, (std::vector<std::string>{"flaky"}));
  EXPECT_EQ(counts.sent.load(), 3);     // e0, good, flaky
  EXPECT_EQ(counts.dropped.load(), 2);  // unknown (404), bad (400): counted, as singles are
}

TEST(ReportBatching, AGatewayWithoutTheBatchEndpointGetsEveryReportAlone) {
  FakeGateway gateway;
  gateway.batch_status = 405;  // an older gateway: POST /envelopes/{id} is not allowed
  Counts counts;
  GatewayReporter reporter(options_for(gateway, counts));
  gateway.hold();
  ASSERT_TRUE(reporter.post(envelope_path("e0", "progress"), progress_of("e0")));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  ASSERT_TRUE(reporter.post(envelope_path("e1", "progress"), progress_of("e1")));
  ASSERT_TRUE(
      reporter.post(envelope_path("e2", "final"), final_body("e2", true, "1", "", "", {"a"}, 0)));
  gateway.release();
  ASSERT_TRUE(reporter.flush(30s));
  // Once refused, the batch form is not tried again for a while: reports queued together go
  // one by one at once.
  gateway.hold();
  ASSERT_TRUE(reporter.post(envelope_path("e3", "progress"), progress_of("e3")));
  ASSERT_TRUE(gateway.wait_for_requests(5));
  ASSERT_TRUE(reporter.post(envelope_path("e4", "progress"), progress_of("e4")));
  ASSERT_TRUE(reporter.post(envelope_path("e5", "progress"), progress_of("e5")));
  gateway.release();
  ASSERT_TRUE(reporter.flush(30s));
  std::vector<std::string> paths;
  for (const Seen& s : gateway.seen()) paths.push_back(s.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/envelopes/e0/progress", kReportBatchPath,
                                             "/envelopes/e1/progress", "/envelopes/e2/final",
                                             "/envelopes/e3/progress", "/envelopes/e4/progress",
                                             "/envelopes/e5/progress"}));
  EXPECT_EQ(counts.sent.load(), 6);
  EXPECT_EQ(counts.dropped.load(), 0);
}

TEST(ReportBatching, AHungGatewayNeverBlocksPostAndTheQueueStaysBounded) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporterOptions o = options_for(gateway, counts);
  o.capacity = 10;
  o.timeout = 300ms;
  o.max_attempts = 2;
  GatewayReporter reporter(o);
  gateway.hold();  // reads every request, answers none
  auto started = std::chrono::steady_clock::now();
  int accepted = 0;
  for (int i = 0; i < 200; ++i) {
    std::string id = "e";
    id += std::to_string(i);
    accepted += reporter.post(envelope_path(id, "progress"), progress_of(id)) ? 1 : 0;
  }
  // post never waits for the gateway: 200 posts are far quicker than one request's timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // The queue's capacity, and the batch in hand: the sender takes up to max_batch queued reports
  // at once, as many as were queued when it woke (1 to 64 here, depending on timing).
  EXPECT_LE(accepted, static_cast<int>(o.capacity + o.max_batch));
  reporter.stop(30s);
  gateway.release();
  EXPECT_EQ(counts.sent.load() + counts.dropped.load(), 200);  // every report accounted for
  EXPECT_EQ(counts.sent.load(), 0);
}

TEST(ReportBatching, AnUnreachableGatewayDropsAndCountsBatchedReports) {
  Counts counts;
  GatewayReporterOptions o;
  o.base_url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.max_attempts = 2;
  o.retry_delay = 10ms;
  o.on_sent = [&] { ++counts.sent; };
  o.on_dropped = [&] { ++counts.dropped; };
  GatewayReporter reporter(o);
  for (int i = 0; i < 20; ++i) {
    std::string id = "e";
    id += std::to_string(i);
    EXPECT_TRUE(reporter.post(envelope_path(id, "progress"), progress_of(id)));
  }
  EXPECT_TRUE(reporter.flush(30s));
  EXPECT_EQ(counts.dropped.load(), 20);
  EXPECT_EQ(counts.sent.load(), 0);
}

}  // namespace
}  // namespace asya::sidecar
