// TransactionGroup (transaction_group.hpp) over a real SQLite file: a lone body commits at once in
// its own transaction; bodies pending together share one transaction, and one that fails is
// rolled back alone (its savepoint) while the others commit; a failed COMMIT fails them all and
// commits nothing.
#include "gateway/store/transaction_group.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace asya::gateway {
namespace {

using namespace std::chrono_literals;

struct Db {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("asya-tg-" + std::to_string(::getpid()) + "-" +
       std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + ".db");
  sqlite3* db = nullptr;
  sqlite3* blocker = nullptr;
  bool fail_commit = false;
  TransactionGroup group{[this](const std::vector<const TransactionGroup::Body*>& bodies,
                                std::vector<Status>& results) {
    run_batch(
        [this](const char* sql) -> Status {
          if (fail_commit && std::string(sql) == "COMMIT") return Error{"COMMIT refused (test)"};
          char* message = nullptr;
          if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
            std::string why = message ? message : sqlite3_errmsg(db);
            sqlite3_free(message);
            return Error{why};
          }
          return Status::Ok();
        },
        "BEGIN IMMEDIATE", bodies, results);
  }};

  Db() {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 60000);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    sqlite3_exec(db, "CREATE TABLE t(v TEXT NOT NULL)", nullptr, nullptr, nullptr);
    EXPECT_EQ(sqlite3_open(path.c_str(), &blocker), SQLITE_OK);
  }
  ~Db() {
    sqlite3_close(blocker);
    sqlite3_close(db);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  }

  TransactionGroup::Body insert(std::string value, bool fail_after = false) {
    return [this, value, fail_after]() -> Status {
      std::string sql = "INSERT INTO t(v) VALUES('" + value + "')";
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
        return Error{sqlite3_errmsg(db)};
      if (fail_after) return Error{"body " + value + " failed after its insert"};
      return Status::Ok();
    };
  }

  std::map<std::string, int> rows() {
    std::map<std::string, int> out;
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(blocker, "SELECT v FROM t", -1, &s, nullptr);
    while (sqlite3_step(s) == SQLITE_ROW)
      ++out[reinterpret_cast<const char*>(sqlite3_column_text(s, 0))];
    sqlite3_finalize(s);
    return out;
  }

  // Queues `bodies` while another connection holds the write lock, so they are pending together
  // behind the first one; then releases the lock. Returns their results.
  std::vector<Status> run_together(const std::vector<TransactionGroup::Body>& bodies) {
    EXPECT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    std::vector<Status> results(bodies.size(), Status::Ok());
    std::vector<std::thread> threads;
    // The first one leads and waits for the lock; the others queue behind it.
    threads.emplace_back([&] { results[0] = group.run(bodies[0]); });
    wait_for([&] { return group.leading() && group.pending() == 0; });
    for (std::size_t i = 1; i < bodies.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = group.run(bodies[i]); });
      wait_for([&] { return group.pending() == i; });
    }
    EXPECT_EQ(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
    for (auto& t : threads) t.join();
    return results;
  }

  static void wait_for(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!condition()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out";
      std::this_thread::sleep_for(1ms);
    }
  }
};

TEST(TransactionGroup, ALoneBodyCommitsAtOnceInItsOwnTransaction) {
  Db d;
  EXPECT_TRUE(d.group.run(d.insert("a")).ok());
  EXPECT_EQ(d.rows(), (std::map<std::string, int>{{"a", 1}}));
  EXPECT_EQ(d.group.stats().transactions, 1u);
  EXPECT_EQ(d.group.stats().largest_batch, 1u);
  // A lone body that fails is rolled back.
  Status failed = d.group.run(d.insert("b", /*fail_after=*/true));
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("body b failed"), std::string::npos) << failed.message();
  EXPECT_EQ(d.rows(), (std::map<std::string, int>{{"a", 1}}));
}

TEST(TransactionGroup, BodiesPendingTogetherShareATransactionAndAFailingOneIsRolledBackAlone) {
  Db d;
  auto results =
      d.run_together({d.insert("w0"), d.insert("w1"), d.insert("bad", true), d.insert("w3")});
  EXPECT_TRUE(results[0].ok()) << results[0].message();
  EXPECT_TRUE(results[1].ok()) << results[1].message();
  EXPECT_FALSE(results[2].ok());
  EXPECT_TRUE(results[3].ok()) << results[3].message();
  EXPECT_EQ(d.rows(), (std::map<std::string, int>{{"w0", 1}, {"w1", 1}, {"w3", 1}}));
  // w0 alone (it led while the others were not queued yet), then w1, bad, w3 in one.
  EXPECT_EQ(d.group.stats().bodies, 4u);
  EXPECT_EQ(d.group.stats().transactions, 2u);
  EXPECT_EQ(d.group.stats().largest_batch, 3u);
}

TEST(TransactionGroup, AFailedCommitFailsEveryBodyOfTheBatchAndCommitsNothing) {
  Db d;
  d.fail_commit = true;
  auto results = d.run_together({d.insert("x0"), d.insert("x1"), d.insert("x2")});
  for (const Status& r : results) {
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.message().find("COMMIT refused"), std::string::npos) << r.message();
  }
  EXPECT_TRUE(d.rows().empty());
}

TEST(TransactionGroup, RunAllSharesOneTransactionInOrderAndSplitsAboveTheLimit) {
  Db d;
  std::vector<TransactionGroup::Body> bodies;
  for (std::size_t i = 0; i < TransactionGroup::kMaxBatch + 3; ++i)
    bodies.push_back(d.insert(std::to_string(i) + "r", /*fail_after=*/i == 1));
  std::vector<const TransactionGroup::Body*> pointers;
  for (const auto& body : bodies) pointers.push_back(&body);
  std::vector<Status> results = d.group.run_all(pointers);
  ASSERT_EQ(results.size(), bodies.size());
  for (std::size_t i = 0; i < results.size(); ++i) EXPECT_EQ(results[i].ok(), i != 1) << i;
  auto rows = d.rows();
  EXPECT_EQ(rows.size(), bodies.size() - 1);  // the failing body alone was rolled back
  EXPECT_EQ(rows.count("1r"), 0u);
  // kMaxBatch bodies in the first transaction, the 3 left in a second.
  EXPECT_EQ(d.group.stats().transactions, 2u);
  EXPECT_EQ(d.group.stats().largest_batch, TransactionGroup::kMaxBatch);
}

}  // namespace
}  // namespace asya::gateway
