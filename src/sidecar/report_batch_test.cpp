#include "sidecar/report_batch.hpp"

#include <gtest/gtest.h>

#include "sidecar/gateway_reporter.hpp"

namespace asya::sidecar {
namespace {

TEST(ReportBatch, OnlyProgressAndFinalReportsMayTravelInABatch) {
  auto progress = batchable(envelope_path("a/b c-1", "progress"));
  ASSERT_TRUE(progress);
  EXPECT_EQ(progress->id, "a/b c-1");  // the path's encoding undone
  EXPECT_EQ(progress->kind, "progress");
  auto final_report = batchable("/envelopes/X/final");
  ASSERT_TRUE(final_report);
  EXPECT_EQ(final_report->kind, "final");
  EXPECT_FALSE(batchable("/envelopes"));                // fan-out announcement
  EXPECT_FALSE(batchable("/envelopes/X/joined"));       // join report
  EXPECT_FALSE(batchable("/envelopes/X/check"));        // cancellation check
  EXPECT_FALSE(batchable("/envelopes//progress"));      // no id
  EXPECT_FALSE(batchable("/envelopes/a%2/progress"));   // a cut escape
  EXPECT_FALSE(batchable("/envelopes/a%zz/progress"));  // not hex
  EXPECT_FALSE(batchable("/envelopes/a/b/progress"));   // not one segment
}

TEST(ReportBatch, BodyIsAnArrayOfIdKindAndTheReportAsSent) {
  std::string progress = progress_body({"a"}, 0, "completed", "done", 3);
  std::string final_report = final_body("X\"1", true, R"({"n":8.10})", "", "", {"a"}, 0);
  EXPECT_EQ(batch_body({{"X1", "progress", progress}, {"X\"1", "final", final_report}}),
            R"([{"id":"X1","kind":"progress","report":)" + progress +
                R"(},{"id":"X\"1","kind":"final","report":)" + final_report + "}]");
}

TEST(ReportBatch, AnswerGivesEachReportsStatusInOrder) {
  auto answers = read_batch_answer(
      R"({"results":[{"status":200,"answer":{"status":"ok"}},{"status":404,"answer":{"error":"no job"}},{"status":503,"answer":{"error":"locked"}}]})",
      3);
  ASSERT_TRUE(answers);
  ASSERT_EQ(answers->size(), 3u);
  EXPECT_EQ((*answers)[0].status, 200);
  EXPECT_EQ((*answers)[1].status, 404);
  EXPECT_EQ((*answers)[1].answer, R"({"error":"no job"})");
  EXPECT_EQ((*answers)[2].status, 503);
}

TEST(ReportBatch, AnAnswerOfAnotherShapeOrCountIsNotRead) {
  EXPECT_FALSE(read_batch_answer(R"({"results":[{"status":200}]})", 2));  // one short
  EXPECT_FALSE(read_batch_answer(R"({"status":"ok"})", 1));               // a single answer
  EXPECT_FALSE(read_batch_answer(R"({"results":[{"answer":{}}]})", 1));   // no status
  EXPECT_FALSE(read_batch_answer("not json", 1));
  EXPECT_TRUE(read_batch_answer(R"({"results":[{"status":200}]})", 1));
}

}  // namespace
}  // namespace asya::sidecar
