// Jobs by owner (JobFilter::owner, the gateway_jobs.owner column of schema 5), against SQLite
// (always) and PostgreSQL (when ASYA_TEST_DATABASE_URL is set, as tests/gateway/test_store.py
// does), including the migration of a database written by a schema-4 gateway; and the spans of a
// schema-6 database through the migration to 7.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <thread>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_database.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::run_sql;
using testing::unique_id;

class JobOwnerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    db_.emplace(GetParam());
    if (db_->skipped())
      GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set (tests/gateway/test_store.py sets it)";
    where_ = db_->where();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }

  // The first column of the first row of `sql` as a number (0 when there is no row), read
  // directly from the test database.
  int query_count(const std::string& sql) {
    auto rows = db_->rows(sql);
    return rows.empty() || rows.front().empty() ? 0 : std::atoi(rows.front().front().c_str());
  }

  void open() {
    store_.reset();
    store_ = db_->open();
  }

  std::string create(const std::string& owner, const std::string& tool = "tool") {
    std::string id = unique_id("job");
    NewJob job;
    job.id = id;
    job.tool = tool;
    job.actors = {"a"};
    job.route_json = R"({"actors":["a"],"current":0})";
    job.payload_json = "{}";
    job.owner = owner;
    Status status = store_->create(job);
    EXPECT_TRUE(status.ok()) << status.message();
    // Distinct creation milliseconds, so "newest first" has one answer.
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    return id;
  }

  std::vector<std::string> ids(const JobFilter& filter, std::size_t limit = 50,
                               std::optional<JobCursor> after = std::nullopt,
                               std::optional<JobCursor>* next = nullptr) {
    auto page = store_->list_jobs(filter, after, limit);
    EXPECT_TRUE(page.ok()) << page.error().message;
    std::vector<std::string> out;
    if (!page.ok()) return out;
    for (const auto& job : page.value().jobs) out.push_back(job.id);
    if (next) *next = page.value().next;
    return out;
  }

  static JobFilter of(std::optional<std::string> owner) {
    JobFilter filter;
    filter.owner = std::move(owner);
    return filter;
  }

  std::optional<testing::TestDatabase> db_;  // a database of the test's own
  std::string where_;                        // db_->where()
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobOwnerTest, AnOwnerFilterListsOnlyThatOwnersJobsNewestFirstInPages) {
  open();
  std::string alice_first = create("token:aaaa");
  std::string bob = create("token:bbbb");
  std::string nobody = create("");
  std::string alice_second = create("token:aaaa", "other");

  EXPECT_EQ(ids(of("token:aaaa")), (std::vector<std::string>{alice_second, alice_first}));
  EXPECT_EQ(ids(of("token:bbbb")), std::vector<std::string>{bob});
  EXPECT_EQ(ids(of("")), std::vector<std::string>{nobody});
  EXPECT_TRUE(ids(of("token:cccc")).empty());
  EXPECT_EQ(ids(of(std::nullopt)),
            (std::vector<std::string>{alice_second, nobody, bob, alice_first}));

  // Pages and the other filters combine with the owner.
  std::optional<JobCursor> next;
  EXPECT_EQ(ids(of("token:aaaa"), 1, std::nullopt, &next), std::vector<std::string>{alice_second});
  ASSERT_TRUE(next);
  EXPECT_EQ(ids(of("token:aaaa"), 1, next, &next), std::vector<std::string>{alice_first});
  EXPECT_FALSE(next);
  JobFilter tool = of("token:aaaa");
  tool.tool = "tool";
  EXPECT_EQ(ids(tool), std::vector<std::string>{alice_first});
  FinalReport done{bob, JobStatus::succeeded, "1", "", "", std::nullopt};
  ASSERT_TRUE(store_->finish(done).ok());
  JobFilter succeeded = of("token:aaaa");
  succeeded.status = JobStatus::succeeded;
  EXPECT_TRUE(ids(succeeded).empty());
  succeeded.owner = "token:bbbb";
  EXPECT_EQ(ids(succeeded), std::vector<std::string>{bob});
  EXPECT_EQ(store_->get(bob).value()->owner, "token:bbbb");
}

// A database of schema version 4 (no owner column; its jobs keep their owner only in their
// documents): opening it migrates to 5 and fills the column from the documents.
TEST_P(JobOwnerTest, AVersion4DatabaseIsMigratedAndItsJobsListedByOwner) {
  open();
  std::string alice = create("token:aaaa");
  std::string bob = create("token:bbbb");
  std::string nobody = create("");
  store_.reset();
  run_sql(GetParam(), where_,
          "DROP INDEX gateway_jobs_owner; ALTER TABLE gateway_jobs DROP COLUMN owner; "
          "UPDATE gateway_schema SET version = 4;");

  open();
  std::string alice_new = create("token:aaaa");
  EXPECT_EQ(ids(of("token:aaaa")), (std::vector<std::string>{alice_new, alice}));
  EXPECT_EQ(ids(of("token:bbbb")), std::vector<std::string>{bob});
  EXPECT_EQ(ids(of("")), std::vector<std::string>{nobody});
  EXPECT_EQ(ids(of(std::nullopt)).size(), 4u);
  store_.reset();
  // The version reached is recorded: opening again migrates nothing and changes nothing.
  run_sql(GetParam(), where_,
          "UPDATE gateway_jobs SET owner = 'token:moved' WHERE id = '" + bob + "'");
  open();
  EXPECT_EQ(ids(of("token:moved")), std::vector<std::string>{bob});
}

// A database of schema version 6 (spans keyed by (trace_id, span_id) with an index on
// (job_id, start_ns)): opening it migrates to 7 (keyed by job first, no second index) and keeps
// every span; a span sent again is still a duplicate, and the job's cap still counts the old ones.
TEST_P(JobOwnerTest, AVersion6DatabaseKeepsItsSpansAndTheirDeduplication) {
  open();
  std::string job = create("token:aaaa");
  store_.reset();
  const std::string trace = "0af7651916cd43dd8448eb211c80319c";
  const std::string now_ms = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  auto old_row = [&](const std::string& span_id, int start) {
    return "INSERT INTO gateway_spans VALUES ('" + trace + "', '" + span_id + "', '" + job + "', " +
           std::to_string(start) + ", " + now_ms + ", '{\"span_id\":\"" + span_id + "\"}');";
  };
  run_sql(GetParam(), where_,
          "DROP TABLE gateway_spans; "
          "CREATE TABLE gateway_spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
          "job_id TEXT NOT NULL, start_ns BIGINT NOT NULL, received_ms BIGINT NOT NULL, "
          "document TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)); "
          "CREATE INDEX gateway_spans_job ON gateway_spans(job_id, start_ns); "
          "CREATE INDEX gateway_spans_received ON gateway_spans(received_ms); " +
              old_row("00000000000000b2", 20) + old_row("00000000000000a1", 10) +
              "UPDATE gateway_schema SET version = 6;");

  open();
  SpanLimits limits;
  limits.max_spans_per_job = 3;
  auto span = [&](const std::string& span_id, std::int64_t start) {
    return SpanRecord{job, trace, span_id, start, R"({"span_id":")" + span_id + R"("})"};
  };
  auto write = store_->add_spans(
      {span("00000000000000a1", 10), span("00000000000000c3", 30), span("00000000000000d4", 40)},
      limits, Clock::now());
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().duplicates, 1u);
  EXPECT_EQ(write.value().stored, 1u);
  EXPECT_EQ(write.value().over_limit, 1u);
  auto spans = store_->spans(job);
  ASSERT_TRUE(spans.ok()) << spans.error().message;
  ASSERT_EQ(spans.value().size(), 3u);
  EXPECT_EQ(spans.value()[0].span_id, "00000000000000a1");
  EXPECT_EQ(spans.value()[0].document, R"({"span_id":"00000000000000a1"})");
  EXPECT_EQ(spans.value()[1].span_id, "00000000000000b2");
  EXPECT_EQ(spans.value()[2].span_id, "00000000000000c3");
  store_.reset();
  // The old index went with the old table; the pruning index is there again.
  const std::string indexes =
      GetParam() == "sqlite"
          ? "SELECT 1 FROM sqlite_master WHERE name = 'gateway_spans_received' AND "
            "(SELECT COUNT(*) FROM sqlite_master WHERE name = 'gateway_spans_job') = 0"
          : "SELECT 1 FROM pg_indexes WHERE indexname = 'gateway_spans_received' AND "
            "schemaname = current_schema() AND (SELECT COUNT(*) FROM pg_indexes WHERE "
            "indexname = 'gateway_spans_job' AND schemaname = current_schema()) = 0";
  EXPECT_EQ(query_count(indexes), 1);
}

// A database of schema version 9 (lists ordered by (created_ms, id), no creation order): opening
// it migrates to 10. Its jobs, two of them of one millisecond, are each listed once, page by page
// with cursors of either version; jobs created afterwards come before them, in creation order.
TEST_P(JobOwnerTest, AVersion9DatabaseGetsACreationOrderAndKeepsListingItsJobs) {
  open();
  std::string first = create("token:aaaa");
  std::string second = create("token:aaaa");
  std::string third = create("token:aaaa");
  store_.reset();
  const std::string downgrade =
      GetParam() == "sqlite"
          ? "DROP INDEX gateway_jobs_created; DROP INDEX gateway_jobs_owner; "
            "DROP INDEX gateway_tasks_owner; "
          : "ALTER TABLE gateway_jobs DROP COLUMN seq; ALTER TABLE gateway_tasks DROP COLUMN seq; "
            "DROP SEQUENCE gateway_jobs_seq; DROP SEQUENCE gateway_tasks_seq; ";
  run_sql(
      GetParam(), where_,
      downgrade +
          "CREATE INDEX gateway_jobs_created ON gateway_jobs(created_ms, id); "
          "CREATE INDEX gateway_jobs_owner ON gateway_jobs(owner, created_ms, id); "
          "CREATE INDEX gateway_tasks_owner ON gateway_tasks(owner, created_ms, id); "
          // The second and third of one millisecond.
          "UPDATE gateway_jobs SET created_ms = (SELECT created_ms FROM gateway_jobs WHERE id = '" +
          second + "') WHERE id = '" + third + "'; UPDATE gateway_schema SET version = 9;");

  open();
  std::string fourth = create("token:aaaa");
  std::string fifth = create("token:aaaa");
  std::vector<std::string> all = ids(of("token:aaaa"));
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0], fifth);
  EXPECT_EQ(all[1], fourth);
  EXPECT_EQ(std::set<std::string>(all.begin() + 2, all.begin() + 4),
            (std::set<std::string>{second, third}));
  EXPECT_EQ(all[4], first);
  std::vector<std::string> paged;
  std::optional<JobCursor> next;
  do {
    auto page = ids(of("token:aaaa"), 1, next, &next);
    paged.insert(paged.end(), page.begin(), page.end());
    // Every other page with the cursor as an earlier version gave it (no order).
    if (next && paged.size() % 2 == 0) next->order.reset();
  } while (next && paged.size() <= all.size());
  EXPECT_EQ(paged, all);
  // The version reached is recorded; the order survives reopening.
  store_.reset();
  EXPECT_EQ(query_count("SELECT MAX(version) FROM gateway_schema"), 10);
  open();
  EXPECT_EQ(ids(of("token:aaaa")), all);
}

INSTANTIATE_TEST_SUITE_P(Stores, JobOwnerTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
