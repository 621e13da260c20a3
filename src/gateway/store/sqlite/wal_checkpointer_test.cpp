#include "gateway/store/sqlite/wal_checkpointer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

struct Database {
  explicit Database(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    exec("PRAGMA journal_mode=WAL");
    exec("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)");
  }
  ~Database() { sqlite3_close(db); }
  void exec(const char* sql) {
    char* message = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &message), SQLITE_OK)
        << sql << ": " << (message ? message : "");
  }
  sqlite3* db = nullptr;
};

std::string temp_db() {
  return (std::filesystem::temp_directory_path() / (testing::unique_id("wal") + ".db")).string();
}

TEST(WalCheckpointer, AWalPastTheLimitIsCheckpointedByTheThreadAndNoRowIsLost) {
  std::string path = temp_db();
  {
    Database database(path);
    WalCheckpointer checkpointer(database.db, path, 20);
    for (int i = 0; i < 40; ++i)  // 40 commits of ~3 pages each: the WAL passes 20 pages
      database.exec("INSERT INTO t(data) VALUES (zeroblob(10000))");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (checkpointer.checkpoints() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_GE(checkpointer.checkpoints(), 1u);
    sqlite3_stmt* count = nullptr;
    sqlite3_prepare_v2(database.db, "SELECT count(*) FROM t", -1, &count, nullptr);
    ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(count, 0), 40);
    sqlite3_finalize(count);
    // The rows reached the file. The first checkpoint may have run while the inserts went on
    // (it copies what the WAL held then); the next one (past the limit, or after a second
    // without commits) copies the rest.
    while (std::filesystem::file_size(path) <= (300u << 10) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_GT(std::filesystem::file_size(path), 300u << 10);
  }
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
}

// Commits ~6 MB in one transaction (about 1,500 pages: past SQLite's automatic checkpoint at
// 1,000) and returns the size of the database file right after the COMMIT: the pages are in the
// file only when the commit checkpointed.
std::uintmax_t file_size_after_a_big_commit(Database& database, const std::string& path) {
  database.exec("BEGIN");
  for (int i = 0; i < 600; ++i) database.exec("INSERT INTO t(data) VALUES (zeroblob(10000))");
  database.exec("COMMIT");
  return std::filesystem::file_size(path);
}

TEST(WalCheckpointer, TheCommitThatFillsTheWalDoesNotCheckpointItself) {
  std::string path = temp_db();
  {
    Database database(path);
    // A limit the WAL never reaches: only the thread's once-a-second pass checkpoints.
    WalCheckpointer checkpointer(database.db, path, 1 << 30);
    std::uintmax_t size = file_size_after_a_big_commit(database, path);
    if (checkpointer.checkpoints() == 0) {
      EXPECT_LT(size, 1u << 20);
    }
  }
  std::string control = temp_db();
  {
    Database database(control);  // SQLite's automatic checkpoint: the commit copies the pages
    EXPECT_GT(file_size_after_a_big_commit(database, control), 5u << 20);
  }
  for (const auto& p : {path, control}) {
    std::filesystem::remove(p);
    std::filesystem::remove(p + "-wal");
    std::filesystem::remove(p + "-shm");
  }
}

}  // namespace
}  // namespace asya::gateway
