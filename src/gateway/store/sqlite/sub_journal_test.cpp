// The SQLite job store keeps its statement and savepoint journals in memory: a batch of
// transactions (each body in a SAVEPOINT, transaction_group.hpp) that modifies more than SQLite's
// 64 KiB in-memory limit of such a journal opens no temporary file. (With the library's default,
// temp_store=FILE, it spilled them to a deleted file in /var/tmp: ~40 % of the gateway's bytes
// written per tool call under the gateway_calls load, docs/performance.md.) Observed through a
// VFS that wraps the default one and counts the files SQLite opens, by kind.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "gateway/store/backend.hpp"
#include "gateway/store/test_ids.hpp"

namespace asya::gateway {
namespace {

using testing::unique_id;

std::atomic<int> g_journal_files{0};  // statement journals and sub-journals opened
sqlite3_vfs* g_real = nullptr;

int counting_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags,
                  int* out_flags) {
  if (flags & (SQLITE_OPEN_SUBJOURNAL | SQLITE_OPEN_TEMP_JOURNAL)) ++g_journal_files;
  return g_real->xOpen(g_real, name, file, flags, out_flags);
}

// Installs the counting VFS as the default for the life of the test (the store opens its
// connections with the default VFS).
class JournalFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    g_real = sqlite3_vfs_find(nullptr);
    ASSERT_NE(g_real, nullptr);
    vfs_ = *g_real;
    vfs_.zName = "asya-counting";
    vfs_.xOpen = counting_open;
    ASSERT_EQ(sqlite3_vfs_register(&vfs_, 1), SQLITE_OK);
    g_journal_files = 0;
    path_ = std::filesystem::temp_directory_path() / (unique_id("asya-sub-journal") + ".db");
  }
  void TearDown() override {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(g_real, 1);
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path_.string() + suffix);
  }

  sqlite3_vfs vfs_{};
  std::filesystem::path path_;
};

// 2,000 rows of 200 bytes (~100 pages) and a statement that rewrites each of them: every page
// existed before the savepoint, so each is copied into the savepoint's journal (~400 KB).
const char* const kRows =
    "CREATE TABLE t(v TEXT);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
    "INSERT INTO t SELECT printf('%.200c', 'x') FROM n;";
const char* const kRewriteAll = "UPDATE t SET v = v || 'y'";

TEST_F(JournalFiles, ABatchOfTransactionsThatRewritesManyPagesOpensNoTemporaryJournalFile) {
  auto backend = open_sqlite_backend(path_.string());
  ASSERT_TRUE(backend->script(kRows).ok());
  // Two bodies pending together: one transaction, each body in its own savepoint.
  std::function<Status()> rewrite = [&]() -> Status {
    auto rows = backend->query("rewriting", kRewriteAll, {});
    return rows.ok() ? Status::Ok() : Status(rows.error());
  };
  std::function<Status()> count = [&]() -> Status {
    auto rows = backend->query("counting", "SELECT COUNT(*) FROM t WHERE v LIKE '%y'", {});
    if (!rows.ok()) return rows.error();
    return rows.value().at(0).at(0) == "2000" ? Status::Ok() : Error{"not rewritten"};
  };
  auto results = backend->transactions({&rewrite, &count});
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.message();
  backend.reset();
  EXPECT_EQ(g_journal_files.load(), 0);
}

// The control: the same savepoint on a connection with SQLite's default temp_store does open a
// journal file, so the test above would see one.
TEST_F(JournalFiles, TheDefaultTempStoreSpillsALargeSavepointJournalToAFile) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  auto exec = [&](const std::string& sql) {
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "") << " in " << sql;
    sqlite3_free(error);
  };
  exec("PRAGMA journal_mode=WAL");
  exec(kRows);
  exec("BEGIN IMMEDIATE");
  exec("SAVEPOINT s");
  exec(kRewriteAll);
  exec("RELEASE s");
  exec("COMMIT");
  sqlite3_close(db);
  EXPECT_GE(g_journal_files.load(), 1);
}

}  // namespace
}  // namespace asya::gateway
