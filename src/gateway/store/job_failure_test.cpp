#include <gtest/gtest.h>

#include "gateway/store/job_store.hpp"

namespace asya::gateway {
namespace {

Job failed(std::string error, std::string details, std::string actor) {
  Job job;
  job.status = JobStatus::failed;
  job.error = std::move(error);
  job.error_details_json = std::move(details);
  job.failed_actor = std::move(actor);
  return job;
}

TEST(DescribeFailure, NamesTheExceptionTheCodeAndTheActor) {
  EXPECT_EQ(describe_failure(failed("processing_error",
                                    R"({"message":"'text'","type":"KeyError","traceback":"tb"})",
                                    "score")),
            R"(KeyError: 'text' (processing_error in actor "score"))");
}

TEST(DescribeFailure, AMessageCopiedIntoTheErrorIsNotRepeated) {
  EXPECT_EQ(describe_failure(failed("boom", R"({"message":"boom","type":"ValueError"})", "a")),
            R"(ValueError: boom (in actor "a"))");
}

TEST(DescribeFailure, SidecarFailuresWithOnlyAMessage) {
  EXPECT_EQ(
      describe_failure(failed("runtime_timeout", R"({"message":"no answer within 5s"})", "slow")),
      R"(no answer within 5s (runtime_timeout in actor "slow"))");
  EXPECT_EQ(describe_failure(failed("runtime_unavailable", "", "slow")),
            R"(runtime_unavailable (in actor "slow"))");
}

TEST(DescribeFailure, WithNothingMoreKnownTheErrorAlone) {
  EXPECT_EQ(describe_failure(failed("timed out", "", "")), "timed out");
  EXPECT_EQ(describe_failure(failed("", "", "")), "failed");
  EXPECT_EQ(describe_failure(failed("processing_error", "not json", "")), "processing_error");
  EXPECT_EQ(describe_failure(failed("processing_error", R"({"type":"RuntimeError"})", "")),
            "RuntimeError (processing_error)");
}

}  // namespace
}  // namespace asya::gateway
