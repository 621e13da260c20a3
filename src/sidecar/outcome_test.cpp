#include "sidecar/outcome.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace asya::sidecar {
namespace {

// The strings of docs/sidecar.md "Metrics" (processed_total{status}) and docs/protocol.md §3-§5
// (payload.error codes) plus the failed_total reasons of docs/sidecar.md. Adding an enum value
// without a row here fails AllFailureCodesAreListed.
const std::vector<std::pair<ProcessedStatus, std::string>> kStatuses = {
    {ProcessedStatus::kSuccess, "success"},
    {ProcessedStatus::kError, "error"},
    {ProcessedStatus::kRetry, "retry"},
    {ProcessedStatus::kRequeued, "requeued"},
};

const std::vector<std::pair<FailureCode, std::string>> kFailures = {
    {FailureCode::kNone, ""},
    {FailureCode::kMsgParsingError, "msg_parsing_error"},
    {FailureCode::kRouteMismatch, "route_mismatch"},
    {FailureCode::kRuntimeTimeout, "runtime_timeout"},
    {FailureCode::kRuntimeUnavailable, "runtime_unavailable"},
    {FailureCode::kRuntimeProtocolError, "runtime_protocol_error"},
    {FailureCode::kDeadlineExceeded, "deadline_exceeded"},
    {FailureCode::kMaxDeliveriesExceeded, "max_deliveries_exceeded"},
    {FailureCode::kMessageTooLarge, "message_too_large"},
    {FailureCode::kCancelled, "cancelled"},
    {FailureCode::kJoinTimeout, "join_timeout"},
    {FailureCode::kJoinGroupMissing, "join_group_missing"},
    {FailureCode::kPayloadUnavailable, "payload_unavailable"},
    {FailureCode::kProcessingError, "processing_error"},
    {FailureCode::kConnectionError, "connection_error"},
    {FailureCode::kResultStoreError, "result_store_error"},
    {FailureCode::kSendFailed, "send_failed"},
    {FailureCode::kDeliveryLost, "delivery_lost"},
    {FailureCode::kPayloadStoreError, "payload_store_error"},
    {FailureCode::kOther, "other"},
};

TEST(Outcome, ProcessedStatusLabelsAreTheDocumentedStrings) {
  std::set<std::string> seen;
  for (const auto& [status, text] : kStatuses) {
    EXPECT_EQ(label(status), text);
    EXPECT_TRUE(seen.insert(std::string(label(status))).second) << "duplicate label " << text;
  }
  EXPECT_EQ(kStatuses.size(), static_cast<std::size_t>(ProcessedStatus::kRequeued) + 1);
}

TEST(Outcome, FailureCodeLabelsAreTheDocumentedStringsAndUnique) {
  std::set<std::string> seen;
  for (const auto& [code, text] : kFailures) {
    EXPECT_EQ(label(code), text);
    EXPECT_TRUE(seen.insert(std::string(label(code))).second) << "duplicate label " << text;
  }
}

std::string read_doc(const std::string& name) {
  std::ifstream file(std::string(ASYA_SOURCE_DIR) + "/docs/" + name);
  EXPECT_TRUE(file.good()) << "cannot read docs/" << name;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Every label (but the empty one and the kOther placeholder) is written, in backticks, in
// docs/protocol.md (payload.error codes) or docs/sidecar.md (metric values).
TEST(Outcome, EveryLabelIsInTheDocs) {
  const std::string docs = read_doc("protocol.md") + read_doc("sidecar.md");
  for (const auto& [status, text] : kStatuses)
    EXPECT_NE(docs.find("`" + text + "`"), std::string::npos) << text;
  for (const auto& [code, text] : kFailures) {
    if (code == FailureCode::kNone || code == FailureCode::kOther) continue;
    EXPECT_NE(docs.find("`" + text + "`"), std::string::npos) << text;
  }
}

TEST(Outcome, AllFailureCodesAreListed) {
  ASSERT_EQ(kFailures.size(), static_cast<std::size_t>(FailureCode::kOther) + 1);
  for (std::size_t i = 0; i < kFailures.size(); ++i)
    EXPECT_EQ(static_cast<std::size_t>(kFailures[i].first), i);
}

TEST(Outcome, LabelsParseBackExceptOther) {
  for (const auto& [code, text] : kFailures) {
    auto parsed = failure_code_from_label(text);
    if (code == FailureCode::kOther) {
      EXPECT_FALSE(parsed.has_value());
    } else {
      ASSERT_TRUE(parsed.has_value()) << text;
      EXPECT_EQ(*parsed, code);
    }
  }
}

TEST(Outcome, FailureFromRuntimeMapsKnownCodesAndKeepsUnknownOnes) {
  Failure known = Failure::from_runtime("processing_error");
  EXPECT_TRUE(known);
  EXPECT_EQ(known.code(), FailureCode::kProcessingError);
  EXPECT_EQ(known.label(), "processing_error");

  Failure unknown = Failure::from_runtime("other");  // a runtime's code, not the placeholder
  EXPECT_EQ(unknown.code(), FailureCode::kOther);
  EXPECT_EQ(unknown.label(), "other");
  Failure custom = Failure::from_runtime("quota_exceeded");
  EXPECT_EQ(custom.code(), FailureCode::kOther);
  EXPECT_EQ(custom.label(), "quota_exceeded");

  Failure none;
  EXPECT_FALSE(none);
  EXPECT_EQ(none.label(), "");
  EXPECT_TRUE(Failure(FailureCode::kRuntimeTimeout) == FailureCode::kRuntimeTimeout);
}

}  // namespace
}  // namespace asya::sidecar
