#include "wire/batch.hpp"

#include <gtest/gtest.h>

namespace asya::wire {
namespace {

TEST(BatchRequest, IsAnArrayOfTheBodiesByteForByte) {
  EXPECT_EQ(batch_request({R"({"id":"a"})", R"({ "id" : "b" })"}),
            R"([{"id":"a"},{ "id" : "b" }])");
  EXPECT_EQ(batch_request({}), "[]");
}

TEST(SplitBatchResponse, GivesEachEnvelopesAnswerInOrder) {
  auto items = split_batch_response(
      R"( [ [{"payload":{"s":"]}\"["},"route":{}}] , [] ,[{"error":"processing_error"}]] )", 3);
  ASSERT_TRUE(items) << items.error().message;
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0], R"([{"payload":{"s":"]}\"["},"route":{}}])");
  EXPECT_EQ((*items)[1], "[]");
  EXPECT_EQ((*items)[2], R"([{"error":"processing_error"}])");
}

TEST(SplitBatchResponse, WrongCountNamesBothLengths) {
  auto items = split_batch_response("[[],[]]", 3);
  ASSERT_FALSE(items);
  EXPECT_NE(items.error().message.find("2 answers for a request of 3"), std::string::npos)
      << items.error().message;
}

TEST(SplitBatchResponse, RefusesWhatIsNotAnArrayOfArrays) {
  EXPECT_FALSE(split_batch_response(R"({"a":1})", 1));
  EXPECT_FALSE(split_batch_response(R"([{"payload":1}])", 1));
  EXPECT_FALSE(split_batch_response(R"([[}])", 1));
  EXPECT_FALSE(split_batch_response(R"([[] [])", 2));
  EXPECT_FALSE(split_batch_response(R"([[]] x)", 1));
  EXPECT_FALSE(split_batch_response(R"([["unterminated])", 1));
  auto empty = split_batch_response("[]", 0);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(ReadyFile, DeclaresBatchOnlyWithABatchLine) {
  EXPECT_TRUE(ready_file_declares_batch("1234\nbatch\n"));
  EXPECT_TRUE(ready_file_declares_batch("1234\n  batch  "));
  EXPECT_FALSE(ready_file_declares_batch("1234\n"));
  EXPECT_FALSE(ready_file_declares_batch(""));
  EXPECT_FALSE(ready_file_declares_batch("1234\nbatches\n"));
}

TEST(ReadyFile, DeclaresPipeliningOnlyWithAPipelineLine) {
  EXPECT_TRUE(ready_file_declares("1234\nbatch\npipeline\n", kPipelineCapability));
  EXPECT_FALSE(ready_file_declares("1234\nbatch\n", kPipelineCapability));
  EXPECT_FALSE(ready_file_declares("1234\npipelines\n", kPipelineCapability));
}

}  // namespace
}  // namespace asya::wire
