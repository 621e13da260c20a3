// Hand-off slots (hand_off_slots.hpp): a handed message copied into the waiting receiver's shared
// slot, taken from there once the sender's COMMIT returned. The unit tests drive the slots by
// hand; the transport tests run receivers in child processes (so that they can be killed).
#include "transport/sqlite/hand_off_slots.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "transport/sqlite/hand_off.hpp"
#include "transport/sqlite/queue_waker.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using sqlite::HandOffSlots;
using test::query;
using test::visibility;
using test::wait_for;
using test::waiting_rows_of;
using Take = HandOffSlots::Take;

constexpr std::int64_t kOwner = 4242;

std::int64_t token_of(std::int64_t counter) {
  return (kOwner << 32) | counter;
}

class SqliteHandOffSlots : public ::testing::Test {
 protected:
  test::TempDir dir;
  std::string path = dir.settings().path;
  HandOffSlots receiver{path};
  HandOffSlots sender{path};
};

TEST_F(SqliteHandOffSlots, AStagedMessageIsTakenOnlyAfterItsTransactionCommitted) {
  ASSERT_TRUE(receiver.open_own(kOwner));
  Delivery d;
  EXPECT_EQ(receiver.take(token_of(7), "q", d), Take::kNothing);  // a new slot holds nothing
  sender.stage(token_of(7), 31, "the body");
  EXPECT_EQ(receiver.take(token_of(7), "q", d), Take::kStaged);
  sender.end_transaction(true);
  std::uint64_t before = sqlite::hand_off_slot_takes();
  ASSERT_EQ(receiver.take(token_of(7), "q", d), Take::kTaken);
  EXPECT_EQ(std::string(d.body), "the body");
  EXPECT_EQ(d.queue, "q");
  EXPECT_EQ(d.delivery_count, 1u);
  EXPECT_EQ(d.receipt, "31:" + std::to_string(token_of(7)));
  EXPECT_EQ(sqlite::hand_off_slot_takes(), before + 1);
}

TEST_F(SqliteHandOffSlots, AStageWhoseTransactionWasRolledBackIsNeverTaken) {
  ASSERT_TRUE(receiver.open_own(kOwner));
  sender.stage(token_of(7), 31, "rolled back");
  sender.end_transaction(false);
  Delivery d;
  EXPECT_EQ(receiver.take(token_of(7), "q", d), Take::kStaged);  // waits, then reads the database
  // A later transaction handing another message to the same registration commits it.
  sender.stage(token_of(7), 32, "committed");
  sender.end_transaction(true);
  ASSERT_EQ(receiver.take(token_of(7), "q", d), Take::kTaken);
  EXPECT_EQ(std::string(d.body), "committed");
  EXPECT_EQ(d.receipt, "32:" + std::to_string(token_of(7)));
}

TEST_F(SqliteHandOffSlots, ARegistrationSharingTheSlotSendsTheOtherToTheDatabase) {
  ASSERT_TRUE(receiver.open_own(kOwner));
  const std::int64_t first = token_of(5);
  const std::int64_t second = token_of(5 + HandOffSlots::kSlots);  // the same slot index
  sender.stage(first, 1, "first");
  sender.end_transaction(true);
  sender.stage(second, 2, "second");
  Delivery d;
  EXPECT_EQ(receiver.take(first, "q", d), Take::kNothing) << "overwritten: read the database";
  EXPECT_EQ(receiver.take(second, "q", d), Take::kStaged);
  sender.end_transaction(true);
  ASSERT_EQ(receiver.take(second, "q", d), Take::kTaken);
  EXPECT_EQ(std::string(d.body), "second");
  EXPECT_EQ(receiver.take(first, "q", d), Take::kNothing);
}

TEST_F(SqliteHandOffSlots, ABodyLargerThanASlotIsNotStaged) {
  ASSERT_TRUE(receiver.open_own(kOwner));
  std::string fits(HandOffSlots::kSlotBodyBytes, 'a');
  std::string too_large(HandOffSlots::kSlotBodyBytes + 1, 'b');
  sender.stage(token_of(1), 1, too_large);
  sender.stage(token_of(2), 2, fits);
  sender.end_transaction(true);
  Delivery d;
  EXPECT_EQ(receiver.take(token_of(1), "q", d), Take::kNothing);
  ASSERT_EQ(receiver.take(token_of(2), "q", d), Take::kTaken);
  EXPECT_EQ(std::string(d.body), fits);
}

TEST_F(SqliteHandOffSlots, AReceiverWithoutASlotFileGetsNothingStaged) {
  // A receiver of an older Asya (or one that could not create its file): no file, no slot.
  sender.stage(token_of(1), 1, "for an older receiver");
  sender.end_transaction(true);
  EXPECT_FALSE(std::filesystem::exists(sender.path_of(kOwner)));
  Delivery d;
  EXPECT_EQ(receiver.take(token_of(1), "q", d), Take::kNothing);
}

TEST_F(SqliteHandOffSlots, ASlotLeftHalfWrittenByADeadSenderIsWrittenAgainByTheNext) {
  ASSERT_TRUE(receiver.open_own(kOwner));
  // The sequence of slot 3 left odd: a sender killed while copying into it.
  pid_t child = test::spawn([&] {
    HandOffSlots dying{path};
    dying.stage(token_of(3), 1, "half");
    int fd = ::open(dying.path_of(kOwner).c_str(), O_RDWR);
    void* base = ::mmap(nullptr, HandOffSlots::kSlots * HandOffSlots::kSlotBytes,
                        PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    auto* sequence =
        reinterpret_cast<std::uint64_t*>(static_cast<char*>(base) + 3 * HandOffSlots::kSlotBytes);
    *sequence += 1;
    ::raise(SIGKILL);
    return 0;
  });
  ASSERT_EQ(test::wait_exit(child, Clock::now() + 30s), 128 + SIGKILL);
  Delivery d;
  EXPECT_EQ(receiver.take(token_of(3), "q", d), Take::kStaged);  // waits, then the database
  sender.stage(token_of(3), 2, "whole");
  sender.end_transaction(true);
  ASSERT_EQ(receiver.take(token_of(3), "q", d), Take::kTaken);
  EXPECT_EQ(std::string(d.body), "whole");
}

TEST_F(SqliteHandOffSlots, TheFileGoesWithItsReceiverOrWithADeadOwner) {
  ASSERT_TRUE(receiver.open_own(kOwner));
  EXPECT_TRUE(std::filesystem::exists(receiver.path_of(kOwner)));
  receiver.remove_own();
  EXPECT_FALSE(std::filesystem::exists(receiver.path_of(kOwner)));
  HandOffSlots other{path};
  ASSERT_TRUE(other.open_own(kOwner + 1));
  sender.remove_file_of(kOwner + 1);
  EXPECT_FALSE(std::filesystem::exists(sender.path_of(kOwner + 1)));
}

// ---- through the transport ----

// A child that receives one message of `queue` and reports "<body size> <first bytes>
// <delivery count> <hand-offs taken> <taken from the slot>" on `report`, acks it and exits.
pid_t receiving_child(const SqliteSettings& settings, const std::string& queue, int report) {
  return test::spawn([&settings, queue, report] {
    auto t = make_sqlite_transport(visibility(10min), settings);
    std::uint64_t handed_before = sqlite::hand_offs_taken();  // inherited by fork()
    std::uint64_t slot_before = sqlite::hand_off_slot_takes();
    auto got = t->receive(queue, 1, 30s);
    if (!got || got->size() != 1) return 3;
    std::string body((*got)[0].body);
    std::string line = std::to_string(body.size()) + " " + body.substr(0, 8) + " " +
                       std::to_string((*got)[0].delivery_count) + " " +
                       std::to_string(sqlite::hand_offs_taken() - handed_before) + " " +
                       std::to_string(sqlite::hand_off_slot_takes() - slot_before) + "\n";
    if (::write(report, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 4;
    if (!t->ack((*got)[0])) return 5;
    t->close();
    return 0;
  });
}

class SqliteHandOffSlotsTransport : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sender->ensure_queue("asya-s"));
    ASSERT_EQ(::pipe(report), 0);
  }
  void TearDown() override {
    ::close(report[0]);
    ::close(report[1]);
  }
  // Sends `body` to a receiver waiting in a child process; returns its report.
  std::string hand_over(const std::string& body) {
    pid_t child = receiving_child(settings, "asya-s", report[1]);
    wait_for(settings, waiting_rows_of(child), 1);
    EXPECT_TRUE(sender->send("asya-s", body));
    std::string line = test::read_line(report[0], 30s);
    EXPECT_EQ(test::wait_exit(child, Clock::now() + 30s), 0);
    EXPECT_EQ(query(settings, "SELECT count(*) FROM messages"), 0) << "not acked";
    return line;
  }

  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  std::unique_ptr<Transport> sender = make_sqlite_transport(visibility(10min), settings);
  int report[2] = {-1, -1};
};

TEST_F(SqliteHandOffSlotsTransport, AWokenReceiverTakesTheHandedMessageFromItsSlot) {
  EXPECT_EQ(hand_over("slotted"), "7 slotted 1 1 1");  // acked with the slot's receipt
}

TEST_F(SqliteHandOffSlotsTransport, AHandedBodyLargerThanASlotIsReadFromTheDatabase) {
  std::string large(HandOffSlots::kSlotBodyBytes + 1, 'L');
  EXPECT_EQ(hand_over(large), std::to_string(large.size()) + " LLLLLLLL 1 1 0");
}

// A sender killed after it staged a hand-off in the receiver's slot, before its COMMIT: its
// transaction never committed, so that message does not exist and must never be delivered; the
// receiver keeps waiting and takes the next message handed to it.
TEST_F(SqliteHandOffSlotsTransport, AHandOffStagedByASenderKilledBeforeItsCommitIsNeverDelivered) {
  pid_t child = receiving_child(settings, "asya-s", report[1]);
  wait_for(settings, waiting_rows_of(child), 1);
  std::int64_t token =
      query(settings, "SELECT token FROM waiters WHERE pid = " + std::to_string(child));
  pid_t dying = test::spawn([&] {
    HandOffSlots slots{settings.path};
    slots.stage(token, 999999, "ghost");
    QueueWaker(settings.path).notify("asya-s");  // the wake a sender gives before its COMMIT
    ::raise(SIGKILL);
    return 0;
  });
  ASSERT_EQ(test::wait_exit(dying, Clock::now() + 30s), 128 + SIGKILL);
  EXPECT_TRUE(test::read_line(report[0], 300ms).empty()) << "the receiver took a ghost";
  ASSERT_TRUE(sender->send("asya-s", "real"));
  EXPECT_EQ(test::read_line(report[0], 30s), "4 real 1 1 1");
  EXPECT_EQ(test::wait_exit(child, Clock::now() + 30s), 0);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM messages"), 0);
}

TEST_F(SqliteHandOffSlotsTransport, AKilledReceiversSlotFileIsRemovedWhenTheFileIsOpenedAgain) {
  pid_t child = receiving_child(settings, "asya-s", report[1]);
  wait_for(settings, waiting_rows_of(child), 1);
  std::int64_t owner =
      query(settings, "SELECT owner FROM waiters WHERE pid = " + std::to_string(child));
  HandOffSlots slots{settings.path};
  ASSERT_TRUE(std::filesystem::exists(slots.path_of(owner)));
  ::kill(child, SIGKILL);
  ASSERT_EQ(test::wait_exit(child, Clock::now() + 30s), 128 + SIGKILL);
  auto restarted = make_sqlite_transport(visibility(10min), settings);
  EXPECT_FALSE(std::filesystem::exists(slots.path_of(owner)));
  restarted->close();
}

TEST_F(SqliteHandOffSlotsTransport, CloseRemovesTheReceiversSlotFile) {
  hand_over("one");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(
           sqlite::HandOffSlots(settings.path).path_of(0).parent_path(), ec))
    EXPECT_FALSE(entry.path().filename().string().starts_with("slots-")) << entry.path();
}

}  // namespace
}  // namespace asya::transport
