// JobStore::status_of, what the cancellation check reads (PROTOCOL §7 POST
// /envelopes/{id}/check), on SQLite (always) and PostgreSQL (when ASYA_TEST_DATABASE_URL is set;
// tests/gateway/test_store.py runs every *postgres* case of this binary).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

class JobStatusTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-status-jobs") + ".db");
      store_ = open_sqlite_job_store(path_.string());
    } else {
      const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
      if (!url || !*url) GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set";
      store_ = open_postgres_job_store(url);
    }
  }
  void TearDown() override {
    store_.reset();
    if (!path_.empty()) {
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path_.string() + suffix);
    }
  }
  // Another gateway replica on the same database.
  std::unique_ptr<JobStore> open_again() {
    if (GetParam() == "sqlite") return open_sqlite_job_store(path_.string());
    return open_postgres_job_store(std::getenv("ASYA_TEST_DATABASE_URL"));
  }
  std::string create() {
    std::string id = unique_id("job");
    NewJob job{id, "tool", {"a", "b"},  R"({"actors":["a","b"],"current":0})", "{}", std::nullopt,
               "", false,  std::nullopt};
    EXPECT_TRUE(store_->create(job).ok());
    return id;
  }
  std::optional<JobStatus> status(const std::string& id, JobStore* store = nullptr) {
    auto read = (store ? store : store_.get())->status_of(id);
    EXPECT_TRUE(read.ok()) << read.error().message;
    return read.ok() ? read.value() : std::nullopt;
  }

  std::filesystem::path path_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobStatusTest, IsTheStatusGetReadsForRootsBranchesAndStrangers) {
  const std::string id = create();
  EXPECT_EQ(status(id), JobStatus::pending);
  ASSERT_TRUE(store_->progress(ProgressReport{id, {}, 0, "processing", ""}).ok());
  EXPECT_EQ(status(id), JobStatus::running);
  // A fan-out child is the job's too, announced or adopted (reported before its announcement).
  ASSERT_TRUE(store_->add_branch(BranchReport{id + "-1", id, {"a", "b"}, 1}).ok());
  EXPECT_EQ(status(id + "-1"), JobStatus::running);
  ASSERT_TRUE(store_->progress(ProgressReport{id + "-2", {}, 1, "processing", ""}).ok());
  EXPECT_EQ(status(id + "-2"), JobStatus::running);
  EXPECT_EQ(status(unique_id("stranger")), std::nullopt);
  EXPECT_EQ(status(id + "-9"), std::nullopt);  // a child nobody announced or reported
  EXPECT_EQ(status("' OR 1=1 --"), std::nullopt);
  for (const std::string& each : {id, id + "-1", id + "-2"})
    EXPECT_EQ(status(each), store_->get(each).value()->status) << each;
  // Every final status, as get() reads it.
  const std::string failed = create();
  ASSERT_TRUE(store_->fail(failed, "boom").ok());
  EXPECT_EQ(status(failed), JobStatus::failed);
  const std::string succeeded = create();
  FinalReport done;
  done.envelope_id = succeeded;
  done.status = JobStatus::succeeded;
  done.result_json = "1";
  ASSERT_TRUE(store_->finish(done).ok());
  EXPECT_EQ(status(succeeded), JobStatus::succeeded);
  ASSERT_TRUE(store_->cancel(id, "stop").ok());
  EXPECT_EQ(status(id), JobStatus::cancelled);
  EXPECT_EQ(status(id + "-1"), JobStatus::cancelled);
  EXPECT_EQ(status(id + "-2"), JobStatus::cancelled);
}

TEST_P(JobStatusTest, ACancelByAnotherReplicaIsSeenByTheNextRead) {
  const std::string id = create();
  auto other = open_again();
  EXPECT_EQ(status(id), JobStatus::pending);  // read (and cached, where a store caches) first
  ASSERT_TRUE(other->cancel(id, "cancelled elsewhere").ok());
  EXPECT_EQ(status(id), JobStatus::cancelled);
  EXPECT_EQ(status(id, other.get()), JobStatus::cancelled);
}

TEST_P(JobStatusTest, ReadsRacingACancelNeverSeeItUndone) {
  // Checks keep reading while reports are applied and another replica cancels: once a read saw
  // the cancel, or once cancel() returned, every later read says cancelled.
  const std::string id = create();
  auto other = open_again();
  std::atomic<bool> cancel_returned{false}, stop{false};
  std::atomic<int> reads{0}, regressions{0}, missed_after_return{0};
  std::thread reader([&] {
    bool seen = false;
    while (!stop) {
      const bool returned = cancel_returned.load();
      auto read = store_->status_of(id);
      if (!read.ok() || !read.value()) {
        ++regressions;
        continue;
      }
      const bool cancelled = *read.value() == JobStatus::cancelled;
      if (seen && !cancelled) ++regressions;
      if (returned && !cancelled) ++missed_after_return;
      seen = seen || cancelled;
      ++reads;
    }
  });
  std::thread reporter([&] {
    for (int i = 0; i < 50 && !stop; ++i)
      (void)store_->progress(ProgressReport{id, {}, i % 2, "processing", ""});
  });
  while (reads < 20 && regressions == 0) std::this_thread::yield();
  ASSERT_TRUE(other->cancel(id, "race").ok());
  cancel_returned = true;
  const int after = reads + 20;
  while (reads < after && regressions == 0) std::this_thread::yield();
  stop = true;
  reader.join();
  reporter.join();
  EXPECT_EQ(regressions, 0);
  EXPECT_EQ(missed_after_return, 0);
  EXPECT_EQ(status(id), JobStatus::cancelled);
}

INSTANTIATE_TEST_SUITE_P(Stores, JobStatusTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
