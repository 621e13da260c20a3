// Waking receivers just before the COMMIT (group_commit.hpp, queue_waker.hpp): the wake runs once
// per queue with the write lock held and the rows not yet visible; a receiver woken then waits
// for the lock and gets the message (no second wake-up after the commit is needed), and so does a
// receiver that only starts to look after the wake (its look takes the lock too); a sender
// killed between its wake and its COMMIT commits nothing, and its receivers, woken for nothing,
// go on waiting and get the next message exactly once; a batch rolled back by a failing operation
// wakes nobody, and each operation run alone again wakes its own queues; several receivers woken
// for one message: one takes it, the others wait on.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/group_commit.hpp"
#include "transport/sqlite/queue_waker.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport::sqlite {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::read_line;
using test::spawn;
using test::wait_exit;

// A message row and its body, as the transport's send inserts them.
GroupCommit::Operation insert_message(std::string queue, std::string body) {
  return [queue, body](Connection& db, bool& abort) -> Status {
    auto fail = [&] {
      abort = true;
      return Status(Error{"insert: " + db.error()});
    };
    auto s = db.statement(kSend);
    if (!s) return fail();
    ResetOnExit reset{*s};
    bind_text(*s, 1, queue);
    sqlite3_bind_int64(*s, 2, now_ms());
    sqlite3_bind_int64(*s, 3, now_ms());
    if (sqlite3_step(*s) != SQLITE_DONE) return fail();
    auto b = db.statement(kSendBody);
    if (!b) return fail();
    ResetOnExit reset_body{*b};
    sqlite3_bind_int64(*b, 1, sqlite3_last_insert_rowid(db.db()));
    bind_blob(*b, 2, body);
    if (sqlite3_step(*b) != SQLITE_DONE) return fail();
    return Status::Ok();
  };
}

// A line written to a pipe by a child process (test::read_line reads it).
void write_line(int fd, const std::string& line) {
  std::string text = line + "\n";
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) _exit(20);
}

// A receiver process whose only way to find a message is a wake-up (a fallback poll of an hour):
// says "waiting", receives once with a long wait and reports the body, acks it, and checks that
// nothing else arrives. Exit 0 when all went as expected.
pid_t spawn_receiver(const SqliteSettings& settings, const std::string& queue, int report) {
  return spawn([settings, queue, report] {
    SqliteSettings s = settings;
    s.poll_interval = 3600s;
    auto t = make_sqlite_transport(Options{}, s);
    write_line(report, "waiting");
    auto got = t->receive(queue, 1, 60000ms);
    if (!got.ok()) return 2;
    if (got->size() != 1) return 3;
    write_line(report, got->front().body);
    if (!t->ack(got->front()).ok()) return 4;
    auto more = t->receive(queue, 10, 300ms);
    if (!more.ok() || !more->empty()) return 5;
    return 0;
  });
}

struct Database {
  test::TempDir dir;
  SqliteSettings settings = [this] {
    SqliteSettings s = dir.settings();
    s.busy_timeout = 60s;
    return s;
  }();
  Database() {
    auto setup = make_sqlite_transport(Options{}, settings);
    EXPECT_TRUE(setup->ensure_queue("asya-q").ok());
  }
};

TEST(SqliteWakeBeforeCommit, WakeRunsOncePerQueueWithTheLockHeldBeforeTheRowsAreVisible) {
  Database d;
  sqlite3* observer = nullptr;
  ASSERT_EQ(sqlite3_open(d.settings.path.c_str(), &observer), SQLITE_OK);
  auto count_rows = [&] {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(observer, "SELECT count(*) FROM messages", -1, &s, nullptr);
    int n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_finalize(s);
    return n;
  };
  std::vector<std::string> woken;
  std::vector<int> visible_at_wake;
  std::vector<int> begin_at_wake;
  ConnectionPool pool{d.settings};
  GroupCommit group{pool, [&](std::string_view queue) {
                      woken.emplace_back(queue);
                      visible_at_wake.push_back(count_rows());
                      // No busy handler on `observer`: SQLITE_BUSY at once while the lock is held.
                      begin_at_wake.push_back(
                          sqlite3_exec(observer, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr));
                      if (begin_at_wake.back() == SQLITE_OK)
                        sqlite3_exec(observer, "ROLLBACK", nullptr, nullptr, nullptr);
                    }};
  std::vector<GroupCommit::Job> jobs;
  jobs.push_back({"one", insert_message("a", "1"), {"a"}});
  jobs.push_back({"two", insert_message("b", "2"), {"b", "a"}});
  jobs.push_back({"three", insert_message("c", "3"), {}});
  for (const Status& s : group.run_many(jobs)) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(group.stats().transactions, 1u);  // queued together: one batch, one wake per queue
  EXPECT_EQ(woken, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(visible_at_wake, (std::vector<int>{0, 0}));
  EXPECT_EQ(begin_at_wake, (std::vector<int>{SQLITE_BUSY, SQLITE_BUSY}));
  EXPECT_EQ(count_rows(), 3);
  sqlite3_close(observer);
}

// The wake comes once every statement of the batch ran, just before the COMMIT. A batch rolled
// back because an operation failed wakes nobody; each operation is then run alone, in its own
// transaction, which wakes its own queues once its statements ran.
TEST(SqliteWakeBeforeCommit, ARolledBackBatchWakesNobodyAndEachOperationRunAloneWakesItsQueues) {
  Database d;
  std::vector<std::string> events;
  ConnectionPool pool{d.settings};
  GroupCommit group{
      pool, [&](std::string_view queue) { events.push_back(std::string("wake ").append(queue)); }};
  auto logged = [&](std::string name, GroupCommit::Operation op) -> GroupCommit::Operation {
    return [&events, name, op](Connection& db, bool& abort) {
      events.push_back(std::string("run ").append(name));
      return op(db, abort);
    };
  };
  GroupCommit::Operation failing = [](Connection&, bool& abort) -> Status {
    abort = true;  // as a failed statement does: the whole transaction is rolled back
    return Error{"failed on purpose"};
  };
  std::vector<GroupCommit::Job> jobs;
  jobs.push_back({"one", logged("one", insert_message("a", "1")), {"a"}});
  jobs.push_back({"two", logged("two", failing), {"b"}});
  jobs.push_back({"three", logged("three", insert_message("c", "3")), {"c"}});
  std::vector<Status> results = group.run_many(jobs);
  EXPECT_TRUE(results[0].ok()) << results[0].message();
  EXPECT_FALSE(results[1].ok());
  EXPECT_TRUE(results[2].ok()) << results[2].message();
  EXPECT_EQ(events, (std::vector<std::string>{"run one", "run two", "run one", "wake a", "run two",
                                              "run three", "wake c"}));
  auto reader = make_sqlite_transport(Options{}, d.settings);
  for (const char* queue : {"a", "c"}) {
    auto stats = reader->stats(queue);
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->ready, 1u) << queue;
  }
  auto b = reader->stats("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ready, 0u);
}

// The sender holds the write lock for a while after its wake (as a slow COMMIT would): the woken
// receiver's lease spins, then sleeps in the busy handler, and gets the message once it commits.
TEST(SqliteWakeBeforeCommit, AReceiverWokenBeforeTheCommitWaitsForTheLockAndGetsTheMessage) {
  Database d;
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t receiver = spawn_receiver(d.settings, "asya-q", report[1]);
  ::close(report[1]);
  ASSERT_EQ(read_line(report[0], 20000ms), "waiting");
  ConnectionPool pool{d.settings};
  QueueWaker waker(d.settings.path);
  GroupCommit group{pool, [&](std::string_view queue) {
                      waker.notify(queue);
                      // Widens the window between the wake and the COMMIT; the outcome asserted
                      // below is the same whichever way the receiver's attempts fall.
                      std::this_thread::sleep_for(300ms);
                    }};
  std::vector<GroupCommit::Job> jobs;
  jobs.push_back({"send", insert_message("asya-q", "hello"), {"asya-q"}});
  EXPECT_TRUE(group.run_many(jobs).front().ok());
  EXPECT_EQ(read_line(report[0], 30000ms), "hello");
  EXPECT_EQ(wait_exit(receiver, Clock::now() + 30s), 0);
  ::close(report[0]);
  waker.stop();
}

// The race a wake before the COMMIT opens: a receiver that starts to look after the wake (its
// generation already includes it, so no wake-up is left for it) but before the COMMIT. Its look
// takes the write lock, so it waits for the COMMIT and finds the message; a look without the lock
// would see nothing and sleep through the fallback poll (an hour here).
TEST(SqliteWakeBeforeCommit, AReceiverLookingBetweenTheWakeAndTheCommitStillGetsTheMessage) {
  Database d;
  int go[2], report[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(report), 0);
  pid_t receiver = spawn([&, settings = d.settings] {
    SqliteSettings s = settings;
    s.poll_interval = 3600s;
    auto t = make_sqlite_transport(Options{}, s);
    if (read_line(go[0], 30000ms) != "go") return 6;  // the sender has woken and holds the lock
    auto got = t->receive("asya-q", 1, 60000ms);
    if (!got.ok() || got->size() != 1) return 3;
    write_line(report[1], got->front().body);
    return t->ack(got->front()).ok() ? 0 : 4;
  });
  ::close(go[0]);
  ::close(report[1]);
  ConnectionPool pool{d.settings};
  QueueWaker waker(d.settings.path);
  GroupCommit group{pool, [&](std::string_view queue) {
                      waker.notify(queue);
                      write_line(go[1], "go");
                      // Keeps the lock while the receiver starts its receive; the outcome is the
                      // same if it gets there only after the COMMIT.
                      std::this_thread::sleep_for(300ms);
                    }};
  std::vector<GroupCommit::Job> jobs;
  jobs.push_back({"send", insert_message("asya-q", "late"), {"asya-q"}});
  EXPECT_TRUE(group.run_many(jobs).front().ok());
  EXPECT_EQ(read_line(report[0], 30000ms), "late");
  EXPECT_EQ(wait_exit(receiver, Clock::now() + 30s), 0);
  ::close(go[1]);
  ::close(report[0]);
  waker.stop();
}

// A sender SIGKILLed after waking the receivers and before its COMMIT: its message was never
// committed (its send never returned), the receiver woken for nothing finds no message and waits
// again, and the next message reaches it exactly once.
TEST(SqliteWakeBeforeCommit, ASenderKilledBetweenItsWakeAndItsCommitLosesAndDoublesNothing) {
  Database d;
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t receiver = spawn_receiver(d.settings, "asya-q", report[1]);
  ::close(report[1]);
  ASSERT_EQ(read_line(report[0], 20000ms), "waiting");
  pid_t killed = spawn([settings = d.settings] {
    ConnectionPool pool{settings};
    QueueWaker waker(settings.path);
    GroupCommit group{pool, [&](std::string_view queue) {
                        waker.notify(queue);
                        ::raise(SIGKILL);
                      }};
    std::vector<GroupCommit::Job> jobs;
    jobs.push_back({"send", insert_message("asya-q", "never-committed"), {"asya-q"}});
    group.run_many(jobs);
    return 1;  // not reached
  });
  EXPECT_EQ(wait_exit(killed, Clock::now() + 30s), 128 + SIGKILL);
  auto producer = make_sqlite_transport(Options{}, d.settings);
  ASSERT_TRUE(producer->send("asya-q", "kept").ok());
  EXPECT_EQ(read_line(report[0], 30000ms), "kept");
  EXPECT_EQ(wait_exit(receiver, Clock::now() + 30s), 0);
  ::close(report[0]);
  auto stats = producer->stats("asya-q");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
}

// Three receiver processes wait on one queue (their only way to find a message is a wake-up). A
// wake with nothing to take wakes them all for nothing; then each message wakes every receiver
// still waiting, exactly one of them takes it and the others wait again: every message is
// received exactly once and each receiver gets one.
TEST(SqliteWakeBeforeCommit, SeveralReceiversWokenForOneMessageTakeItOnceAndTheOthersWaitOn) {
  Database d;
  constexpr int kReceivers = 3;
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  std::vector<pid_t> receivers;
  for (int r = 0; r < kReceivers; ++r) {
    receivers.push_back(spawn([settings = d.settings, fd = report[1]] {
      SqliteSettings s = settings;
      s.poll_interval = 3600s;
      auto t = make_sqlite_transport(Options{}, s);
      write_line(fd, "waiting");
      auto got = t->receive("asya-q", 1, 60000ms);
      if (!got.ok() || got->size() != 1) return 3;
      if (!t->ack(got->front()).ok()) return 4;
      write_line(fd, got->front().body);
      return 0;
    }));
  }
  ::close(report[1]);
  for (int r = 0; r < kReceivers; ++r) ASSERT_EQ(read_line(report[0], 20000ms), "waiting");
  // Each receiver watches the wake file before it says "waiting"; its first look may still be
  // under way, which changes nothing below (it then finds the queue empty or takes a message).
  QueueWaker waker(d.settings.path);
  waker.notify("asya-q");  // nothing to take
  auto producer = make_sqlite_transport(Options{}, d.settings);
  std::vector<std::string> got;
  for (int i = 0; i < kReceivers; ++i) {
    ASSERT_TRUE(producer->send("asya-q", std::string("m").append(std::to_string(i))).ok());
    got.push_back(read_line(report[0], 30000ms));
  }
  for (pid_t receiver : receivers) EXPECT_EQ(wait_exit(receiver, Clock::now() + 30s), 0);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"m0", "m1", "m2"}));
  ::close(report[0]);
  waker.stop();
  auto stats = producer->stats("asya-q");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
}

}  // namespace
}  // namespace asya::transport::sqlite
