// Resumable stream event ids and log levels without sockets.
#include <gtest/gtest.h>

#include "gateway/mcp/generic.hpp"
#include "gateway/mcp/streams.hpp"

namespace asya::gateway::mcp {
namespace {

TEST(StreamEventId, RoundTripsJobAndRequestId) {
  for (const std::string request_id : {"7", "\"call-1\"", "\"a/b p r\""}) {
    for (bool result : {false, true}) {
      std::string id = stream_event_id("5e6fdb2d-1d6b", request_id, result);
      auto parsed = parse_stream_event_id(id);
      ASSERT_TRUE(parsed) << id;
      EXPECT_EQ(parsed->job_id, "5e6fdb2d-1d6b");
      EXPECT_EQ(parsed->request_id_json, request_id);
      EXPECT_EQ(parsed->after_result, result);
    }
  }
}

TEST(StreamEventId, RefusesWhatThisServerDidNotMake) {
  for (const char* bad : {"", "garbage", "job/x/31", "job/p/", "job/p/3", "job/p/zz", "/p/31",
                          "job/p/7b7d" /* {} is not a request id */}) {
    EXPECT_FALSE(parse_stream_event_id(bad)) << bad;
  }
}

TEST(PrimingEvent, HasAnIdARetryAndEmptyData) {
  EXPECT_EQ(priming_event("j/p/31", std::chrono::milliseconds(500)),
            "id: j/p/31\nretry: 500\ndata: \n\n");
}

TEST(LogLevel, ParsesTheEightLevelsAndRanksUpdates) {
  EXPECT_EQ(parse_log_level("warning"), LogLevel::warning);
  EXPECT_FALSE(parse_log_level("warn"));
  EXPECT_STREQ(log_level_name(LogLevel::emergency), "emergency");
  Update update;
  update.envelope_state = "processing";
  EXPECT_EQ(update_log_level(update), LogLevel::debug);
  update.envelope_state = "completed";
  EXPECT_EQ(update_log_level(update), LogLevel::info);
  update.envelope_state = "failed";
  EXPECT_EQ(update_log_level(update), LogLevel::error);
}

}  // namespace
}  // namespace asya::gateway::mcp
