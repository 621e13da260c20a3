#include "gateway/mcp/tasks.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace asya::gateway::mcp {
namespace {

namespace json = boost::json;

Job running_job() {
  Job job;
  job.id = "job-1";
  job.status = JobStatus::running;
  job.actors = {"prep", "infer", "post"};
  job.current_actor_idx = 1;
  job.message = "processing in infer";
  job.created_at = Clock::time_point(std::chrono::milliseconds(1764979200000));
  job.updated_at = job.created_at + std::chrono::seconds(3);
  return job;
}

TEST(McpTasks, JobStatusesMapToTaskStatuses) {
  EXPECT_STREQ(task_status(JobStatus::pending), "working");
  EXPECT_STREQ(task_status(JobStatus::running), "working");
  EXPECT_STREQ(task_status(JobStatus::succeeded), "completed");
  EXPECT_STREQ(task_status(JobStatus::failed), "failed");
  EXPECT_STREQ(task_status(JobStatus::cancelled), "cancelled");
}

TEST(McpTasks, TaskJsonNamesTheCurrentActorAndStep) {
  Job job = running_job();
  json::object task = task_json(job);
  EXPECT_EQ(task.at("taskId"), "job-1");
  EXPECT_EQ(task.at("status"), "working");
  EXPECT_EQ(task.at("statusMessage"), "step 2 of 3: infer: processing in infer");
  EXPECT_EQ(task.at("createdAt"), "2025-12-06T00:00:00.000Z");
  EXPECT_EQ(task.at("lastUpdatedAt"), "2025-12-06T00:00:03.000Z");
  EXPECT_TRUE(task.at("ttl").is_null());
  EXPECT_EQ(task.at("pollInterval"), kTaskPollInterval.count());
  job.ttl_ms = 60000;
  job.status = JobStatus::cancelled;
  job.message = "cancelled: by the client";
  task = task_json(job);
  EXPECT_EQ(task.at("ttl"), 60000);
  EXPECT_EQ(task.at("status"), "cancelled");
  EXPECT_EQ(task.at("statusMessage"), "cancelled: by the client");
}

TEST(McpTasks, TaskParameterMustBeAnObjectWithAnOptionalTtl) {
  EXPECT_FALSE(parse_task_parameter(json::parse("{}")).value().has_value());
  EXPECT_EQ(parse_task_parameter(json::parse(R"({"ttl": 5000, "pollInterval": 10})")).value(),
            5000);
  auto not_object = parse_task_parameter(json::parse("true"));
  ASSERT_FALSE(not_object.ok());
  EXPECT_EQ(not_object.error().message,
            "params.task must be an object such as {\"ttl\": 60000}, got true");
  auto negative = parse_task_parameter(json::parse(R"({"ttl": -1})"));
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().message,
            "params.task.ttl must be a non-negative integer number of milliseconds, got -1");
  EXPECT_FALSE(parse_task_parameter(json::parse(R"({"ttl": "1h"})")).ok());
  EXPECT_FALSE(parse_task_parameter(json::parse(R"({"ttl": 1.5})")).ok());
}

TEST(McpTasks, CursorsRoundTripAndGarbageIsRefused) {
  TaskCursor cursor{1764979200000, "5e6fdb2d-1d6b-4e91-baef-73e825434e7b"};
  auto decoded = decode_task_cursor(encode_task_cursor(cursor));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->created_ms, cursor.created_ms);
  EXPECT_EQ(decoded->id, cursor.id);
  EXPECT_FALSE(decoded->order.has_value());
  // With the task's place among the tasks of its millisecond.
  cursor.order = 42;
  decoded = decode_task_cursor(encode_task_cursor(cursor));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->created_ms, cursor.created_ms);
  EXPECT_EQ(decoded->order, std::optional<std::int64_t>(42));
  EXPECT_EQ(decoded->id, cursor.id);
  // A cursor of an earlier version ("<ms>:<id>", hex) still reads, without an order.
  auto old = decode_task_cursor("c1.313a61");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->created_ms, 1);
  EXPECT_EQ(old->id, "a");
  EXPECT_FALSE(old->order.has_value());
  for (const char* garbage :
       {"", "garbage", "c1.", "c1.zz", "c1.123", "c1.3a616263", "c1.616263", "c1.313a", "c2.313a61",
        "c1.312e3a61",      // "1.:a"
        "c1.2e323a61",      // ".2:a"
        "c1.312e2d323a61",  // "1.-2:a"
        // "99999999999999999999:a": more than a 64-bit number
        "c1.39393939393939393939393939393939393939393a61",
        // Ids that are not text (api::plain_text): "1:\xff", "1.2:\xc3(", "1:a\0b", "1:a\nb"
        "c1.313aff", "c1.312e323ac328", "c1.313a610062", "c1.313a610a62"}) {
    EXPECT_FALSE(decode_task_cursor(garbage).has_value()) << garbage;
  }
}

TEST(McpTasks, OwnersAreTokenFingerprintsOnlyWhenTokensAreConfigured) {
  EXPECT_EQ(task_owner("Bearer alice", false), "");
  std::string alice = task_owner("Bearer alice", true);
  EXPECT_EQ(alice.rfind("token:", 0), 0u);
  EXPECT_EQ(alice, task_owner("bearer   alice ", true));
  EXPECT_NE(alice, task_owner("Bearer bob", true));
  EXPECT_EQ(alice.find("alice"), std::string::npos);  // the token itself is never stored
}

}  // namespace
}  // namespace asya::gateway::mcp
