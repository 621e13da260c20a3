// A join actor's running count in progress reports (PROTOCOL §7 "branches_joined" of
// "branches_total"), on SQLite (always) and PostgreSQL (when ASYA_TEST_DATABASE_URL is set;
// tests/gateway/test_store.py runs every *postgres* case of this binary).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

class JoinProgressStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-join-jobs") + ".db");
      store_ = open_sqlite_job_store(path_.string());
    } else {
      const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
      if (!url || !*url) GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set";
      store_ = open_postgres_job_store(url);
    }
    id_ = unique_id("job");
    NewJob job{id_,
               "tool",
               {"split", "score", "combine"},
               R"({"actors":["split"],"current":0})",
               "{}",
               std::nullopt,
               "",
               false,
               std::nullopt};
    ASSERT_TRUE(store_->create(job).ok());
  }
  void TearDown() override {
    store_.reset();
    if (!path_.empty())
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path_.string() + suffix);
  }
  ChangeResult joined(std::size_t stored, std::size_t count) {
    ProgressReport r{id_, {}, 2, "received", ""};
    r.message = "joined " + std::to_string(stored) + " of " + std::to_string(count);
    r.branches_joined = stored;
    r.branches_total = count;
    auto result = store_->progress(r);
    EXPECT_TRUE(result.ok()) << result.error().message;
    return result.value();
  }
  std::string message() {
    auto job = store_->get(id_);
    EXPECT_TRUE(job.ok() && job.value());
    return job.value()->message;
  }
  std::filesystem::path path_;
  std::unique_ptr<JobStore> store_;
  std::string id_;
};

TEST_P(JoinProgressStoreTest, TheJoinsPercentRisesWithItsBranchesAndStaysBelowCompleted) {
  ASSERT_TRUE(store_->progress(ProgressReport{id_, {}, 1, "completed", ""}).ok());  // 66
  EXPECT_EQ(joined(1, 20).progress_percent, 71);   // (2*100 + 10 + 80*1/20) / 3
  EXPECT_EQ(joined(10, 20).progress_percent, 83);  // (200 + 10 + 40) / 3
  EXPECT_EQ(joined(20, 20).progress_percent, 96);  // (200 + 90) / 3: completed is the join's
  EXPECT_EQ(message(), "joined 20 of 20");
}

TEST_P(JoinProgressStoreTest, ALateLowerCountIsIgnoredAndTheMessageStays) {
  EXPECT_EQ(joined(10, 20).outcome, Outcome::applied);
  auto late = joined(5, 20);  // another replica's report, overtaken on the way
  EXPECT_EQ(late.outcome, Outcome::ignored);
  EXPECT_EQ(late.progress_percent, 83);
  EXPECT_EQ(message(), "joined 10 of 20");
  EXPECT_EQ(joined(11, 20).outcome, Outcome::applied);
  EXPECT_EQ(message(), "joined 11 of 20");
}

INSTANTIATE_TEST_SUITE_P(Stores, JoinProgressStoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
