// The statements a message runs at a steady rate (docs/performance.md, "The bare SQLite consumer
// against the raw floor"): none of them may gather rows in a temporary b-tree (an ORDER BY
// without an index, a RETURNING), which SQLite opens, zeroes and closes on every run; and the
// statements written to avoid one keep their meaning: a sender hands its message to the oldest
// waiting receiver, an ack deletes the row and its body once.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "transport/sqlite/body_files.hpp"
#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/hand_off.hpp"
#include "transport/sqlite/hand_off_slots.hpp"
#include "transport/sqlite/lease.hpp"
#include "transport/sqlite/lease_owners.hpp"
#include "transport/sqlite/process_identity.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using sqlite::Connection;

std::unique_ptr<Connection> open_connection(const SqliteSettings& settings) {
  auto c = Connection::open(settings, /*create_schema=*/true);
  if (!c) throw std::runtime_error(c.error().message);
  return std::move(c.value());
}

// The opcodes of `sql`'s program (EXPLAIN) on `db`.
std::vector<std::string> opcodes(sqlite3* db, const std::string& sql) {
  std::vector<std::string> out;
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, ("EXPLAIN " + sql).c_str(), -1, &s, nullptr), SQLITE_OK)
      << sql << ": " << sqlite3_errmsg(db);
  while (s && sqlite3_step(s) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)));
  sqlite3_finalize(s);
  return out;
}

TEST(SqliteSteadyStatements, NoStatementOfAMessagesPathUsesATemporaryBTree) {
  test::TempDir dir;
  auto c = open_connection(dir.settings());
  // A send (handed or not), a lease of one, the look after it, an ack of a body kept in the
  // table, and the waiting receivers' rows.
  const std::vector<sqlite::Sql> steady = {
      sqlite::kSend,         sqlite::kSendBody,    sqlite::kSendHanded,   sqlite::kLease,
      sqlite::kLeaseRow,     sqlite::kNextVisible, sqlite::kAckInline,    sqlite::kAckBody,
      sqlite::kWaiterInsert, sqlite::kWaiterPick,  sqlite::kWaiterHanded, sqlite::kWaiterDelete,
      sqlite::kWaiterRead,   sqlite::kBodyUpTo};
  for (sqlite::Sql id : steady) {
    auto s = c->statement(id);
    ASSERT_TRUE(s) << s.error().message;
    std::string sql = sqlite3_sql(*s);
    for (const std::string& op : opcodes(c->db(), sql)) {
      EXPECT_NE(op, "OpenEphemeral") << sql;
      EXPECT_NE(op, "SorterOpen") << sql;
    }
  }
}

// Rows written by hand with chosen times: the pick keeps the oldest (since_ms, then token), and
// skips rows that hold a message, wait on another queue or have no start time (older builds).
TEST(SqliteSteadyStatements, ASenderPicksTheOldestWaitingRowAndTheLowerTokenOfATie) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto c = open_connection(settings);
  sqlite::LeaseOwners owners;
  sqlite::Waiters waiters{owners.host()};
  const std::string started = sqlite::process_start_time(::getpid());
  ASSERT_FALSE(started.empty());
  auto row = [&](std::int64_t token, const char* queue, std::int64_t since, const char* message,
                 const std::string& start) {
    return "INSERT INTO waiters(token, queue, owner, host, pid, visibility_ms, since_ms, "
           "message_id, started) VALUES(" +
           std::to_string(token) + ", '" + queue + "', 1, '" + owners.host() + "', " +
           std::to_string(::getpid()) + ", " + std::to_string(1000 + token) + ", " +
           std::to_string(since) + ", " + message + ", '" + start + "')";
  };
  for (const std::string& sql :
       {row(30, "asya-q", 100, "NULL", started), row(10, "asya-q", 200, "NULL", started),
        row(20, "asya-q", 100, "NULL", started), row(5, "asya-q", 50, "7", started),
        row(6, "asya-other", 10, "NULL", started), row(4, "asya-q", 20, "NULL", "")})
    ASSERT_EQ(test::query(settings, sql), -1);

  std::vector<std::int64_t> picked;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(c->run(sqlite::kBeginImmediate, "BEGIN IMMEDIATE"));
    auto target = waiters.pick(*c, "asya-q");
    ASSERT_TRUE(target) << target.error().message;
    if (*target) {
      picked.push_back((*target)->token);
      EXPECT_EQ((*target)->visibility_ms, 1000 + (*target)->token);
      ASSERT_TRUE(waiters.unregister_in(*c, (*target)->token));
    }
    ASSERT_TRUE(c->run(sqlite::kCommit, "COMMIT"));
  }
  EXPECT_EQ(picked, (std::vector<std::int64_t>{20, 30, 10}));
}

TEST(SqliteSteadyStatements, AnAckDeletesTheRowAndItsBodyOnceAndAStaleReceiptChangesNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto transport = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(transport->send("asya-a", "first"));
  ASSERT_TRUE(transport->send("asya-a", "second"));
  auto got = transport->receive("asya-a", 1, 1s);
  ASSERT_TRUE(got && got->size() == 1u);
  EXPECT_EQ((*got)[0].body, "first");

  ASSERT_TRUE(transport->ack((*got)[0]));
  EXPECT_EQ(test::query(settings, "SELECT count(*) FROM messages"), 1);
  EXPECT_EQ(test::query(settings, "SELECT count(*) FROM bodies"), 1);
  Status again = transport->ack((*got)[0]);
  EXPECT_FALSE(again);
  EXPECT_NE(again.message().find("no longer held"), std::string::npos) << again.message();

  // A receipt whose lease token is not the row's: nothing deleted, the holder's ack still works.
  auto second = transport->receive("asya-a", 1, 1s);
  ASSERT_TRUE(second && second->size() == 1u);
  Delivery stale = (*second)[0];
  stale.receipt = stale.receipt.substr(0, stale.receipt.find(':')) + ":12345";
  EXPECT_FALSE(transport->ack(stale));
  EXPECT_EQ(test::query(settings, "SELECT count(*) FROM bodies"), 1);
  ASSERT_TRUE(transport->ack((*second)[0]));
  EXPECT_EQ(test::query(settings, "SELECT count(*) FROM messages"), 0);
  EXPECT_EQ(test::query(settings, "SELECT count(*) FROM bodies"), 0);
}

// A lease of one reads the queue's next visible time from the rows it selected (no second look):
// the first row it did not take, or its own lease's end when that comes first; as min() over the
// queue after the update would say.
TEST(SqliteSteadyStatements, ALeaseOfOneReportsTheQueuesNextVisibleTime) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  sqlite::ConnectionPool pool{settings};
  pool.add(open_connection(settings));
  sqlite::LeaseOwners owners;
  {
    auto c = pool.acquire();
    ASSERT_TRUE(c);
    ASSERT_TRUE(owners.claim(c->connection()));
  }
  sqlite::BodyFiles body_files{settings.path};
  sqlite::Waiters waiters{owners.host()};
  sqlite::HandOffSlots slots{settings.path};
  sqlite::LeaseParts parts{pool, owners, body_files, waiters, slots};
  auto sender = make_sqlite_transport(Options{}, settings);
  auto lease = [&](std::size_t max, std::chrono::milliseconds visibility, sqlite::LeaseLook& look) {
    return sqlite::lease_ready(parts, {"asya-n", max, visibility, sqlite::LeaseBegin::kWait}, look);
  };
  // What the look must equal: min() over the queue after the lease.
  auto queue_next = [&] {
    return test::query(settings,
                       "SELECT min(visible_at_ms) FROM messages WHERE queue = 'asya-n' AND "
                       "visible_at_ms IS NOT NULL");
  };
  sqlite::LeaseLook look;

  auto got = lease(1, 10min, look);  // an empty queue
  ASSERT_TRUE(got && got->empty());
  EXPECT_FALSE(look.next_visible);

  ASSERT_TRUE(sender->send("asya-n", "later", 1h));
  got = lease(1, 10min, look);  // nothing ready: the delayed message's time
  ASSERT_TRUE(got && got->empty());
  ASSERT_TRUE(look.next_visible);
  EXPECT_EQ(*look.next_visible, queue_next());

  ASSERT_TRUE(sender->send("asya-n", "first"));
  ASSERT_TRUE(sender->send("asya-n", "second"));
  got = lease(1, 10min, look);  // two ready: the second one's time (already due)
  ASSERT_TRUE(got && got->size() == 1u);
  EXPECT_EQ((*got)[0].body, "first");
  ASSERT_TRUE(look.next_visible);
  EXPECT_EQ(*look.next_visible, queue_next());
  EXPECT_LE(*look.next_visible, sqlite::now_ms());

  got = lease(1, 10min, look);  // the last ready one: the first one's lease ends first
  ASSERT_TRUE(got && got->size() == 1u);
  EXPECT_EQ((*got)[0].body, "second");
  ASSERT_TRUE(look.next_visible);
  EXPECT_EQ(*look.next_visible, queue_next());
  EXPECT_GT(*look.next_visible, sqlite::now_ms());

  ASSERT_TRUE(sender->send("asya-n", "third"));
  got = lease(4, 2h, look);  // a lease of several taking one
  ASSERT_TRUE(got && got->size() == 1u);
  EXPECT_EQ((*got)[0].body, "third");
  ASSERT_TRUE(look.next_visible);
  EXPECT_EQ(*look.next_visible, queue_next());

  // Only the leased message left: its own lease's end.
  ASSERT_TRUE(test::query(settings,
                          "DELETE FROM messages WHERE id IN (SELECT id FROM bodies WHERE "
                          "body <> 'fourth')") == -1);
  ASSERT_TRUE(sender->send("asya-n", "fourth"));
  got = lease(1, 30min, look);
  ASSERT_TRUE(got && got->size() == 1u);
  EXPECT_EQ((*got)[0].body, "fourth");
  ASSERT_TRUE(look.next_visible);
  EXPECT_EQ(*look.next_visible, queue_next());
  EXPECT_GT(*look.next_visible, sqlite::now_ms() + 29 * 60 * 1000);
}

}  // namespace
}  // namespace asya::transport
