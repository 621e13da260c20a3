// Jobs by owner (JobFilter::owner, the gateway_jobs.owner column of schema 5), against SQLite
// (always) and PostgreSQL (when ASYA_TEST_DATABASE_URL is set, as tests/gateway/test_store.py
// does), including the migration of a database written by a schema-4 gateway.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

// Runs SQL on the test database directly (not through the store): to create a schema, or to turn
// a current database back into one a schema-4 gateway wrote.
void run_sql(const std::string& store, const std::string& where, const std::string& sql) {
  if (store == "sqlite") {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(where.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message << " in " << sql;
    return;
  }
  PGconn* connection = PQconnectdb(where.c_str());
  ASSERT_EQ(PQstatus(connection), CONNECTION_OK) << PQerrorMessage(connection);
  PGresult* result = PQexec(connection, sql.c_str());
  ExecStatusType status = PQresultStatus(result);
  std::string message = PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(connection);
  ASSERT_TRUE(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) << message << " in " << sql;
}

class JobOwnerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-owner") + ".db");
      where_ = path_.string();
      return;
    }
    const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
    if (!url || !*url)
      GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set (tests/gateway/test_store.py sets it)";
    // A schema of its own (search_path), so this test's tables start empty and its downgrade
    // touches no other test's tables in the shared database.
    schema_ = "asya_owner_" + std::to_string(::getpid()) + "_" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
    run_sql("postgres", url, "CREATE SCHEMA " + schema_);
    std::string base = url;
    where_ = base.find("://") != std::string::npos
                 ? base + (base.find('?') == std::string::npos ? "?" : "&") +
                       "options=-csearch_path%3D" + schema_
                 : base + " options='-csearch_path=" + schema_ + "'";
  }
  void TearDown() override {
    store_.reset();
    if (!path_.empty()) {
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path_.string() + suffix);
    }
    if (!schema_.empty())
      run_sql("postgres", std::getenv("ASYA_TEST_DATABASE_URL"),
              "DROP SCHEMA " + schema_ + " CASCADE");
  }

  void open() {
    store_.reset();
    store_ =
        GetParam() == "sqlite" ? open_sqlite_job_store(where_) : open_postgres_job_store(where_);
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

  std::filesystem::path path_;
  std::string schema_;
  std::string where_;  // the SQLite file or the PostgreSQL URL (with the test's search_path)
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

INSTANTIATE_TEST_SUITE_P(Stores, JobOwnerTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
