#include "local/sidecar_counters.hpp"

#include <gtest/gtest.h>

namespace asya::local {
namespace {

TEST(SidecarCounters, SumsProcessedByStatusLabel) {
  auto counters = count_processed(
      "# HELP asya_actor_messages_processed_total Messages processed\n"
      "# TYPE asya_actor_messages_processed_total counter\n"
      "asya_actor_messages_processed_total{queue=\"asya-echo\",status=\"success\"} 7\n"
      "asya_actor_messages_processed_total{queue=\"asya-echo\",status=\"error\"} 2\n"
      "asya_actor_messages_processed_total{queue=\"asya-echo\",status=\"retry\"} 5\n"
      "asya_actor_messages_received_total{queue=\"asya-echo\",status=\"success\"} 100\n");
  EXPECT_EQ(counters.processed, 9);
  EXPECT_EQ(counters.errors, 2);
}

TEST(SidecarCounters, ALabelValueContainingStatusSuccessIsNotASuccess) {
  // The old reader matched the text status="success" anywhere in the line.
  auto counters = count_processed(
      "asya_actor_messages_processed_total{queue=\"q\\\",status=\\\"success\",status=\"retry\"} "
      "4\n"
      "asya_actor_messages_processed_total{note=\"status=\\\"error\\\"\",status=\"success\"} 1\n");
  EXPECT_EQ(counters.processed, 1);
  EXPECT_EQ(counters.errors, 0);
}

TEST(SidecarCounters, JunkAndAnEmptyExpositionCountNothing) {
  auto counters = count_processed(
      "asya_actor_messages_processed_total{status=\"success\" 3\n"
      "asya_actor_messages_processed_total{status=\"success\"} three\n"
      "not a metric at all\n");
  EXPECT_EQ(counters.processed, 0);
  EXPECT_EQ(count_processed("").processed, 0);
}

TEST(SidecarCounters, AnUnreachableSidecarHasNoCounters) {
  EXPECT_FALSE(read_sidecar_counters(0));
}

}  // namespace
}  // namespace asya::local
