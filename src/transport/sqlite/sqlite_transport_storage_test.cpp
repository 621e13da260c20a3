// The storage layout: bodies in their own table, written once and never rewritten by a lease,
// the schema version check and migration, and what a stopped process does (not) block.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "common/env.hpp"
#include "transport/sqlite/lease_bodies.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A plain sqlite3 connection for looking inside the file.
class Raw {
 public:
  explicit Raw(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Raw() { sqlite3_close(db_); }
  void exec(const std::string& sql) {
    char* message = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message), SQLITE_OK)
        << sql << ": " << (message ? message : "");
    sqlite3_free(message);
  }
  std::int64_t integer(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
    std::int64_t value = -1;
    if (sqlite3_step(s) == SQLITE_ROW) value = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string random_bytes(std::size_t size) {
  std::mt19937_64 random(42);
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    std::uint64_t word = random();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  bytes[size / 2] = '\0';
  return bytes;
}

std::uintmax_t wal_size(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path + "-wal", ec);
  return ec ? 0 : size;
}

TEST(SqliteStorage, A64MegabyteBodyRoundTripsAndLeasesNeverRewriteIt) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  const std::string body = random_bytes(64u << 20);
  ASSERT_TRUE(t->send("asya-big", body).ok());

  // Empty the WAL, so everything written from here on shows in its size.
  Raw raw(settings.path);
  raw.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  ASSERT_EQ(wal_size(settings.path), 0u);

  auto got = t->receive("asya-big", 1, 5s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_TRUE(got->front().body == body)
      << "the body came back different (" << got->front().body.size() << " bytes)";
  ASSERT_TRUE(t->extend_lease(got->front(), 60s).ok());
  ASSERT_TRUE(t->nack(got->front()).ok());
  auto again = t->receive("asya-big", 1, 5s);
  ASSERT_TRUE(again.ok() && again->size() == 1u);
  EXPECT_EQ(again->front().delivery_count, 2u);
  // Two leases, an extension and a nack wrote a few small pages, not the 64 MB body.
  EXPECT_LT(wal_size(settings.path), 1u << 20) << "a lease rewrote the body";

  ASSERT_TRUE(t->ack(again->front()).ok());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM bodies"), 0);
  EXPECT_EQ(raw.integer("SELECT count(*) FROM messages"), 0);
}

// A lease of one reads a body kept in the database in the statement that selects its row, up to
// kBodyBytesReadInLease bytes; a longer one is read after the commit. Either way every body comes
// back whole, in send order, each message leased once.
TEST(SqliteStorage, BodiesInTheTableOnEitherSideOfTheInLeaseLimitComeBackWhole) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 0;  // every body in the table, however large
  auto t = make_sqlite_transport(Options{}, settings);
  const std::size_t limit = sqlite::kBodyBytesReadInLease;
  std::vector<std::string> bodies = {"",
                                     "small",
                                     random_bytes(limit - 1),
                                     random_bytes(limit),
                                     random_bytes(limit + 1),
                                     "after",
                                     random_bytes(3 * limit)};
  for (const std::string& body : bodies) ASSERT_TRUE(t->send("asya-q", body).ok());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    auto got = t->receive("asya-q", 1, 5s);
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->size(), 1u) << "message " << i;
    EXPECT_TRUE(got->front().body == bodies[i])
        << "message " << i << " came back with " << got->front().body.size() << " bytes instead of "
        << bodies[i].size();
    EXPECT_EQ(got->front().delivery_count, 1u);
    ASSERT_TRUE(t->ack(got->front()).ok());
  }
  auto none = t->receive("asya-q", 1, 0ms);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(SqliteStorage, AckOfALostLeaseKeepsTheBody) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  Options options;
  options.visibility_timeout = 50ms;
  auto t = make_sqlite_transport(options, settings);
  ASSERT_TRUE(t->send("asya-q", "keep me").ok());
  auto first = t->receive("asya-q", 1, 5s);
  ASSERT_TRUE(first.ok() && first->size() == 1u);
  auto second = t->receive("asya-q", 1, 5s);  // after the lease expired
  ASSERT_TRUE(second.ok() && second->size() == 1u);
  EXPECT_FALSE(t->ack(first->front()).ok());
  Raw raw(settings.path);
  EXPECT_EQ(raw.integer("SELECT count(*) FROM bodies"), 1);
  EXPECT_TRUE(t->ack(second->front()).ok());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM bodies"), 0);
}

TEST(SqliteStorage, AFileWithBodiesInlineIsMigratedOnOpen) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  {
    Raw raw(settings.path);  // the layout before schema version 2
    raw.exec(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE queues(name TEXT PRIMARY KEY NOT NULL, created_at_ms INTEGER NOT NULL) "
        "WITHOUT ROWID;"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, "
        "body BLOB NOT NULL, visible_at_ms INTEGER NOT NULL, delivery_count INTEGER NOT NULL "
        "DEFAULT 0, lease INTEGER, sent_at_ms INTEGER NOT NULL);"
        "CREATE INDEX messages_by_visibility ON messages(queue, visible_at_ms, id);"
        "INSERT INTO queues VALUES('asya-old', 1);"
        "INSERT INTO messages(queue, body, visible_at_ms, sent_at_ms) "
        "VALUES('asya-old', x'6f6c6400626f6479', 0, 0);");
  }
  auto t = make_sqlite_transport(Options{}, settings);
  auto got = t->receive("asya-old", 1, 5s);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().body, std::string("old\0body", 8));
  EXPECT_TRUE(t->ack(got->front()).ok());
  ASSERT_TRUE(t->send("asya-old", "new").ok());
  Raw raw(settings.path);
  EXPECT_EQ(raw.integer("PRAGMA user_version"), 3);
  EXPECT_EQ(raw.integer("SELECT count(*) FROM pragma_table_info('messages') WHERE name='body'"), 0);
  EXPECT_EQ(raw.integer("SELECT max(id) FROM messages"), 2) << "ids keep increasing";
}

TEST(SqliteStorage, AFileOfAnUnknownSchemaVersionIsRefusedNamingTheVersion) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  {
    Raw raw(settings.path);
    raw.exec("PRAGMA user_version = 7");
  }
  try {
    make_sqlite_transport(Options{}, settings);
    FAIL() << "opened a file of schema version 7";
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("schema version 7"), std::string::npos) << message;
    EXPECT_NE(message.find(settings.path), std::string::npos) << message;
  }
}

// A process stopped (SIGSTOP) between calls holds no lock: receive() reads the body outside
// the write transaction, so even a stopped holder of a large leased message blocks nobody.
TEST(SqliteStorage, AStoppedProcessHoldingLeasesDoesNotBlockOtherWriters) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.busy_timeout = 2000ms;
  {
    auto setup = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(setup->send("asya-held", std::string(4u << 20, 'x')).ok());
  }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    int code = 1;
    try {
      auto t = make_sqlite_transport(Options{}, settings);
      auto got = t->receive("asya-held", 1, 5s);
      if (got.ok() && got->size() == 1) {
        code = 0;
        char c = 'r';
        if (::write(ready[1], &c, 1) != 1) code = 2;
        for (;;) pause();  // holding the lease, stopped below
      }
    } catch (...) {
    }
    _exit(code);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the child did not lease the message";
  ::close(ready[0]);
  ASSERT_EQ(kill(child, SIGSTOP), 0);
  {
    auto t = make_sqlite_transport(Options{}, settings);
    EXPECT_TRUE(t->send("asya-other", "a").ok());
    auto got = t->receive("asya-other", 1, 5s);
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ(got->size(), 1u);
    EXPECT_TRUE(t->ack(got->front()).ok());
    auto stats = t->stats("asya-held");
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->in_flight, 1u);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace asya::transport
