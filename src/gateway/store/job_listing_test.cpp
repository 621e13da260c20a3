// list_jobs and the span methods of the job store, against SQLite (always) and PostgreSQL (when
// ASYA_TEST_DATABASE_URL is set, as tests/gateway/test_store.py does).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

// A random lowercase UUID (as the gateway's job ids), distinct per call and per run.
std::string new_test_uuid() {
  static std::atomic<unsigned> counter{0};
  char text[37];
  auto now =
      static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::snprintf(text, sizeof text, "%08x-%04x-4%03x-8%03x-%012llx",
                static_cast<unsigned>(::getpid()), counter++ & 0xffff,
                static_cast<unsigned>(now & 0xfff), static_cast<unsigned>((now >> 12) & 0xfff),
                (now >> 24) & 0xffffffffffffULL);
  return text;
}

class JobListingTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-listing") + ".db");
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
    if (!path_.empty()) {
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path_.string() + suffix);
    }
  }

  std::string create(const std::string& tool) {
    std::string id = unique_id("job");
    NewJob job{id, tool,  {"a", "b"},  R"({"actors":["a","b"],"current":0})", "{}", std::nullopt,
               "", false, std::nullopt};
    Status status = store_->create(job);
    EXPECT_TRUE(status.ok()) << status.message();
    // Distinct creation milliseconds, so "newest first" has one answer.
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    return id;
  }

  JobPage list(const JobFilter& filter, const std::optional<JobCursor>& after, std::size_t limit) {
    auto page = store_->list_jobs(filter, after, limit);
    EXPECT_TRUE(page.ok()) << page.error().message;
    return page.ok() ? page.value() : JobPage{};
  }

  static SpanRecord span(const std::string& job_id, const std::string& span_id,
                         std::int64_t start) {
    return SpanRecord{job_id, "0af7651916cd43dd8448eb211c80319c", span_id, start,
                      R"({"span_id":")" + span_id + R"("})"};
  }

  std::filesystem::path path_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobListingTest, JobsAreListedNewestFirstInPagesWithFilters) {
  std::string tool = unique_id("tool");
  std::string other_tool = unique_id("other");
  std::string first = create(tool);
  std::string second = create(other_tool);
  std::string third = create(tool);
  std::string fourth = create(tool);
  FinalReport done{third, JobStatus::succeeded, "1", "", "", std::nullopt};
  ASSERT_TRUE(store_->finish(done).ok());

  JobPage page = list(JobFilter{std::nullopt, tool}, std::nullopt, 2);
  ASSERT_EQ(page.jobs.size(), 2u);
  EXPECT_EQ(page.jobs[0].id, fourth);
  EXPECT_EQ(page.jobs[1].id, third);
  ASSERT_TRUE(page.next);
  JobPage rest = list(JobFilter{std::nullopt, tool}, page.next, 2);
  ASSERT_EQ(rest.jobs.size(), 1u);
  EXPECT_EQ(rest.jobs[0].id, first);
  EXPECT_FALSE(rest.next);

  JobPage succeeded = list(JobFilter{JobStatus::succeeded, tool}, std::nullopt, 10);
  ASSERT_EQ(succeeded.jobs.size(), 1u);
  EXPECT_EQ(succeeded.jobs[0].id, third);
  EXPECT_EQ(succeeded.jobs[0].status, JobStatus::succeeded);

  JobPage everything = list(JobFilter{}, std::nullopt, 4);
  ASSERT_EQ(everything.jobs.size(), 4u);
  EXPECT_EQ(everything.jobs[0].id, fourth);
  EXPECT_EQ(everything.jobs[2].id, second);
}

// Jobs (and MCP tasks) created back to back until two of them share a creation millisecond; their
// ids sort against their creation order, so the ids cannot give the order the list must keep.
// Returns the ids in creation order.
std::vector<std::string> create_until_two_share_a_millisecond(JobStore& store,
                                                              const std::string& tool,
                                                              const std::string& owner, bool task) {
  std::vector<std::string> ids;
  std::int64_t previous_ms = -1;
  bool shared = false;
  const std::string prefix = unique_id("tie");
  for (int i = 999; i >= 0 && !(shared && ids.size() >= 4); --i) {
    std::string id = prefix + "-" + std::to_string(100000 + i);  // descending
    NewJob job{id,    tool, {"a"},       R"({"actors":["a"],"current":0})", "{}", std::nullopt,
               owner, task, std::nullopt};
    Status status = store.create(job);
    EXPECT_TRUE(status.ok()) << status.message();
    if (!status.ok()) break;
    auto created = store.get(id);
    const std::int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                created.value()->created_at.time_since_epoch())
                                .count();
    shared = shared || ms == previous_ms;
    previous_ms = ms;
    ids.push_back(id);
  }
  EXPECT_TRUE(shared) << "no two of " << ids.size() << " jobs created back to back shared a "
                      << "millisecond: nothing was tested";
  return ids;
}

TEST_P(JobListingTest, JobsOfOneMillisecondAreListedNewestFirstInTheOrderTheyWereCreated) {
  std::string tool = unique_id("tool");
  std::vector<std::string> created = create_until_two_share_a_millisecond(*store_, tool, "", false);
  std::vector<std::string> newest_first(created.rbegin(), created.rend());
  std::vector<std::string> listed;
  for (const auto& job : list(JobFilter{std::nullopt, tool}, std::nullopt, 1000).jobs)
    listed.push_back(job.id);
  EXPECT_EQ(listed, newest_first);

  // Page by page, one job each: every cursor continues right after its job, ties included.
  std::vector<std::string> paged;
  std::optional<JobCursor> cursor;
  do {
    JobPage page = list(JobFilter{std::nullopt, tool}, cursor, 1);
    ASSERT_LE(page.jobs.size(), 1u);
    for (const auto& job : page.jobs) paged.push_back(job.id);
    if (page.next) {
      EXPECT_TRUE(page.next->order.has_value());
    }
    cursor = page.next;
  } while (cursor && paged.size() <= created.size());
  EXPECT_EQ(paged, newest_first);

  // A cursor of an earlier version (no order): it continues after the job it names.
  for (std::size_t i = 0; i + 1 < newest_first.size(); ++i) {
    auto job = store_->get(newest_first[i]).value();
    JobCursor old{
        std::chrono::duration_cast<std::chrono::milliseconds>(job->created_at.time_since_epoch())
            .count(),
        job->id};
    JobPage rest = list(JobFilter{std::nullopt, tool}, old, 1000);
    std::vector<std::string> rest_ids;
    for (const auto& j : rest.jobs) rest_ids.push_back(j.id);
    EXPECT_EQ(rest_ids, std::vector<std::string>(newest_first.begin() + static_cast<long>(i) + 1,
                                                 newest_first.end()))
        << "after " << job->id;
  }
}

TEST_P(JobListingTest, TasksOfOneMillisecondAreListedOldestFirstInTheOrderTheyWereCreated) {
  std::string owner = unique_id("owner");
  std::vector<std::string> created =
      create_until_two_share_a_millisecond(*store_, unique_id("tool"), owner, true);
  std::vector<std::string> listed;
  std::optional<TaskCursor> cursor;
  do {
    auto page = store_->list_tasks(owner, cursor, 1);
    ASSERT_TRUE(page.ok()) << page.error().message;
    for (const auto& task : page.value().tasks) listed.push_back(task.id);
    cursor = page.value().next;
  } while (cursor && listed.size() <= created.size());
  EXPECT_EQ(listed, created);

  // A cursor of an earlier version (no order) continues after the task it names.
  auto second = store_->get(created[1]).value();
  TaskCursor old{
      std::chrono::duration_cast<std::chrono::milliseconds>(second->created_at.time_since_epoch())
          .count(),
      second->id};
  auto rest = store_->list_tasks(owner, old, 1000);
  ASSERT_TRUE(rest.ok()) << rest.error().message;
  std::vector<std::string> rest_ids;
  for (const auto& task : rest.value().tasks) rest_ids.push_back(task.id);
  EXPECT_EQ(rest_ids, std::vector<std::string>(created.begin() + 2, created.end()));
}

TEST_P(JobListingTest, SpansAreOrderedByStartDeduplicatedAndCappedPerJob) {
  std::string job = create(unique_id("tool"));
  std::string other = create(unique_id("tool"));
  SpanLimits limits;
  limits.max_spans_per_job = 3;
  auto now = Clock::now();
  auto write =
      store_->add_spans({span(job, "00000000000000b2", 20), span(job, "00000000000000a1", 10),
                         span(other, "00000000000000c3", 5)},
                        limits, now);
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().stored, 3u);

  // A retried export stores nothing twice; the fourth span of `job` is over its limit.
  write = store_->add_spans({span(job, "00000000000000a1", 10), span(job, "00000000000000d4", 30),
                             span(job, "00000000000000e5", 40)},
                            limits, now);
  ASSERT_TRUE(write.ok()) << write.error().message;
  EXPECT_EQ(write.value().duplicates, 1u);
  EXPECT_EQ(write.value().stored, 1u);
  EXPECT_EQ(write.value().over_limit, 1u);

  auto spans = store_->spans(job);
  ASSERT_TRUE(spans.ok()) << spans.error().message;
  ASSERT_EQ(spans.value().size(), 3u);
  EXPECT_EQ(spans.value()[0].span_id, "00000000000000a1");
  EXPECT_EQ(spans.value()[1].span_id, "00000000000000b2");
  EXPECT_EQ(spans.value()[2].span_id, "00000000000000d4");
  EXPECT_EQ(spans.value()[0].document, R"({"span_id":"00000000000000a1"})");
  EXPECT_EQ(store_->spans(other).value().size(), 1u);
}

TEST_P(JobListingTest, AJobIsFoundByTheTraceItsEnvelopeStarted) {
  std::string id = unique_id("traced");
  std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  trace[0] = static_cast<char>('a' + (id.size() % 6));  // another trace per run on PostgreSQL
  trace.replace(
      1, 12,
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()).substr(0, 12));
  NewJob job{id,    "tool",       {"a"}, R"({"actors":["a"],"current":0})", "{}", std::nullopt, "",
             false, std::nullopt, trace};
  ASSERT_TRUE(store_->create(job).ok());
  auto found = store_->job_of_trace(trace);
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_TRUE(found.value());
  EXPECT_EQ(*found.value(), id);
  EXPECT_EQ(store_->get(id).value()->trace_id, trace);
  EXPECT_FALSE(store_->job_of_trace("0000000000000000000000000000000f").value());
}

// The gateway's own calls: the trace id is the job id's hex (trace_id_of_job_id), found by the
// job's key; a job whose id only looks like another job's trace is not taken for it.
TEST_P(JobListingTest, AJobWhoseTraceIsItsIdIsFoundByItAndNoOtherIs) {
  std::string id = new_test_uuid();
  std::string trace = trace_id_of_job_id(id);
  ASSERT_EQ(trace.size(), 32u);
  NewJob job{id,    "tool",       {"a"}, R"({"actors":["a"],"current":0})", "{}", std::nullopt, "",
             false, std::nullopt, trace};
  ASSERT_TRUE(store_->create(job).ok());
  auto found = store_->job_of_trace(trace);
  ASSERT_TRUE(found.ok()) << found.error().message;
  ASSERT_TRUE(found.value());
  EXPECT_EQ(*found.value(), id);
  EXPECT_EQ(store_->get(id).value()->trace_id, trace);

  // A UUID job of another trace: its own id's hex is not its trace.
  std::string other = new_test_uuid();
  std::string other_trace = trace_id_of_job_id(new_test_uuid());
  NewJob other_job{other,        "tool",       {"a"}, R"({"actors":["a"],"current":0})",
                   "{}",         std::nullopt, "",    false,
                   std::nullopt, other_trace};
  ASSERT_TRUE(store_->create(other_job).ok());
  EXPECT_EQ(store_->job_of_trace(other_trace).value(), std::optional<std::string>(other));
  EXPECT_FALSE(store_->job_of_trace(trace_id_of_job_id(other)).value());
}

// job_id_of: the job a root or a branch's envelope id names, as get() finds it, without its
// document (POST /v1/traces asks it for every job its spans name).
TEST_P(JobListingTest, TheJobOfAnEnvelopeIsItsRootsOrItsBranchesJobAndNoneForAStranger) {
  std::string id = create(unique_id("tool"));
  auto branch = store_->add_branch(BranchReport{id + "-1", id, {"a", "b"}, 1});
  ASSERT_TRUE(branch.ok()) << branch.error().message;
  for (const std::string& envelope : {id, id + "-1"}) {
    auto found = store_->job_id_of(envelope);
    ASSERT_TRUE(found.ok()) << found.error().message;
    EXPECT_EQ(found.value(), std::optional<std::string>(id)) << envelope;
    EXPECT_EQ(store_->get(envelope).value()->id, id);
  }
  auto stranger = store_->job_id_of(unique_id("nobody"));
  ASSERT_TRUE(stranger.ok());
  EXPECT_FALSE(stranger.value());
}

TEST(TraceIdOfJobId, IsTheHexOfAUuidAndNothingElse) {
  EXPECT_EQ(trace_id_of_job_id("4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
            "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(job_id_of_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"),
            "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
  for (const char* not_uuid :
       {"", "job-1", "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e4736",
        "4bf92f35-77b3-4da6-a3ce-929d0e0e473", "4bf92f35x77b3-4da6-a3ce-929d0e0e4736",
        "00000000-0000-0000-0000-000000000000"})
    EXPECT_EQ(trace_id_of_job_id(not_uuid), "") << not_uuid;
  for (const char* not_trace :
       {"", "4bf92f35-77b3-4da6-a3ce-929d0e0e4736", "4BF92F3577B34DA6A3CE929D0E0E4736",
        "4bf92f3577b34da6a3ce929d0e0e473"})
    EXPECT_EQ(job_id_of_trace_id(not_trace), "") << not_trace;
}

TEST_P(JobListingTest, SpansOlderThanTheRetentionAreRemoved) {
  std::string job = create(unique_id("tool"));
  SpanLimits limits;
  limits.retention = std::chrono::hours(1);
  auto long_ago = Clock::now() - std::chrono::hours(3);
  ASSERT_TRUE(store_->add_spans({span(job, "0000000000000001", 1)}, limits, long_ago).ok());
  // A store prunes at most once a minute: a fresh store (as after a restart) prunes at once.
  store_ = GetParam() == "sqlite" ? open_sqlite_job_store(path_.string())
                                  : open_postgres_job_store(std::getenv("ASYA_TEST_DATABASE_URL"));
  ASSERT_TRUE(store_->add_spans({span(job, "0000000000000002", 2)}, limits, Clock::now()).ok());
  auto spans = store_->spans(job);
  ASSERT_TRUE(spans.ok());
  ASSERT_EQ(spans.value().size(), 1u);
  EXPECT_EQ(spans.value()[0].span_id, "0000000000000002");
}

INSTANTIATE_TEST_SUITE_P(Stores, JobListingTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// A database written by a gateway of schema version 3 (no created_ms/tool columns, no spans):
// opening it migrates, and its jobs are listed with the creation time of their documents.
TEST(JobListingMigration, AVersion3DatabaseIsMigratedAndItsJobsListed) {
  auto path = std::filesystem::temp_directory_path() / (unique_id("asya-v3") + ".db");
  std::string old_id = unique_id("old");
  {
    auto store = open_sqlite_job_store(path.string());
    NewJob job{old_id, "legacy", {"a"},       R"({"actors":["a"],"current":0})", "{}", std::nullopt,
               "",     false,    std::nullopt};
    ASSERT_TRUE(store->create(job).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* downgrade =
      "DROP INDEX gateway_jobs_owner; ALTER TABLE gateway_jobs DROP COLUMN owner; "
      "DROP INDEX gateway_jobs_created; DROP INDEX gateway_jobs_trace; "
      "ALTER TABLE gateway_jobs DROP COLUMN created_ms; ALTER TABLE gateway_jobs DROP COLUMN tool; "
      "ALTER TABLE gateway_jobs DROP COLUMN trace_id; DROP TABLE gateway_spans; "
      "UPDATE gateway_schema SET version = 3;";
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, downgrade, nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_close(db);

  auto store = open_sqlite_job_store(path.string());
  std::string new_id = unique_id("new");
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  NewJob job{new_id, "legacy", {"a"},       R"({"actors":["a"],"current":0})", "{}", std::nullopt,
             "",     false,    std::nullopt};
  ASSERT_TRUE(store->create(job).ok());
  auto page = store->list_jobs(JobFilter{std::nullopt, "legacy"}, std::nullopt, 10);
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page.value().jobs.size(), 2u);
  EXPECT_EQ(page.value().jobs[0].id, new_id);
  EXPECT_EQ(page.value().jobs[1].id, old_id);
  store.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
}

}  // namespace
}  // namespace asya::gateway
