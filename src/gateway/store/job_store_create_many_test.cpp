// JobStore::create_many (concurrent tool calls written together), against SQLite (always) and
// PostgreSQL (when ASYA_TEST_DATABASE_URL is set; tests/gateway/test_store.py sets it).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

class CreateManyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-create-many") + ".db");
      store_ = open_sqlite_job_store(path_.string());
    } else {
      const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
      if (!url || !*url)
        GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set (tests/gateway/test_store.py sets it)";
      store_ = open_postgres_job_store(url);
    }
  }
  void TearDown() override {
    store_.reset();
    if (path_.empty()) return;
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path_.string() + suffix);
  }
  std::unique_ptr<JobStore> open_again() {
    if (GetParam() == "sqlite") return open_sqlite_job_store(path_.string());
    return open_postgres_job_store(std::getenv("ASYA_TEST_DATABASE_URL"));
  }
  static NewJob job(std::string id, std::string payload, bool task = false) {
    return NewJob{
        std::move(id),      "tool",       {"a", "b"}, R"({"actors":["a","b"],"current":0})",
        std::move(payload), std::nullopt, "owner-1",  task,
        std::nullopt};
  }

  std::filesystem::path path_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(CreateManyTest, EachJobOfABatchIsRecordedOnItsOwnAndADuplicateFailsOnlyItself) {
  const std::string taken = unique_id("taken");
  ASSERT_TRUE(store_->create(job(taken, R"({"first":true})")).ok());
  std::vector<NewJob> jobs;
  for (int i = 0; i < 5; ++i)
    jobs.push_back(job(i == 2 ? taken : unique_id("many"), "{\"n\":" + std::to_string(i) + "}",
                       /*task=*/i == 4));
  std::vector<Status> results = store_->create_many(jobs);
  ASSERT_EQ(results.size(), jobs.size());
  EXPECT_FALSE(results[2].ok());
  EXPECT_NE(results[2].message().find("exists already"), std::string::npos) << results[2].message();
  // Read from another store on the same database: what create_many returned Ok is durable.
  auto other = open_again();
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (i == 2) continue;
    EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].message();
    auto found = other->get(jobs[i].id);
    ASSERT_TRUE(found.ok() && found.value().has_value()) << jobs[i].id;
    EXPECT_EQ(found.value()->status, JobStatus::pending);
    EXPECT_EQ(found.value()->payload_json, jobs[i].payload_json);
    EXPECT_EQ(found.value()->owner, "owner-1");
    auto updates = other->updates(jobs[i].id, 0);
    ASSERT_TRUE(updates.ok());
    ASSERT_EQ(updates.value().size(), 1u) << jobs[i].id;
    EXPECT_EQ(updates.value()[0].sequence, 1);
  }
  // The duplicate changed nothing of the job that had the id first.
  EXPECT_EQ(other->get(taken).value()->payload_json, R"({"first":true})");
  // The task of the batch is listed as one.
  auto tasks = other->list_tasks("owner-1", std::nullopt, 100);
  ASSERT_TRUE(tasks.ok());
  bool listed = false;
  for (const Job& t : tasks.value().tasks) listed = listed || t.id == jobs[4].id;
  EXPECT_TRUE(listed);
}

TEST_P(CreateManyTest, MoreJobsThanOneTransactionTakesAreAllRecorded) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < 75; ++i) jobs.push_back(job(unique_id("bulk"), "{}"));
  std::vector<Status> results = store_->create_many(jobs);
  ASSERT_EQ(results.size(), jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_TRUE(results[i].ok()) << results[i].message();
    auto found = store_->get(jobs[i].id);
    EXPECT_TRUE(found.ok() && found.value().has_value()) << jobs[i].id;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, CreateManyTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
