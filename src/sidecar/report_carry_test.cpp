// Reports carried by the cancellation check (PROTOCOL §7 "reports"): a report posted with
// post_carriable() waits for the next check to take it, and whatever becomes of that check, the
// report reaches the gateway once, in queue order, without blocking anyone.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "sidecar/fake_gateway_test_support.hpp"
#include "sidecar/gateway_reporter.hpp"

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
using test_support::completed_report;
using test_support::Counts;
using test_support::FakeGateway;
using test_support::reporter_options;
using test_support::Seen;

// A wait far longer than any test: a report that arrives proves the hold was ended by the event
// under test, not by its timer.
constexpr auto kForever = std::chrono::hours(1);

// What Runner::check_job does: take the held reports, send the check with them, hand them back.
CheckAnswer check(GatewayReporter& reporter, const std::string& id) {
  GatewayReporter::Carried carried = reporter.take_carried();
  auto answer = reporter.post_now_answer(
      envelope_path(id, "check"), check_body("", GatewayReporter::entries(carried)), 1000ms, 1);
  CheckAnswer out;
  if (answer && answer->ok()) out = read_check_answer(answer->body);
  reporter.carried(std::move(carried), out.reports_accepted);
  return out;
}

std::vector<std::string> paths(const std::vector<Seen>& seen) {
  std::vector<std::string> out;
  for (const Seen& s : seen) out.push_back(s.path);
  return out;
}

TEST(ReportCarry, AHeldReportTravelsOnTheNextCheckAndCostsNoRequestOfItsOwn) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, kForever));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e/2", "progress"), completed_report("e/2")));
  CheckAnswer answer = check(reporter, "e3");
  EXPECT_TRUE(answer.reports_accepted);
  EXPECT_FALSE(answer.cancelled);
  ASSERT_TRUE(reporter.flush(30s));
  reporter.stop(30s);
  auto seen = gateway.seen();
  ASSERT_EQ(paths(seen), (std::vector<std::string>{"/envelopes/e3/check"}));
  EXPECT_EQ(seen[0].body,
            R"({"reports":[{"id":"e1","kind":"progress","report":)" + completed_report("e1") +
                R"(},{"id":"e/2","kind":"progress","report":)" + completed_report("e/2") + "}]}");
  EXPECT_EQ(counts.sent.load(), 2);
  EXPECT_EQ(counts.dropped.load(), 0);
}

TEST(ReportCarry, AReportNoCheckTakesIsSentOnItsOwnWhenItsWaitIsOver) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, 20ms));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(paths(seen), (std::vector<std::string>{"/envelopes/e1/progress"}));
  EXPECT_EQ(seen[0].body, completed_report("e1"));
  EXPECT_EQ(counts.sent.load(), 1);
}

TEST(ReportCarry, AReportThatMayNotWaitEndsTheHoldAndBothGoInQueueOrder) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, kForever));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  ASSERT_TRUE(
      reporter.post(envelope_path("e1", "final"), final_body("e1", true, "7", "", "", {"a"}, 0)));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].path, kReportBatchPath);
  EXPECT_EQ(seen[0].batch_ids, (std::vector<std::string>{"e1", "e1"}));
  EXPECT_LT(seen[0].body.find(R"("kind":"progress")"), seen[0].body.find(R"("kind":"final")"));
  EXPECT_EQ(counts.sent.load(), 2);
}

TEST(ReportCarry, FlushAndStopSendWhatIsHeld) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, kForever));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  ASSERT_TRUE(reporter.flush(30s));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e2", "progress"), completed_report("e2")));
  reporter.stop(30s);
  EXPECT_EQ(paths(gateway.seen()),
            (std::vector<std::string>{"/envelopes/e1/progress", "/envelopes/e2/progress"}));
  EXPECT_EQ(counts.sent.load(), 2);
  EXPECT_EQ(counts.dropped.load(), 0);
}

TEST(ReportCarry, ReportsQueuedWhileACheckCarriesEarlierOnesWaitForItAndKeepTheOrder) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, kForever));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  GatewayReporter::Carried carried = reporter.take_carried();
  ASSERT_EQ(carried.size(), 1u);
  // Queued behind the carried report, and may not wait: the thread still must not send it before
  // the check that carries e1 is over.
  ASSERT_TRUE(
      reporter.post(envelope_path("e1", "final"), final_body("e1", true, "7", "", "", {"a"}, 0)));
  auto answer = reporter.post_now_answer(
      envelope_path("e2", "check"), check_body("", GatewayReporter::entries(carried)), 1000ms, 1);
  ASSERT_TRUE(answer && answer->ok());
  reporter.carried(std::move(carried), read_check_answer(answer->body).reports_accepted);
  ASSERT_TRUE(reporter.flush(30s));
  EXPECT_EQ(paths(gateway.seen()),
            (std::vector<std::string>{"/envelopes/e2/check", "/envelopes/e1/final"}));
  EXPECT_EQ(counts.sent.load(), 2);
}

TEST(ReportCarry, AGatewayThatDoesNotTakeCarriedReportsGetsThemOnTheirOwnAndNoMoreCarried) {
  FakeGateway gateway;
  // An older gateway: it answers the check and ignores "reports".
  gateway.check_answer = [](const std::string&) { return std::string(R"({"cancelled":false})"); };
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, kForever));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  EXPECT_FALSE(check(reporter, "e2").reports_accepted);
  ASSERT_TRUE(reporter.flush(30s));
  // From now on reports are not held: this one goes without a flush and no check carries it.
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e3", "progress"), completed_report("e3")));
  ASSERT_TRUE(gateway.wait_for_requests(3));
  EXPECT_TRUE(reporter.take_carried().empty());
  ASSERT_TRUE(reporter.flush(30s));
  auto seen = gateway.seen();
  EXPECT_EQ(paths(seen), (std::vector<std::string>{"/envelopes/e2/check", "/envelopes/e1/progress",
                                                   "/envelopes/e3/progress"}));
  EXPECT_EQ(seen[1].body, completed_report("e1"));
  EXPECT_EQ(counts.sent.load(), 2);
  EXPECT_EQ(counts.dropped.load(), 0);
}

TEST(ReportCarry, ARogueCheckAnswerLosesNoCarriedReport) {
  for (std::string rogue : {std::string("not json"), std::string(R"(["reports","accepted"])"),
                            std::string(R"({"reports":true})")}) {
    FakeGateway gateway;
    gateway.check_answer = [rogue](const std::string&) { return rogue; };
    Counts counts;
    GatewayReporter reporter(reporter_options(gateway.url(), counts, kForever));
    ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
    CheckAnswer answer = check(reporter, "e2");
    EXPECT_FALSE(answer.reports_accepted) << rogue;
    EXPECT_FALSE(answer.cancelled) << rogue;
    ASSERT_TRUE(reporter.flush(30s));
    EXPECT_EQ(paths(gateway.seen()),
              (std::vector<std::string>{"/envelopes/e2/check", "/envelopes/e1/progress"}))
        << rogue;
    EXPECT_EQ(counts.sent.load(), 1) << rogue;
  }
}

TEST(ReportCarry, AnUnreachableGatewayNeitherBlocksTheCheckNorLosesTheReportUncounted) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nothing listens on this port now
  Counts counts;
  GatewayReporter reporter(reporter_options(
      "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), counts, kForever));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  CheckAnswer answer = check(reporter, "e2");  // no answer: not cancelled, reports handed back
  EXPECT_FALSE(answer.cancelled);
  EXPECT_FALSE(answer.reports_accepted);
  ASSERT_TRUE(reporter.flush(30s));  // its own tries failed too: dropped, and counted
  EXPECT_EQ(counts.sent.load(), 0);
  EXPECT_EQ(counts.dropped.load(), 1);
}

TEST(ReportCarry, WithNoCarryWaitAReportIsNeverHeld) {
  FakeGateway gateway;
  Counts counts;
  GatewayReporter reporter(reporter_options(gateway.url(), counts, 0ms));
  ASSERT_TRUE(reporter.post_carriable(envelope_path("e1", "progress"), completed_report("e1")));
  ASSERT_TRUE(gateway.wait_for_requests(1));
  EXPECT_TRUE(reporter.take_carried().empty());
  ASSERT_TRUE(reporter.flush(30s));
  EXPECT_EQ(paths(gateway.seen()), (std::vector<std::string>{"/envelopes/e1/progress"}));
}

TEST(ReportCarry, CheckBodyCarriesTheProgressAndTheReportsReadCheckAnswerReadsBoth) {
  std::vector<BatchEntry> entries{{"e1", "progress", R"({"x":1})"}};
  EXPECT_EQ(check_body("", {}), "{}");
  EXPECT_EQ(check_body(R"({"p":1})", {}), R"({"progress":{"p":1}})");
  EXPECT_EQ(check_body(R"({"p":1})", entries),
            R"({"progress":{"p":1},"reports":[{"id":"e1","kind":"progress","report":{"x":1}}]})");
  CheckAnswer a = read_check_answer(
      R"({"job_status":"running","cancelled":true,"progress":"accepted","reports":"accepted"})");
  EXPECT_TRUE(a.cancelled);
  EXPECT_TRUE(a.progress_accepted);
  EXPECT_TRUE(a.reports_accepted);
  CheckAnswer b = read_check_answer(R"({"cancelled":false,"reports_error":"report 0: bad"})");
  EXPECT_FALSE(b.reports_accepted);
}

}  // namespace
}  // namespace asya::sidecar
