// Hand-off (hand_off.hpp): a sender leases its new message to a receiver already waiting for one,
// which then only reads it. Receivers in child processes, so that they can be stopped and killed
// at a chosen moment (a waiting receiver holds no lock: stopping it blocks nobody).
#include "transport/sqlite/hand_off.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "transport/sqlite/body_files.hpp"
#include "transport/sqlite/lease.hpp"
#include "transport/sqlite/lease_owners.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::query;
using test::visibility;
using test::wait_for;
using test::waiting_rows_of;

// Whether every thread of `pid` is stopped (state T).
bool stopped(pid_t pid) {
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream stat(task.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(") ");
    if (close == std::string::npos || text[close + 2] != 'T') return false;
  }
  return !ec;
}

void stop(pid_t pid) {
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  Clock::time_point deadline = Clock::now() + 20s;
  while (!stopped(pid)) {
    ASSERT_LT(Clock::now(), deadline) << "process " << pid << " did not stop";
    std::this_thread::sleep_for(2ms);
  }
}

// A child that receives one message of `queue` (waiting up to 30 s) and reports
// "<body> <delivery count> <hand-offs it took>" on `report`, acks it and exits.
pid_t receiving_child(const SqliteSettings& settings, const std::string& queue, int report,
                      std::chrono::milliseconds lease = 10min) {
  return test::spawn([&settings, queue, report, lease] {
    auto t = make_sqlite_transport(visibility(lease), settings);
    std::uint64_t taken_before = sqlite::hand_offs_taken();  // the parent's, inherited by fork()
    auto got = t->receive(queue, 1, 30s);
    if (!got || got->size() != 1) return 3;
    std::string line = std::string((*got)[0].body) + " " +
                       std::to_string((*got)[0].delivery_count) + " " +
                       std::to_string(sqlite::hand_offs_taken() - taken_before) + "\n";
    if (::write(report, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 4;
    if (!t->ack((*got)[0])) return 5;
    t->close();
    return 0;
  });
}

TEST(SqliteHandOff, AReceiverWaitingInAnotherProcessIsHandedTheMessageAndOnlyReadsIt) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(sender->ensure_queue("asya-h"));
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = receiving_child(settings, "asya-h", report[1]);
  wait_for(settings, waiting_rows_of(child), 1);
  ASSERT_TRUE(sender->send("asya-h", "handed"));
  EXPECT_EQ(test::read_line(report[0], 30s), "handed 1 1");  // taken from its row, first delivery
  EXPECT_EQ(test::wait_exit(child, Clock::now() + 30s), 0);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);  // its close() removed its row
  EXPECT_EQ(query(settings, "SELECT count(*) FROM messages"), 0);
  ::close(report[0]);
  ::close(report[1]);
}

TEST(SqliteHandOff, MessagesOfOneTransactionGoOneToEachWaitingReceiverOldestFirst) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(sender->ensure_queue("asya-h"));
  int first_report[2], second_report[2];
  ASSERT_EQ(::pipe(first_report), 0);
  ASSERT_EQ(::pipe(second_report), 0);
  pid_t first = receiving_child(settings, "asya-h", first_report[1]);
  wait_for(settings, waiting_rows_of(first), 1);
  // Registered later: since_ms is in milliseconds, so let the clock move on first.
  std::this_thread::sleep_for(5ms);
  pid_t second = receiving_child(settings, "asya-h", second_report[1]);
  wait_for(settings, waiting_rows_of(second), 1);
  std::string bodies[3] = {"m0", "m1", "m2"};
  std::vector<OutgoingMessage> messages;
  for (const std::string& body : bodies) messages.push_back(OutgoingMessage{"asya-h", body});
  for (const Status& s : sender->send_many(messages)) ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(test::read_line(first_report[0], 30s), "m0 1 1");
  EXPECT_EQ(test::read_line(second_report[0], 30s), "m1 1 1");
  EXPECT_EQ(test::wait_exit(first, Clock::now() + 30s), 0);
  EXPECT_EQ(test::wait_exit(second, Clock::now() + 30s), 0);
  auto stats = sender->stats("asya-h");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->ready, 1u);  // one message per waiting receiver; the third stays ready
  EXPECT_EQ(stats->in_flight, 0u);
  for (int fd : {first_report[0], first_report[1], second_report[0], second_report[1]}) ::close(fd);
}

// A receiver stopped while waiting, then killed after a sender handed it a message: the message
// is an ordinary lease of the dead process.
class SqliteHandOffKilled : public ::testing::Test {
 protected:
  void hand_to_a_receiver_then_kill_it(std::chrono::milliseconds lease) {
    ASSERT_TRUE(sender->ensure_queue("asya-h"));
    ASSERT_EQ(::pipe(report), 0);
    pid_t child = receiving_child(settings, "asya-h", report[1], lease);
    wait_for(settings, waiting_rows_of(child), 1);
    stop(child);
    ASSERT_TRUE(sender->send("asya-h", "precious"));
    EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters WHERE message_id IS NOT NULL"), 1);
    auto stats = sender->stats("asya-h");
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->in_flight, 1u) << "the message was not handed to the stopped receiver";
    ::kill(child, SIGKILL);
    EXPECT_EQ(test::wait_exit(child, Clock::now() + 30s), 128 + SIGKILL);
    EXPECT_TRUE(test::read_line(report[0], 10ms).empty()) << "the receiver took it";
  }
  void TearDown() override {
    ::close(report[0]);
    ::close(report[1]);
  }

  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  std::unique_ptr<Transport> sender = make_sqlite_transport(visibility(10min), settings);
  int report[2] = {-1, -1};
};

TEST_F(SqliteHandOffKilled, TheMessageIsDeliveredAgainAtTheLeaseExpiry) {
  hand_to_a_receiver_then_kill_it(1s);  // the receiver's visibility timeout is the lease's
  // `sender` was opened before the kill: only the lease expiry brings the message back.
  auto got = sender->receive("asya-h", 1, 30s);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u) << "the message handed to the killed receiver was lost";
  EXPECT_EQ((*got)[0].body, "precious");
  EXPECT_EQ((*got)[0].delivery_count, 2u);
  EXPECT_TRUE(sender->ack((*got)[0]));
}

TEST_F(SqliteHandOffKilled, OpeningTheFileAgainReleasesTheMessageAtOnce) {
  hand_to_a_receiver_then_kill_it(10min);
  auto restarted = make_sqlite_transport(visibility(10min), settings);
  auto got = restarted->receive("asya-h", 1, 0ms);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u) << "the dead receiver's hand-off was not released";
  EXPECT_EQ((*got)[0].body, "precious");
  EXPECT_EQ((*got)[0].delivery_count, 2u);
  EXPECT_TRUE(restarted->ack((*got)[0]));
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);  // the dead owner's row went
}

TEST(SqliteHandOff, TheWaitingRowOfAKilledReceiverIsSkippedAndRemoved) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto sender = make_sqlite_transport(Options{}, settings);  // opened before the kill
  ASSERT_TRUE(sender->ensure_queue("asya-h"));
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = receiving_child(settings, "asya-h", report[1]);
  wait_for(settings, waiting_rows_of(child), 1);
  ::kill(child, SIGKILL);
  EXPECT_EQ(test::wait_exit(child, Clock::now() + 30s), 128 + SIGKILL);
  ASSERT_TRUE(sender->send("asya-h", "for the living"));
  auto stats = sender->stats("asya-h");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->ready, 1u) << "the message was handed to a dead receiver";
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);
  ::close(report[0]);
  ::close(report[1]);
}

// The lease transactions of one receive() (lease.hpp), driven by hand: the race of a sender
// handing a message to a receive() that is leaving, and close() with a hand-off not taken.
class SqliteHandOffParts : public ::testing::Test {
 protected:
  SqliteHandOffParts() {
    auto c = sqlite::Connection::open(settings, /*create_schema=*/true);
    if (!c) throw std::runtime_error(c.error().message);
    if (Status claimed = owners.claim(*c.value()); !claimed)
      throw std::runtime_error(claimed.message());
    pool.add(std::move(c.value()));
  }
  Result<std::vector<Delivery>> lease(bool register_if_none, bool unregister) {
    sqlite::LeaseLook look;
    return sqlite::lease_ready(parts,
                               {"asya-h", 1, 10min, sqlite::LeaseBegin::kWait, &registration,
                                register_if_none, unregister},
                               look);
  }

  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  sqlite::ConnectionPool pool{settings};
  sqlite::LeaseOwners owners;
  sqlite::BodyFiles body_files{settings.path};
  sqlite::Waiters waiters{owners.host()};
  sqlite::HandOffSlots slots{settings.path};
  sqlite::LeaseParts parts{pool, owners, body_files, waiters, slots};
  sqlite::Registration registration;
};

TEST_F(SqliteHandOffParts, AReceiveLeavingRegisteredTakesTheMessageHandedToItMeanwhile) {
  auto sender = make_sqlite_transport(Options{}, settings);
  auto found = lease(/*register_if_none=*/true, false);  // nothing ready: registers
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_TRUE(found->empty());
  ASSERT_TRUE(registration.active());
  ASSERT_TRUE(sender->send("asya-h", "just in time"));  // handed to this process's row
  auto last = lease(false, /*unregister=*/true);        // the receive() leaving at its deadline
  ASSERT_TRUE(last) << last.error().message;
  ASSERT_EQ(last->size(), 1u) << "the message handed in the race was not returned";
  EXPECT_EQ((*last)[0].body, "just in time");
  EXPECT_EQ((*last)[0].delivery_count, 1u);
  EXPECT_FALSE(registration.active());
  EXPECT_TRUE(sender->ack((*last)[0]));
}

TEST_F(SqliteHandOffParts, AReceiveLeavingRegisteredWithNothingHandedRemovesItsRow) {
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(registration.active());
  auto last = lease(false, /*unregister=*/true);
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_TRUE(last->empty());
  EXPECT_FALSE(registration.active());
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);
  ASSERT_TRUE(sender->send("asya-h", "nobody waits"));
  auto stats = sender->stats("asya-h");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->ready, 1u);  // not handed to the row that left
}

TEST_F(SqliteHandOffParts, ASenderWithHandOffOffLeavesTheMessageReady) {
  SqliteSettings off = settings;
  off.hand_off = false;  // ASYA_SQLITE_HAND_OFF=false
  auto sender = make_sqlite_transport(Options{}, off);
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(registration.active());
  ASSERT_TRUE(sender->send("asya-h", "ready"));
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters WHERE message_id IS NULL"), 1);
  auto stats = sender->stats("asya-h");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->ready, 1u);
  auto got = lease(true, false);  // the registered receiver, woken, leases it under the lock
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_FALSE(registration.active());  // the lease ended the registration
}

TEST_F(SqliteHandOffParts, CloseMakesAMessageHandedAndNotTakenVisibleAgainUncounted) {
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(sender->send("asya-h", "not taken"));
  int woken = 0;
  waiters.forget(pool, owners.owner(), [&](const std::string& queue) {
    EXPECT_EQ(queue, "asya-h");
    ++woken;
  });
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);
  auto got = sender->receive("asya-h", 1, 0ms);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].delivery_count, 1u);  // the hand-off nobody read is not a delivery
}

// close() on one thread while a receive() on another has read the message handed to it: the
// message is either returned by that receive() and stays leased to it, or refused to it and made
// visible again by close(), never both (a duplicate). Driven step by step, each order once.
TEST_F(SqliteHandOffParts, CloseBeforeAReceiveTakesItsHandOffRefusesItAndReleasesIt) {
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(sender->send("asya-h", "once"));
  std::int64_t token = registration.token;
  {
    auto c = pool.acquire();
    ASSERT_TRUE(c);
    auto handed = waiters.look(c->connection(), "asya-h", token);  // the receive() read it
    ASSERT_TRUE(handed);
    ASSERT_EQ(handed->state, sqlite::HandOffLook::State::kHanded);
  }
  std::thread closer([&] { waiters.forget(pool, owners.owner(), [](const std::string&) {}); });
  closer.join();
  EXPECT_FALSE(waiters.taken(token)) << "a receive() may return a message close() released";
  EXPECT_EQ(query(settings, "SELECT count(*) FROM messages WHERE lease IS NULL"), 1);
  auto again = sender->receive("asya-h", 1, 0ms);
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_EQ(again->size(), 1u) << "the message refused to the receive() was not released";
  EXPECT_EQ((*again)[0].delivery_count, 1u);  // never returned before: its first delivery
}

TEST_F(SqliteHandOffParts, CloseAfterAReceiveTookItsHandOffLeavesItLeasedToThatReceive) {
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(sender->send("asya-h", "once"));
  std::int64_t token = registration.token;
  auto c = pool.acquire();
  ASSERT_TRUE(c);
  auto handed = waiters.look(c->connection(), "asya-h", token);
  ASSERT_TRUE(handed);
  ASSERT_EQ(handed->state, sqlite::HandOffLook::State::kHanded);
  EXPECT_TRUE(waiters.taken(token));  // the receive() returns it
  std::thread closer([&] { waiters.forget(pool, owners.owner(), [](const std::string&) {}); });
  closer.join();
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM messages WHERE lease = " + std::to_string(token)),
            1);
  auto again = sender->receive("asya-h", 1, 0ms);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->empty()) << "close() released a message a receive() returned: a duplicate";
  Delivery returned = handed->delivery;
  EXPECT_TRUE(sender->ack(returned));  // still the receive()'s lease
}

TEST_F(SqliteHandOffParts, AReceiveRegistersNoMoreOnceCloseBegan) {
  waiters.forget(pool, owners.owner(), [](const std::string&) {});
  auto found = lease(/*register_if_none=*/true, false);
  ASSERT_FALSE(found);
  EXPECT_NE(found.error().message.find("being closed"), std::string::npos) << found.error().message;
  EXPECT_FALSE(registration.active());
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters"), 0);
}

TEST_F(SqliteHandOffParts, ALeaseThatTakesMessagesEndsTheRegistration) {
  auto sender = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(registration.active());
  ASSERT_TRUE(sender->send("asya-h", "one", 0ms));
  // Handed to the row: the next look under the lock returns it without leasing.
  auto got = lease(true, false);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_FALSE(registration.active());
  // Registered again; then a delayed message (never handed) becomes ready and is leased: the
  // lease deletes the row in its own transaction.
  ASSERT_TRUE(lease(true, false));
  ASSERT_TRUE(registration.active());
  ASSERT_TRUE(sender->send("asya-h", "delayed", 1ms));
  std::this_thread::sleep_for(5ms);  // past its visibility time
  auto leased = lease(true, false);
  ASSERT_TRUE(leased) << leased.error().message;
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].body, "delayed");
  EXPECT_FALSE(registration.active());
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters WHERE message_id IS NULL"), 0);
}

}  // namespace
}  // namespace asya::transport
