// The write lock of the SQLite queue database: what runs under it and what is measured.
// Structural properties, not timings: the orphan sweep checks and claims files in write
// transactions of at most BodyFiles::kSweepBatch files and unlinks them only after the commit
// (no unlink, however large the file, holds other writers up); every write transaction ends with
// no transaction left open; each one is counted in WriteLockStats, whose longest hold is at least
// a hold the test made, and which is exported on the process's metrics text.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/process_metrics.hpp"
#include "transport/sqlite/body_files.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"
#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport::sqlite {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

void make_old(const fs::path& path) {
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - 3600;
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

// Whether another connection can take the write lock at once (no wait at all).
bool write_lock_free(const std::string& path) {
  sqlite3* other = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 0);
  bool free = sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  return free;
}

TEST(SqliteWriteLock, TheSweepClaimsInBoundedBatchesAndUnlinksOnlyAfterTheCommit) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  // A message whose body is a file: its row names the file, which the sweep must keep.
  auto transport = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(transport->send("asya-sweep", std::string(2u << 20, 'x')).ok());
  BodyFiles files(settings.path);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(settings.path + ".bodies")) {
    names.push_back(entry.path().filename().string());
  }
  ASSERT_EQ(names.size(), 1u);
  const std::string referenced = names.front();
  constexpr std::size_t kOrphans = 3 * BodyFiles::kSweepBatch + 7;
  for (std::size_t i = 0; i < kOrphans; ++i) {
    std::string name = "m-00000000deadbeef-" + std::to_string(i) + ".body";
    std::ofstream(files.path_of(name)) << "orphan " << i;
    make_old(files.path_of(name));
    names.push_back(name);
  }

  auto connection = Connection::open(settings, /*create_schema=*/false);
  ASSERT_TRUE(connection.ok()) << connection.error().message;
  Connection& db = *connection.value();
  WriteLockStats before = WriteLockStats::snapshot();
  std::vector<fs::path> claimed = files.claim_orphans(db, names);
  WriteLockStats after = WriteLockStats::snapshot();

  // Every unnamed file claimed, in ceil(files / batch) write transactions, none left open.
  EXPECT_EQ(claimed.size(), kOrphans);
  EXPECT_EQ(after.transactions - before.transactions,
            (names.size() + BodyFiles::kSweepBatch - 1) / BodyFiles::kSweepBatch);
  EXPECT_NE(sqlite3_get_autocommit(db.db()), 0) << "claim_orphans left a transaction open";
  EXPECT_TRUE(write_lock_free(settings.path));
  // Claimed means renamed under the lock, not yet unlinked: the unlinks come after the commit.
  for (const fs::path& path : claimed) {
    EXPECT_TRUE(fs::exists(path)) << path;
    EXPECT_EQ(path.extension(), ".swept") << path;
    EXPECT_FALSE(fs::exists(path.parent_path() / path.stem())) << path;
  }
  EXPECT_TRUE(fs::exists(files.path_of(referenced)));

  EXPECT_EQ(files.remove_claimed(claimed), kOrphans);
  for (const fs::path& path : claimed) EXPECT_FALSE(fs::exists(path)) << path;
  EXPECT_TRUE(fs::exists(files.path_of(referenced)));
  auto got = transport->receive("asya-sweep", 1, 5s);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  EXPECT_EQ(got->front().body.size(), 2u << 20);
}

// A sweep that crashed between its commit and the unlinks left `.swept` files: the next sweep
// removes them whatever their age (no row can name them), and leaves young bodies alone.
TEST(SqliteWriteLock, ClaimedFilesLeftByACrashedSweepAreRemovedByTheNextSweep) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto transport = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(transport->send("asya-sweep", std::string(2u << 20, 'y')).ok());
  BodyFiles files(settings.path);
  const fs::path leftover = files.path_of("m-00000000deadbeef-1.body.swept");
  const fs::path young = files.path_of("m-00000000deadbeef-2.body");
  std::ofstream(leftover) << "claimed, not yet unlinked";
  std::ofstream(young) << "its row is about to be inserted";
  auto connection = Connection::open(settings, /*create_schema=*/false);
  ASSERT_TRUE(connection.ok()) << connection.error().message;
  files.sweep_orphans(*connection.value());
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_TRUE(fs::exists(young));
  EXPECT_NE(sqlite3_get_autocommit(connection.value()->db()), 0);
}

TEST(SqliteWriteLock, EveryWriteTransactionIsMeasuredAndTheLongestHoldIsExported) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto transport = make_sqlite_transport(Options{}, settings);  // exports the metrics
  WriteLockStats before = WriteLockStats::snapshot();
  ASSERT_TRUE(transport->send("asya-held", "one").ok());
  auto got = transport->receive("asya-held", 1, 5s);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  ASSERT_TRUE(transport->ack(got->front()).ok());
  // send, lease, ack: one write transaction each; send and ack through group commit, alone.
  WriteLockStats sent = WriteLockStats::snapshot();
  EXPECT_EQ(sent.transactions - before.transactions, 3u);
  EXPECT_EQ(sent.group_operations - before.group_operations, 2u);
  EXPECT_EQ(sent.group_batches - before.group_batches, 2u);

  // A hold this test makes on purpose: the longest hold is at least that long (a lower bound,
  // not a speed), and it is counted as slow (≥ 100 ms).
  auto connection = Connection::open(settings, /*create_schema=*/false);
  ASSERT_TRUE(connection.ok());
  Connection& db = *connection.value();
  ASSERT_TRUE(db.run(kBeginImmediate, "BEGIN IMMEDIATE").ok());
  std::this_thread::sleep_for(WriteLockStats::kSlowHold + 20ms);
  ASSERT_TRUE(db.run(kRollback, "ROLLBACK").ok());
  WriteLockStats after = WriteLockStats::snapshot();
  EXPECT_EQ(after.transactions - before.transactions, 4u);
  EXPECT_GE(after.longest_hold, WriteLockStats::kSlowHold + 20ms);
  EXPECT_GE(after.slow_holds - before.slow_holds, 1u);

  std::string text = process_metrics_text();
  for (const char* family :
       {"asya_sqlite_write_lock_hold_seconds_max", "asya_sqlite_write_lock_wait_seconds_max",
        "asya_sqlite_write_transactions_total", "asya_sqlite_write_lock_slow_holds_total",
        "asya_sqlite_group_commit_operations_total", "asya_sqlite_group_commit_batches_total"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family), std::string::npos) << family;
    EXPECT_NE(text.find(std::string("\n") + family + " "), std::string::npos) << family;
  }
  // Exported once however many transports the process opens.
  auto second = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(
      process_metrics_text().find("# TYPE asya_sqlite_write_lock_hold_seconds_max",
                                  text.find("# TYPE asya_sqlite_write_lock_hold_seconds_max") + 1),
      std::string::npos);
}

}  // namespace
}  // namespace asya::transport::sqlite
