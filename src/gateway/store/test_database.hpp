// A test database for the job-store tests that also read or write its rows directly: a SQLite
// file of its own, or (when ASYA_TEST_DATABASE_URL is set, as tests/gateway/test_store.py does)
// a PostgreSQL schema of its own, so the test's tables start empty and touch no other test's.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway::testing {

// Runs SQL on a test database directly (not through a store): `kind` "sqlite" (`where` a file)
// or "postgres" (`where` a libpq connection string); a failure fails the test.
inline void run_sql(const std::string& kind, const std::string& where, const std::string& sql) {
  if (kind == "sqlite") {
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

class TestDatabase {
 public:
  // `kind`: "sqlite" or "postgres". skipped() is true when PostgreSQL is not configured.
  explicit TestDatabase(std::string kind) : kind_(std::move(kind)) {
    if (kind_ == "sqlite") {
      path_ = std::filesystem::temp_directory_path() / (unique_id("asya-testdb") + ".db");
      where_ = path_.string();
      return;
    }
    const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
    if (!url || !*url) return;
    schema_ = "asya_t_" + std::to_string(::getpid()) + "_" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
    run_sql("postgres", url, "CREATE SCHEMA " + schema_);
    std::string base = url;
    where_ = base.find("://") != std::string::npos
                 ? base + (base.find('?') == std::string::npos ? "?" : "&") +
                       "options=-csearch_path%3D" + schema_
                 : base + " options='-csearch_path=" + schema_ + "'";
  }
  ~TestDatabase() {
    if (!path_.empty()) {
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path_.string() + suffix);
    }
    if (!schema_.empty())
      run_sql("postgres", std::getenv("ASYA_TEST_DATABASE_URL"),
              "DROP SCHEMA " + schema_ + " CASCADE");
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  bool skipped() const { return where_.empty(); }
  // The SQLite file or the PostgreSQL URL (with the test's search_path).
  const std::string& where() const { return where_; }

  // A store on this database (each call opens another, as another gateway replica would).
  std::unique_ptr<JobStore> open() const {
    return kind_ == "sqlite" ? open_sqlite_job_store(where_) : open_postgres_job_store(where_);
  }

  // Runs SQL on the database directly (not through a store).
  void run(const std::string& sql) const { run_sql(kind_, where_, sql); }

  // The rows of `sql`, every column as text, read directly.
  std::vector<std::vector<std::string>> rows(const std::string& sql) const {
    std::vector<std::vector<std::string>> out;
    if (kind_ == "sqlite") {
      sqlite3* db = nullptr;
      EXPECT_EQ(sqlite3_open(where_.c_str(), &db), SQLITE_OK);
      sqlite3_stmt* stmt = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
          << sqlite3_errmsg(db);
      while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
        auto& row = out.emplace_back();
        for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
          const auto* text = sqlite3_column_text(stmt, i);
          row.emplace_back(text ? reinterpret_cast<const char*>(text) : "");
        }
      }
      sqlite3_finalize(stmt);
      sqlite3_close(db);
      return out;
    }
    PGconn* connection = PQconnectdb(where_.c_str());
    PGresult* result = PQexec(connection, sql.c_str());
    EXPECT_EQ(PQresultStatus(result), PGRES_TUPLES_OK) << PQresultErrorMessage(result);
    for (int r = 0; r < PQntuples(result); ++r) {
      auto& row = out.emplace_back();
      for (int c = 0; c < PQnfields(result); ++c) row.emplace_back(PQgetvalue(result, r, c));
    }
    PQclear(result);
    PQfinish(connection);
    return out;
  }

  // The first column of the first row of `sql` as a number (0 when there is no row).
  long long count(const std::string& sql) const {
    auto all = rows(sql);
    return all.empty() ? 0 : std::stoll(all.front().at(0));
  }

 private:
  std::string kind_;
  std::filesystem::path path_;
  std::string schema_;
  std::string where_;
};

}  // namespace asya::gateway::testing
