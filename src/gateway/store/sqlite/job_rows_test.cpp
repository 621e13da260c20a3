// The rows the SQLite job store writes per job (schema 6): no gateway_job_envelopes row for a
// root envelope (its id is its job's), a deadline index that holds open jobs only, and (schema 8)
// no trace index entry for a job whose trace id is its own id's. Read back
// with a second, plain SQLite connection on the store's file.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_database.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

class SqliteJobRows : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / (unique_id("asya-job-rows") + ".db");
    store_ = open_sqlite_job_store(path_.string());
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path_.string() + suffix);
  }

  std::string create(std::vector<std::string> actors,
                     std::optional<Clock::time_point> deadline = std::nullopt) {
    std::string id = unique_id("job");
    NewJob job{id, "tool", std::move(actors), R"({"current":0})", R"({"text":"hi"})", deadline,
               "", false,  std::nullopt};
    Status created = store_->create(job);
    EXPECT_TRUE(created.ok()) << created.message();
    return id;
  }

  // Column `column` of every row of `sql`'s result, as text.
  std::vector<std::string> rows(const std::string& sql, int column = 0) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db) << " in " << sql;
    while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, column);
      out.emplace_back(text ? reinterpret_cast<const char*>(text) : "");
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  void exec(const std::string& sql) { testing::run_sql("sqlite", path_.string(), sql); }

  std::filesystem::path path_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(SqliteJobRows, ARootEnvelopeHasNoEnvelopeRowAndEveryReportStillFindsItsJob) {
  std::string id = create({"a", "b"});
  EXPECT_TRUE(rows("SELECT envelope_id FROM gateway_job_envelopes").empty());

  auto progressed = store_->progress(ProgressReport{id, {}, 0, "processing", ""});
  ASSERT_TRUE(progressed.ok()) << progressed.error().message;
  EXPECT_EQ(progressed.value().outcome, Outcome::applied);
  EXPECT_EQ(progressed.value().job_id, id);
  // A fan-out child is recorded in the table: it is found through it.
  auto branch = store_->add_branch(BranchReport{id + "-1", id, {"a", "b"}, 1});
  ASSERT_TRUE(branch.ok()) << branch.error().message;
  EXPECT_EQ(branch.value().outcome, Outcome::applied);
  EXPECT_EQ(rows("SELECT envelope_id FROM gateway_job_envelopes"),
            std::vector<std::string>{id + "-1"});

  for (const std::string& envelope : {id, id + "-1"}) {
    auto job = store_->get(envelope);
    ASSERT_TRUE(job.ok() && job.value()) << envelope;
    EXPECT_EQ(job.value()->id, id);
    FinalReport final_report;
    final_report.envelope_id = envelope;
    final_report.result_json = R"({"n":1})";
    auto finished = store_->finish(final_report);
    ASSERT_TRUE(finished.ok()) << finished.error().message;
    EXPECT_EQ(finished.value().outcome, Outcome::applied) << envelope;
  }
  auto job = store_->get(id);
  ASSERT_TRUE(job.ok() && job.value());
  EXPECT_EQ(job.value()->status, JobStatus::succeeded);
  auto updates = store_->updates(id + "-1", 0);
  ASSERT_TRUE(updates.ok());
  EXPECT_EQ(updates.value().back().status, JobStatus::succeeded);
}

TEST_F(SqliteJobRows, ARootEnvelopeRowWrittenByAnOlderGatewayIsStillRead) {
  std::string id = create({"a"});
  exec("INSERT INTO gateway_job_envelopes(envelope_id, job_id) VALUES ('" + id + "', '" + id +
       "')");
  auto progressed = store_->progress(ProgressReport{id, {}, 0, "received", ""});
  ASSERT_TRUE(progressed.ok()) << progressed.error().message;
  EXPECT_EQ(progressed.value().outcome, Outcome::applied);
  auto job = store_->get(id);
  ASSERT_TRUE(job.ok() && job.value());
  EXPECT_EQ(job.value()->status, JobStatus::running);
}

TEST_F(SqliteJobRows, TheDeadlineIndexHoldsOpenJobsOnlyAndTheSweepReadsIt) {
  auto past = Clock::now() - std::chrono::seconds(1);
  std::string open = create({"a"}, past);
  std::string done = create({"a"}, past);
  FinalReport final_report;
  final_report.envelope_id = done;
  ASSERT_TRUE(store_->finish(final_report).ok());

  // Schema 6 replaced the (status, deadline_ms) index.
  EXPECT_TRUE(rows("SELECT name FROM sqlite_master WHERE name = 'gateway_jobs_open'").empty());
  EXPECT_EQ(rows("SELECT id FROM gateway_jobs INDEXED BY gateway_jobs_open_deadline "
                 "WHERE status IN ('pending', 'running') AND deadline_ms IS NOT NULL"),
            std::vector<std::string>{open});
  // The sweep's statement (storage.cpp, expired()) uses the index: its condition implies the
  // index's.
  auto plan = rows(
      "EXPLAIN QUERY PLAN SELECT id FROM gateway_jobs WHERE status IN ('pending', 'running') AND "
      "deadline_ms IS NOT NULL AND deadline_ms <= 1",
      3);
  ASSERT_FALSE(plan.empty());
  EXPECT_NE(plan.front().find("gateway_jobs_open_deadline"), std::string::npos) << plan.front();

  auto expired = store_->expire(Clock::now());
  ASSERT_TRUE(expired.ok()) << expired.error().message;
  EXPECT_EQ(expired.value(), std::vector<std::string>{open});
  EXPECT_TRUE(rows("SELECT id FROM gateway_jobs INDEXED BY gateway_jobs_open_deadline "
                   "WHERE status IN ('pending', 'running') AND deadline_ms IS NOT NULL")
                  .empty());
}

// A job whose trace id is its id's hex (the gateway's own calls) has no trace_id column, so no
// entry in the trace index; a job of another trace keeps both.
TEST_F(SqliteJobRows, AJobWhoseTraceIsItsIdHasNoEntryInTheTraceIndex) {
  std::string own = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
  std::string other = "00f067aa-0ba9-42b7-8c1d-6ad3f9c2f2a1";
  for (const auto& [id, trace] :
       {std::pair{own, trace_id_of_job_id(own)},
        std::pair{other, std::string("0af7651916cd43dd8448eb211c80319c")}}) {
    NewJob job{id,           "tool", {"a"}, R"({"current":0})", "{}",
               std::nullopt, "",     false, std::nullopt,       trace};
    ASSERT_TRUE(store_->create(job).ok());
  }
  EXPECT_EQ(rows("SELECT id FROM gateway_jobs WHERE trace_id IS NOT NULL"),
            std::vector<std::string>{other});
  EXPECT_EQ(store_->get(own).value()->trace_id, trace_id_of_job_id(own));
  EXPECT_EQ(store_->job_of_trace(trace_id_of_job_id(own)).value(), std::optional<std::string>(own));
  EXPECT_EQ(store_->job_of_trace("0af7651916cd43dd8448eb211c80319c").value(),
            std::optional<std::string>(other));
  // The index holds the jobs that have a trace column only, and the lookup of other traces uses it.
  auto plan = rows(
      "EXPLAIN QUERY PLAN SELECT id FROM gateway_jobs WHERE trace_id = "
      "'0af7651916cd43dd8448eb211c80319c'",
      3);
  ASSERT_FALSE(plan.empty());
  EXPECT_NE(plan[0].find("gateway_jobs_trace"), std::string::npos) << plan[0];
}

}  // namespace
}  // namespace asya::gateway
