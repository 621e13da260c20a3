// Which waiting receivers a sender hands its message to (hand_off.hpp): only a row of this machine
// and pid namespace whose process still runs. Rows written by hand, as a process that died (its pid
// now another process's), a process of another machine or another container would leave them.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "transport/sqlite/hand_off_slots.hpp"
#include "transport/sqlite/lease_owners.hpp"
#include "transport/sqlite/process_identity.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Runs `sql` on the database; returns the first column of its first row (-1 without a row).
std::int64_t run(const SqliteSettings& settings, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(settings.path.c_str(), &db);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int rc = s ? sqlite3_step(s) : SQLITE_ERROR;
  EXPECT_TRUE(rc == SQLITE_ROW || rc == SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db);
  std::int64_t value = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return value;
}

std::string sql_text(const std::string& text) {
  return "'" + text + "'";
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A waiting row of queue asya-h as a receive() of another process would write it (`started`
// "NULL" as an older build writes it), registered at `since_ms` (now by default).
void insert_waiter(const SqliteSettings& settings, std::int64_t token, const std::string& host,
                   pid_t pid, const std::string& started, std::int64_t since_ms = wall_ms()) {
  run(settings,
      "INSERT INTO waiters(token, queue, owner, host, pid, visibility_ms, since_ms, message_id, "
      "started) VALUES(" +
          std::to_string(token) + ", 'asya-h', 77, " + sql_text(host) + ", " + std::to_string(pid) +
          ", 600000, " + std::to_string(since_ms) + ", NULL, " + started + ")");
}

// The machine identity with its boot id replaced: another machine sharing the file.
std::string other_machine(const std::string& host) {
  return "00000000-1111-2222-3333-444444444444" + host.substr(host.find('/'));
}

// The machine identity with another pid namespace: a container sharing the file through a volume.
std::string other_pid_namespace(const std::string& host) {
  return host.substr(0, host.find('/')) + "/pid:[1]";
}

// A live process that is not a receiver: a child blocked until the test ends.
class SqliteWaiterLiveness : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sender->ensure_queue("asya-h"));
    ASSERT_EQ(::pipe(hold), 0);
    bystander = test::spawn([this] {
      char byte;
      ::close(hold[1]);
      return ::read(hold[0], &byte, 1) == 0 ? 0 : 1;  // returns when the parent closes the pipe
    });
    bystander_started = sqlite::process_start_time(bystander);
    ASSERT_FALSE(bystander_started.empty());
    ASSERT_EQ(host.find("unverified"), std::string::npos) << "no machine identity here: " << host;
  }
  void TearDown() override {
    ::close(hold[0]);
    ::close(hold[1]);
    EXPECT_EQ(test::wait_exit(bystander, Clock::now() + 30s), 0);
  }
  std::int64_t ready() {
    auto stats = sender->stats("asya-h");
    EXPECT_TRUE(stats) << stats.error().message;
    return stats ? static_cast<std::int64_t>(stats->ready) : -1;
  }
  std::int64_t rows() { return run(settings, "SELECT count(*) FROM waiters"); }

  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  std::unique_ptr<Transport> sender = make_sqlite_transport(Options{}, settings);
  std::string host = sqlite::LeaseOwners().host();
  int hold[2] = {-1, -1};
  pid_t bystander = 0;
  std::string bystander_started;
};

TEST_F(SqliteWaiterLiveness, ALiveWaiterOfThisMachineIsHandedTheMessage) {
  insert_waiter(settings, 5001, host, bystander, sql_text(bystander_started));
  ASSERT_TRUE(sender->send("asya-h", "handed"));
  EXPECT_EQ(ready(), 0);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM messages WHERE lease = 5001"), 1);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters WHERE message_id IS NOT NULL"), 1);
}

TEST_F(SqliteWaiterLiveness, ARowWhosePidIsNowAnotherProcessGetsNothingAndIsRemoved) {
  // The receiver that wrote this row died and its pid went to `bystander` (started later).
  insert_waiter(settings, 5001, host, bystander, "'1'");
  ASSERT_TRUE(sender->send("asya-h", "for the living"));
  EXPECT_EQ(ready(), 1) << "the message was handed to a dead receiver's reused pid";
  EXPECT_EQ(rows(), 0);
}

TEST_F(SqliteWaiterLiveness, AfterADeadRowTheNextLiveWaiterIsHandedTheMessage) {
  insert_waiter(settings, 5001, host, bystander, "'1'");  // older: picked first, and dead
  insert_waiter(settings, 5002, host, bystander, sql_text(bystander_started));
  ASSERT_TRUE(sender->send("asya-h", "handed"));
  EXPECT_EQ(run(settings, "SELECT count(*) FROM messages WHERE lease = 5002"), 1);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters WHERE token = 5001"), 0);
}

TEST_F(SqliteWaiterLiveness, TheLongestWaitingRowIsHandedFirstWhateverItsToken) {
  // The table keeps its rows in token order; the sender picks by registration time, then token.
  const std::int64_t now = wall_ms();
  const std::string started = sql_text(bystander_started);
  insert_waiter(settings, 5001, host, bystander, started, now - 1000);
  insert_waiter(settings, 5002, host, bystander, started, now);
  insert_waiter(settings, 5003, host, bystander, started, now - 2000);
  insert_waiter(settings, 5004, host, bystander, started, now - 1000);  // ties with 5001
  for (std::int64_t expected : {5003, 5001, 5004, 5002}) {
    ASSERT_TRUE(sender->send("asya-h", "next"));
    EXPECT_EQ(run(settings, "SELECT lease FROM messages ORDER BY id DESC LIMIT 1"), expected);
  }
  EXPECT_EQ(ready(), 0);
}

TEST_F(SqliteWaiterLiveness, ASendRemovesAtMostFourDeadRowsBeforeItGivesUpHandingOver) {
  // Five rows of dead receivers (their pid now the bystander's, started later) older than a live
  // one: a send checks four, removes them and leaves its message ready; the next one hands over.
  const std::int64_t now = wall_ms();
  for (std::int64_t token = 5001; token <= 5005; ++token)
    insert_waiter(settings, token, host, bystander, "'1'", now - 10000 + token);
  insert_waiter(settings, 5006, host, bystander, sql_text(bystander_started), now);
  ASSERT_TRUE(sender->send("asya-h", "ready"));
  EXPECT_EQ(ready(), 1);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters WHERE token <= 5004"), 0);
  EXPECT_EQ(rows(), 2);
  ASSERT_TRUE(sender->send("asya-h", "handed"));
  EXPECT_EQ(ready(), 1);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM messages WHERE lease = 5006"), 1);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters WHERE message_id IS NULL"), 0);
}

TEST_F(SqliteWaiterLiveness, AWaiterThatDiesAfterAHandOffGetsNoSecondOne) {
  insert_waiter(settings, 5001, host, bystander, sql_text(bystander_started));
  ASSERT_TRUE(sender->send("asya-h", "first"));           // its process checked alive (and kept)
  run(settings, "UPDATE waiters SET message_id = NULL");  // as if waiting again
  ::close(std::exchange(hold[1], -1));  // the bystander exits; its pid is then free for reuse
  EXPECT_EQ(test::wait_exit(bystander, Clock::now() + 30s), 0);
  ASSERT_TRUE(sender->send("asya-h", "second"));
  EXPECT_EQ(ready(), 1) << "handed to a process that exited";
  EXPECT_EQ(rows(), 0);
  bystander = test::spawn([] { return 0; });  // for TearDown
}

TEST_F(SqliteWaiterLiveness, ARowOfAnotherPidNamespaceIsNeitherHandedToNorRemoved) {
  // Another container sharing the file through a volume: its pid 1 is not ours, even though ours
  // runs with the very start time recorded.
  insert_waiter(settings, 5001, other_pid_namespace(host), 1,
                sql_text(sqlite::process_start_time(1)));
  ASSERT_TRUE(sender->send("asya-h", "stays"));
  EXPECT_EQ(ready(), 1);
  EXPECT_EQ(rows(), 1);  // not ours to judge: its own container removes it
}

TEST_F(SqliteWaiterLiveness, ARowOfAnotherMachineIsNeitherHandedToNorRemoved) {
  insert_waiter(settings, 5001, other_machine(host), bystander, sql_text(bystander_started));
  insert_waiter(settings, 5002, other_machine(host), 999999999, "'1'");  // a pid gone here
  ASSERT_TRUE(sender->send("asya-h", "stays"));
  EXPECT_EQ(ready(), 1);
  EXPECT_EQ(rows(), 2);
}

TEST_F(SqliteWaiterLiveness, ARowOfAnOlderBuildWithoutAStartTimeIsNotHandedTo) {
  insert_waiter(settings, 5001, host, bystander, "NULL");
  ASSERT_TRUE(sender->send("asya-h", "leased by the receiver itself"));
  EXPECT_EQ(ready(), 1);
  EXPECT_EQ(rows(), 1);  // its receive() deletes it
}

// A receiver killed while waiting, whose lease_owners row is missing (recording it is best
// effort), or a machine that rebooted: opening the file removes the rows nobody waits behind.
TEST_F(SqliteWaiterLiveness, OpeningRemovesTheRowsOfGoneWaitersAndOldRowsOfOtherMachines) {
  ASSERT_TRUE(sender->send("asya-h", "handed to the dead"));
  ASSERT_TRUE(sender->send("asya-h", "handed long ago"));
  std::int64_t far = wall_ms() + 600000;
  std::int64_t day_ago = wall_ms() - 25 * 3600 * 1000;
  insert_waiter(settings, 5001, host, bystander, "'1'");  // its pid reused: gone
  run(settings, "UPDATE messages SET lease = 5001, delivery_count = 1, visible_at_ms = " +
                    std::to_string(far) + " WHERE id = 1");
  run(settings, "UPDATE waiters SET message_id = 1 WHERE token = 5001");
  insert_waiter(settings, 5002, host, bystander, sql_text(bystander_started));  // alive
  insert_waiter(settings, 5003, other_machine(host), 999999999, "'1'");         // recent
  insert_waiter(settings, 5004, other_machine(host), 999999999, "'1'");
  insert_waiter(settings, 5005, other_machine(host), 999999999, "'1'");
  run(settings,
      "UPDATE waiters SET since_ms = " + std::to_string(day_ago) + " WHERE token IN (5004, 5005)");
  // 5005 holds a message still leased with its token: not stale, whatever its age.
  run(settings, "UPDATE messages SET lease = 5005, delivery_count = 1, visible_at_ms = " +
                    std::to_string(far) + " WHERE id = 2");
  run(settings, "UPDATE waiters SET message_id = 2 WHERE token = 5005");

  auto opened = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters WHERE token IN (5002, 5003, 5005)"), 3);
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters"), 3);
  auto got = opened->receive("asya-h", 2, 0ms);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u) << "the dead waiter's hand-off was not released";
  EXPECT_EQ((*got)[0].body, "handed to the dead");
  EXPECT_EQ((*got)[0].delivery_count, 2u);  // counted, as a dead process's lease
}

// The same judgement for lease owners: opening the file releases the leases of a process that is
// gone (its pid reused counts as gone), never those of another pid namespace or machine.
TEST_F(SqliteWaiterLiveness, OpeningReleasesTheLeasesOfAReusedPidButNotOfAnotherNamespace) {
  ASSERT_TRUE(sender->send("asya-h", "reused"));
  ASSERT_TRUE(sender->send("asya-h", "other container"));
  ASSERT_TRUE(sender->send("asya-h", "other machine"));
  std::int64_t far = wall_ms() + 600000;
  auto lease = [&](const char* body, std::int64_t owner, const std::string& host_of, pid_t pid,
                   const std::string& started) {
    run(settings,
        "UPDATE messages SET lease = " + std::to_string(owner << 32 | 1) +
            ", visible_at_ms = " + std::to_string(far) +
            ", delivery_count = 1 WHERE id = (SELECT id FROM bodies WHERE CAST(body AS TEXT) = '" +
            body + "')");
    run(settings, "INSERT INTO lease_owners(owner, host, pid, started) VALUES(" +
                      std::to_string(owner) + ", " + sql_text(host_of) + ", " +
                      std::to_string(pid) + ", " + sql_text(started) + ")");
  };
  lease("reused", 11, host, bystander, "1");
  lease("other container", 12, other_pid_namespace(host), 999999999, "1");
  lease("other machine", 13, other_machine(host), 999999999, "1");
  auto opened = make_sqlite_transport(Options{}, settings);
  auto got = opened->receive("asya-h", 3, 0ms);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "reused");
  EXPECT_EQ(run(settings, "SELECT count(*) FROM lease_owners WHERE owner IN (12, 13)"), 2);
}

// Rows of lease_owners no live process stands behind go at open: those of this identity whose
// process is gone (as before), and those of another boot (every process sharing a WAL file runs on
// one kernel, so a row of another boot id is of an earlier boot, or of a machine that used the
// file before) once they hold no lease any more. Other pid namespaces of this boot, identities
// that could not be established and live processes keep theirs.
TEST_F(SqliteWaiterLiveness, OpeningRemovesTheOwnerRowsOfEarlierBootsThatHoldNoLease) {
  ASSERT_TRUE(sender->send("asya-h", "held by an earlier boot"));
  ASSERT_TRUE(sender->send("asya-h", "expired"));
  std::int64_t far = wall_ms() + 600000;
  auto owner_row = [&](std::int64_t owner, const std::string& host_of, pid_t pid,
                       const std::string& started) {
    run(settings, "INSERT INTO lease_owners(owner, host, pid, started) VALUES(" +
                      std::to_string(owner) + ", " + sql_text(host_of) + ", " +
                      std::to_string(pid) + ", " + sql_text(started) + ")");
  };
  owner_row(21, other_machine(host), 999999999, "1");  // earlier boot, holds nothing
  owner_row(22, other_machine(host), 999999999, "1");  // earlier boot, a lease still running
  run(settings, "UPDATE messages SET lease = " + std::to_string(22LL << 32 | 1) +
                    ", delivery_count = 1, visible_at_ms = " + std::to_string(far) +
                    " WHERE id = 1");
  owner_row(23, other_machine(host), 999999999, "1");  // earlier boot, its lease expired
  run(settings, "UPDATE messages SET lease = " + std::to_string(23LL << 32 | 1) +
                    ", delivery_count = 1, visible_at_ms = " + std::to_string(wall_ms() - 1000) +
                    " WHERE id = 2");
  owner_row(24, other_pid_namespace(host), 999999999, "1");  // another container: not judged
  owner_row(25, "unverified-0123456789abcdef", 999999999, "1");
  owner_row(26, host, bystander, bystander_started);  // alive
  owner_row(27, host, bystander, "1");                // its pid reused: gone
  // The earlier boot's waiting row (holding nothing) and slot file go with its owner row.
  run(settings,
      "INSERT INTO waiters(token, queue, owner, host, pid, visibility_ms, since_ms, message_id, "
      "started) VALUES(" +
          std::to_string(21LL << 32 | 2) + ", 'asya-h', 21, " + sql_text(other_machine(host)) +
          ", 999999999, 600000, " + std::to_string(wall_ms()) + ", NULL, '1')");
  sqlite::HandOffSlots paths{settings.path};
  std::filesystem::create_directories(paths.path_of(21).parent_path());
  { std::ofstream touch(paths.path_of(21)); }

  auto opened = make_sqlite_transport(Options{}, settings);
  auto kept = [&](std::int64_t owner) {
    return run(settings,
               "SELECT count(*) FROM lease_owners WHERE owner = " + std::to_string(owner)) == 1;
  };
  EXPECT_FALSE(kept(21));
  EXPECT_TRUE(kept(22)) << "the owner of a running lease lost its row";
  EXPECT_FALSE(kept(23));
  EXPECT_TRUE(kept(24));
  EXPECT_TRUE(kept(25));
  EXPECT_TRUE(kept(26)) << "a live process lost its row";
  EXPECT_FALSE(kept(27));
  EXPECT_EQ(run(settings, "SELECT count(*) FROM waiters WHERE owner = 21"), 0);
  EXPECT_FALSE(std::filesystem::exists(paths.path_of(21)));
  // Nothing was released: the running lease stays, the expired one was visible already.
  EXPECT_EQ(run(settings, "SELECT lease FROM messages WHERE id = 1"), 22LL << 32 | 1);
  EXPECT_EQ(run(settings, "SELECT delivery_count FROM messages WHERE id = 2"), 1);
  EXPECT_EQ(ready(), 1);
}

}  // namespace
}  // namespace asya::transport
