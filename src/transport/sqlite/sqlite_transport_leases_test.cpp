// Leases of a process that died: opening the file on the same machine releases them at once (a
// restarted sidecar gets its killed predecessor's messages back without waiting for the lease to
// expire); the leases of a live process are never touched.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Options long_leases() {
  Options o;
  o.visibility_timeout = std::chrono::minutes(10);
  return o;
}

// A child that leases one message of `queue` (10-minute lease), reports it on `report`, then
// waits to be killed.
pid_t leasing_child(const SqliteSettings& settings, const std::string& queue, int report) {
  return test::spawn([&settings, queue, report] {
    auto t = make_sqlite_transport(long_leases(), settings);
    auto got = t->receive(queue, 1, 10s);
    if (!got || got->size() != 1) return 3;
    char byte = 1;
    if (::write(report, &byte, 1) != 1) return 4;
    ::pause();
    return 0;
  });
}

void wait_report(int fd) {
  char byte = 0;
  ASSERT_EQ(::read(fd, &byte, 1), 1) << "the child did not lease the message";
}

std::int64_t owner_rows(const SqliteSettings& settings) {
  sqlite3* db = nullptr;
  sqlite3_open(settings.path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM lease_owners", -1, &s, nullptr);
  std::int64_t count = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return count;
}

TEST(SqliteLeases, OpeningTheFileReleasesTheLeasesOfAKilledProcessAtOnce) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  const std::string queue = "asya-victim";
  {
    auto setup = make_sqlite_transport(long_leases(), settings);
    ASSERT_TRUE(setup->ensure_queue(queue));
    ASSERT_TRUE(setup->send(queue, "the message"));
  }
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = leasing_child(settings, queue, report[1]);
  wait_report(report[0]);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  auto restarted = make_sqlite_transport(long_leases(), settings);
  auto got = restarted->receive(queue, 1, 0ms);  // no wait: visible right away
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u) << "the killed process's lease was not released";
  EXPECT_EQ((*got)[0].body, "the message");
  EXPECT_EQ((*got)[0].delivery_count, 2u);  // counted like any redelivery
  EXPECT_TRUE(restarted->ack((*got)[0]));
  restarted->close();
  EXPECT_EQ(owner_rows(settings), 0);  // the dead owner forgotten, the clean one removed itself
  ::close(report[0]);
  ::close(report[1]);
}

TEST(SqliteLeases, TheLeasesOfALiveProcessStayLeased) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  const std::string queue = "asya-busy";
  {
    auto setup = make_sqlite_transport(long_leases(), settings);
    ASSERT_TRUE(setup->ensure_queue(queue));
    ASSERT_TRUE(setup->send(queue, "in progress"));
  }
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = leasing_child(settings, queue, report[1]);
  wait_report(report[0]);

  auto other = make_sqlite_transport(long_leases(), settings);
  auto got = other->receive(queue, 1, 200ms);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_TRUE(got->empty()) << "a live process's lease was released";
  auto stats = other->stats(queue);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->in_flight, 1u);
  // The leasing child's row, and `other`'s: a receiver that waited registered as a waiting
  // receiver (hand_off.hpp), which records its owner row like a lease does.
  EXPECT_EQ(owner_rows(settings), 2);
  other->close();
  EXPECT_EQ(owner_rows(settings), 1);

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto after = make_sqlite_transport(long_leases(), settings);
  auto again = after->receive(queue, 1, 0ms);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 1u);
  after->close();
  ::close(report[0]);
  ::close(report[1]);
}

}  // namespace
}  // namespace asya::transport
