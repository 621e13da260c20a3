// Lease-owner numbers (lease_owners.hpp): every transport instance on one file has its own, also
// when a test makes them all ask for the same one (as two random draws once could): a message
// handed to one receiver never reaches another, a process's death releases its own leases and no
// one else's, and a clean close() removes its own rows and slot file only.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/env.hpp"
#include "transport/sqlite/hand_off_slots.hpp"
#include "transport/sqlite/lease_owners.hpp"
#include "transport/sqlite/process_identity.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::query;
using test::visibility;
using test::wait_for;

constexpr std::int64_t kSameNumber = 4242;

// While it lives, every transport this process (and a child forked meanwhile) opens asks for
// `number` as its owner number.
class PreferredOwner {
 public:
  explicit PreferredOwner(std::int64_t number) {
    sqlite::LeaseOwners::prefer_owner_for_tests(number);
  }
  ~PreferredOwner() { sqlite::LeaseOwners::prefer_owner_for_tests(0); }
  PreferredOwner(const PreferredOwner&) = delete;
  PreferredOwner& operator=(const PreferredOwner&) = delete;
};

// A child that opens a transport, leases one message of `queue` (10-minute lease), writes a line
// "<body>" on `report`, then waits to be killed.
pid_t leasing_child(const SqliteSettings& settings, const std::string& queue, int report) {
  return test::spawn([&settings, queue, report] {
    auto t = make_sqlite_transport(visibility(10min), settings);
    auto got = t->receive(queue, 1, 10s);
    if (!got || got->size() != 1) return 3;
    std::string line = std::string((*got)[0].body) + "\n";
    if (::write(report, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 4;
    ::pause();
    return 0;
  });
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

class SqliteOwnerNumbers : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(sender->ensure_queue(queue));
    ASSERT_EQ(::pipe(report), 0);
  }
  void TearDown() override {
    ::close(report[0]);
    ::close(report[1]);
  }
  // Sends `bodies` in this order (they are received in it).
  void send(std::initializer_list<const char*> bodies) {
    for (const char* body : bodies) ASSERT_TRUE(sender->send(queue, body));
  }

  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  const std::string queue = "asya-n";
  std::unique_ptr<Transport> sender = make_sqlite_transport(Options{}, settings);
  int report[2] = {-1, -1};
};

// Two receivers of one number once registered the same lease token: the second registration
// replaced the first's row, and a message handed to it was taken by both.
TEST_F(SqliteOwnerNumbers, TwoReceiversAskingForOneNumberAreEachHandedAMessageOfTheirOwn) {
  PreferredOwner same(kSameNumber);
  auto first = make_sqlite_transport(visibility(10min), settings);
  auto second = make_sqlite_transport(visibility(11min), settings);
  Result<std::vector<Delivery>> got_first = std::vector<Delivery>{};
  Result<std::vector<Delivery>> got_second = std::vector<Delivery>{};
  std::atomic<int> returned{0};
  std::thread a([&] {
    got_first = first->receive(queue, 1, 30s);
    returned.fetch_add(1);
  });
  wait_for(settings, "SELECT count(*) FROM waiters WHERE visibility_ms = 600000", 1);
  std::thread b([&] {
    got_second = second->receive(queue, 1, 30s);
    returned.fetch_add(1);
  });
  wait_for(settings, "SELECT count(*) FROM waiters WHERE visibility_ms = 660000", 1);
  EXPECT_TRUE(sender->send(queue, "one"));
  Clock::time_point deadline = Clock::now() + 30s;
  while (returned.load() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(2ms);
  EXPECT_TRUE(sender->send(queue, "two"));  // for the receiver still waiting
  a.join();
  b.join();
  ASSERT_TRUE(got_first) << got_first.error().message;
  ASSERT_TRUE(got_second) << got_second.error().message;
  ASSERT_EQ(got_first->size(), 1u);
  ASSERT_EQ(got_second->size(), 1u);
  EXPECT_NE((*got_first)[0].body, (*got_second)[0].body) << "one message handed to both";
  EXPECT_TRUE(first->ack((*got_first)[0]));
  EXPECT_TRUE(second->ack((*got_second)[0]));
}

// The row of a number named the process that recorded it last: when that one died, the leases
// of the other, alive, were released too (and delivered again while it still worked on them).
TEST_F(SqliteOwnerNumbers, AKilledProcessReleasesOnlyItsOwnLeasesNotThoseOfItsNumbersTwin) {
  send({"kept", "released"});
  std::unique_ptr<Transport> holder;
  std::vector<Delivery> kept;
  pid_t child = 0;
  {
    PreferredOwner same(kSameNumber);
    holder = make_sqlite_transport(visibility(10min), settings);
    auto got = holder->receive(queue, 1, 0ms);
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->size(), 1u);
    kept = std::move(*got);
    child = leasing_child(settings, queue, report[1]);
  }
  ASSERT_EQ(test::read_line(report[0], 30s), "released");
  kill_and_reap(child);

  auto opened = make_sqlite_transport(visibility(10min), settings);
  auto again = opened->receive(queue, 2, 0ms);
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_EQ(again->size(), 1u) << "not exactly the dead process's lease was released";
  EXPECT_EQ((*again)[0].body, "released");
  EXPECT_EQ((*again)[0].delivery_count, 2u);
  EXPECT_TRUE(holder->ack(kept[0])) << "the live process's lease was released";
}

// The other way round: a killed process's leases stayed leased while another process alive had
// recorded the same number after it.
TEST_F(SqliteOwnerNumbers, AKilledProcessLeasesAreReleasedThoughALiveOneAskedForItsNumber) {
  send({"dies", "lives"});
  pid_t dying = 0, living = 0;
  {
    PreferredOwner same(kSameNumber);
    dying = leasing_child(settings, queue, report[1]);
    ASSERT_EQ(test::read_line(report[0], 30s), "dies");
    living = leasing_child(settings, queue, report[1]);
    ASSERT_EQ(test::read_line(report[0], 30s), "lives");
  }
  kill_and_reap(dying);
  auto opened = make_sqlite_transport(visibility(10min), settings);
  auto again = opened->receive(queue, 2, 0ms);
  kill_and_reap(living);
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_EQ(again->size(), 1u) << "the killed process's lease was not released";
  EXPECT_EQ((*again)[0].body, "dies");
}

// A clean close() removes its instance's rows and slot file: once those of every instance of its
// number, so a receiver still waiting lost its row, its slot file and its lease_owners row.
TEST_F(SqliteOwnerNumbers, ClosingOneInstanceLeavesAnotherInstancesRowsAndSlotFile) {
  PreferredOwner same(kSameNumber);
  auto waiting = make_sqlite_transport(visibility(10min), settings);
  auto closing = make_sqlite_transport(visibility(11min), settings);
  Result<std::vector<Delivery>> got = std::vector<Delivery>{};
  std::thread receiver([&] { got = waiting->receive(queue, 1, 30s); });
  wait_for(settings, "SELECT count(*) FROM waiters WHERE visibility_ms = 600000", 1);
  std::int64_t owner = query(settings, "SELECT owner FROM waiters WHERE visibility_ms = 600000");
  // The other instance waits a moment too (a registration, its slot file, its owner row).
  auto none = closing->receive(queue, 1, 50ms);
  EXPECT_TRUE(none && none->empty());
  closing->close();

  sqlite::HandOffSlots paths{settings.path};
  EXPECT_TRUE(std::filesystem::exists(paths.path_of(owner))) << "its slot file was removed";
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters WHERE visibility_ms = 600000"), 1);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM lease_owners WHERE owner = " +
                                std::to_string(owner) + " AND pid = " + std::to_string(::getpid())),
            1);
  std::uint64_t slot_takes = sqlite::hand_off_slot_takes();
  EXPECT_TRUE(sender->send(queue, "for the one waiting"));
  receiver.join();
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "for the one waiting");
  EXPECT_EQ(sqlite::hand_off_slot_takes(), slot_takes + 1);  // taken from its slot
}

// Processes opening the file at once, all asking for one number, each get their own.
TEST_F(SqliteOwnerNumbers, ProcessesOpeningAtOnceGetDistinctNumbers) {
  constexpr int kProcesses = 6;
  for (int i = 0; i < kProcesses; ++i) send({"m"});
  std::vector<pid_t> children;
  {
    PreferredOwner same(kSameNumber);
    for (int i = 0; i < kProcesses; ++i)
      children.push_back(leasing_child(settings, queue, report[1]));
  }
  for (int i = 0; i < kProcesses; ++i) EXPECT_EQ(test::read_line(report[0], 30s), "m");
  std::string pids;
  for (pid_t child : children) pids += (pids.empty() ? "" : ", ") + std::to_string(child);
  EXPECT_EQ(
      query(settings, "SELECT count(DISTINCT owner) FROM lease_owners WHERE pid IN (" + pids + ")"),
      kProcesses);
  EXPECT_EQ(query(settings, "SELECT count(DISTINCT lease >> 32) FROM messages"), kProcesses);
  for (pid_t child : children) kill_and_reap(child);
}

// A process of an older build records its number at its first lease; a later transport never
// takes that number.
TEST_F(SqliteOwnerNumbers, ANumberRecordedByAnOlderBuildIsNotTaken) {
  send({"m"});
  std::string host = sqlite::LeaseOwners().host();
  std::string started = sqlite::process_start_time(::getpid());
  query(settings, "INSERT INTO lease_owners(owner, host, pid, started) VALUES(" +
                      std::to_string(kSameNumber) + ", '" + host + "', " +
                      std::to_string(::getpid()) + ", '" + started + "')");
  PreferredOwner same(kSameNumber);
  auto newer = make_sqlite_transport(visibility(10min), settings);
  auto got = newer->receive(queue, 1, 0ms);
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_NE(query(settings, "SELECT lease >> 32 FROM messages"), kSameNumber);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM lease_owners"), 3);  // sender, older, newer
  EXPECT_TRUE(newer->ack((*got)[0]));
}

// An older build's instance that drew a newer one's number replaced its row (INSERT OR REPLACE)
// and registers waiting rows of that number: the newer one's close() deletes neither.
TEST_F(SqliteOwnerNumbers, ClosingLeavesTheRowsAnOlderBuildsInstanceWroteUnderTheSameNumber) {
  auto newer = make_sqlite_transport(Options{}, settings);
  std::int64_t number =
      query(settings,
            "SELECT owner FROM lease_owners WHERE owner <> (SELECT min(owner) FROM "
            "lease_owners)");
  ASSERT_GT(number, 0);
  // The older instance: pid 1 of this machine, alive.
  std::string started = sqlite::process_start_time(1);
  query(settings, "UPDATE lease_owners SET pid = 1, started = '" + started +
                      "' WHERE owner = " + std::to_string(number));
  query(settings,
        "INSERT INTO waiters(token, queue, owner, host, pid, visibility_ms, since_ms, "
        "message_id, started) VALUES(" +
            std::to_string(number << 32 | 7) + ", 'asya-n', " + std::to_string(number) +
            ", (SELECT host FROM lease_owners WHERE owner = " + std::to_string(number) +
            "), 1, 600000, 0, NULL, '" + started + "')");
  auto none = newer->receive(queue, 1, 50ms);  // a waiting row of its own, gone as it returns
  EXPECT_TRUE(none && none->empty());
  newer->close();
  EXPECT_EQ(query(settings, "SELECT pid FROM lease_owners WHERE owner = " + std::to_string(number)),
            1);
  EXPECT_EQ(query(settings, "SELECT count(*) FROM waiters WHERE owner = " + std::to_string(number)),
            1);
}

// Numbers come from a counter: one is not handed out again once its owner closed; after the
// largest number the counter starts again at 1, past the numbers still in use.
TEST_F(SqliteOwnerNumbers, NumbersAreNotReusedAndTheCounterWrapsPastNumbersInUse) {
  EXPECT_EQ(query(settings, "SELECT owner FROM lease_owners"), 1);  // the sender's
  make_sqlite_transport(Options{}, settings)->close();              // took 2, gave its row back
  EXPECT_EQ(query(settings, "SELECT count(*) FROM lease_owners"), 1);
  auto third = make_sqlite_transport(Options{}, settings);
  EXPECT_EQ(query(settings, "SELECT max(owner) FROM lease_owners"), 3);
  query(settings,
        "UPDATE lease_owner_numbers SET last = " + std::to_string(sqlite::LeaseOwners::kMaxOwner));
  auto wrapped = make_sqlite_transport(Options{}, settings);  // 1 is the sender's: 2
  EXPECT_EQ(query(settings, "SELECT count(*) FROM lease_owners WHERE owner = 2"), 1);
  EXPECT_EQ(query(settings, "SELECT last FROM lease_owner_numbers"), 2);
}

// Without its owner row a transport must not lease (its tokens could be another's): the open
// fails, naming the file and why.
TEST_F(SqliteOwnerNumbers, AnOpenThatCannotRecordItsOwnerFailsWithAClearError) {
  query(settings,
        "CREATE TRIGGER refuse BEFORE INSERT ON lease_owners BEGIN SELECT RAISE(ABORT, 'refused "
        "by the test'); END");
  try {
    make_sqlite_transport(Options{}, settings);
    ADD_FAILURE() << "the open succeeded";
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("ASYA_SQLITE_PATH=\"" + settings.path + "\""), std::string::npos)
        << message;
    EXPECT_NE(message.find("cannot record this process as a lease owner"), std::string::npos)
        << message;
    EXPECT_NE(message.find("refused by the test"), std::string::npos) << message;
  }
  EXPECT_EQ(query(settings, "SELECT count(*) FROM lease_owners"), 1);  // the sender's only
}

}  // namespace
}  // namespace asya::transport
