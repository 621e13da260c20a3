// The per-queue wake-ups of the SQLite transport: who is woken by which write, across processes,
// and that a wake-up that never comes still delivers within the fallback poll.
#include "transport/sqlite/queue_waker.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::spawn;
using test::wait_exit;

TEST(QueueWakerFileName, PlainQueueNamesAreTheirOwnFileNamesOthersAreHashed) {
  EXPECT_EQ(QueueWaker::file_name("asya-error-end"), "asya-error-end");
  EXPECT_EQ(QueueWaker::file_name("Queue_1.x"), "Queue_1.x");
  std::set<std::string> names;
  for (const char* queue : {"../escape", "a/b", ".hidden", "", "with space", "ünïcode"}) {
    std::string name = QueueWaker::file_name(queue);
    EXPECT_EQ(name.rfind("q-", 0), 0u) << queue;
    EXPECT_EQ(name.find('/'), std::string::npos) << queue;
    EXPECT_EQ(name.size(), 18u) << queue;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 6u) << "different queues should get different hashed names";
  EXPECT_EQ(QueueWaker::file_name(std::string(201, 'a')).rfind("q-", 0), 0u);
}

// A receiver of asya-a watches only asya-a's wake file: 200 sends to asya-b from another
// process wake its watch of asya-b (so the events do arrive) and never its asya-a.
TEST(QueueWaker, SendsToQueueBInAnotherProcessDoNotWakeAReceiverOfQueueA) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  {
    auto setup = make_sqlite_transport(Options{}, settings);
    ASSERT_TRUE(setup->ensure_queue("asya-a").ok());
  }
  QueueWaker receiver(settings.path);
  std::uint64_t a = receiver.generation("asya-a");
  std::uint64_t b = receiver.generation("asya-b");
  ASSERT_TRUE(receiver.watching("asya-a"));
  ASSERT_TRUE(receiver.watching("asya-b"));

  pid_t publisher = spawn([&] {
    auto t = make_sqlite_transport(Options{}, settings);
    for (int i = 0; i < 200; ++i) {
      std::string body = "m";  // appended: GCC 12 warns (-Wrestrict) on "m" + string
      body += std::to_string(i);
      if (!t->send("asya-b", body).ok()) return 3;
    }
    return 0;
  });
  ASSERT_EQ(wait_exit(publisher, Clock::now() + 60s), 0);
  // Every send happened before this point; their events are queued in the inotify descriptor.
  // Wait until the watcher has counted at least one for asya-b.
  Clock::time_point deadline = Clock::now() + 20s;
  while (receiver.generation("asya-b") == b && Clock::now() < deadline) {
    receiver.wait("asya-b", b, deadline);
  }
  EXPECT_NE(receiver.generation("asya-b"), b) << "the sends to asya-b never reached its watch";
  // One batch of events bumps every queue it concerns at once: had a write to asya-b reached
  // asya-a, its generation would have moved with asya-b's.
  EXPECT_EQ(receiver.generation("asya-a"), a) << "writes to asya-b woke the receiver of asya-a";
  // A send to asya-a after all of them, then one more wake-up of asya-a must be exactly one
  // generation step away: the 200 sends to asya-b added nothing to asya-a.
  pid_t second = spawn([&] {
    auto t = make_sqlite_transport(Options{}, settings);
    return t->send("asya-a", "for a").ok() ? 0 : 4;
  });
  ASSERT_EQ(wait_exit(second, Clock::now() + 60s), 0);
  deadline = Clock::now() + 20s;
  while (receiver.generation("asya-a") == a && Clock::now() < deadline) {
    receiver.wait("asya-a", a, deadline);
  }
  std::uint64_t after = receiver.generation("asya-a");
  EXPECT_GE(after, a + 1) << "the send to asya-a did not wake its receiver";
  EXPECT_LE(after, a + 2) << "asya-a was woken " << (after - a)
                          << " times: writes to asya-b reached it";
}

// notify() in one instance (as in another process) reaches a waiter of the same queue in
// another instance through the wake file, and a waiter of another queue stays asleep.
TEST(QueueWaker, NotifyWakesOnlyTheWaitersOfItsQueue) {
  test::TempDir dir;
  std::filesystem::path database = dir.path() / "queues.db";
  QueueWaker receiver(database);
  QueueWaker publisher(database);
  std::uint64_t a = receiver.generation("asya-a");
  std::uint64_t b = receiver.generation("asya-b");
  auto waiter_b = std::async(std::launch::async, [&] {
    receiver.wait("asya-b", b, Clock::now() + 3s);
    return receiver.generation("asya-b");
  });
  auto waiter_a = std::async(std::launch::async, [&] {
    receiver.wait("asya-a", a, Clock::now() + 30s);
    return receiver.generation("asya-a");
  });
  for (int i = 0; i < 50; ++i) publisher.notify("asya-a");
  ASSERT_EQ(waiter_a.wait_for(20s), std::future_status::ready);
  EXPECT_GT(waiter_a.get(), a);
  EXPECT_EQ(waiter_b.get(), b) << "notify(asya-a) woke a waiter of asya-b";
  EXPECT_TRUE(std::filesystem::exists(QueueWaker::directory_of(database) / "asya-a"));
}

// A wake file removed while watched: its receivers are woken (they look again), the file is
// watched anew, and a publisher that had the old file open writes the new one.
TEST(QueueWaker, ARemovedWakeFileIsWatchedAgainAndPublishersFollow) {
  test::TempDir dir;
  std::filesystem::path database = dir.path() / "queues.db";
  QueueWaker receiver(database);
  QueueWaker publisher(database);
  std::uint64_t seen = receiver.generation("asya-r");
  publisher.notify("asya-r");  // opens and caches the wake file for writing
  Clock::time_point deadline = Clock::now() + 20s;
  while (receiver.generation("asya-r") == seen && Clock::now() < deadline) {
    receiver.wait("asya-r", seen, deadline);
  }
  ASSERT_NE(receiver.generation("asya-r"), seen);

  seen = receiver.generation("asya-r");
  ASSERT_TRUE(std::filesystem::remove(QueueWaker::directory_of(database) / "asya-r"));
  deadline = Clock::now() + 20s;
  while (receiver.generation("asya-r") == seen && Clock::now() < deadline) {
    receiver.wait("asya-r", seen, deadline);
  }
  seen = receiver.generation("asya-r");  // also watches the re-created file
  ASSERT_TRUE(receiver.watching("asya-r"));
  publisher.notify("asya-r");
  deadline = Clock::now() + 20s;
  while (receiver.generation("asya-r") == seen && Clock::now() < deadline) {
    receiver.wait("asya-r", seen, deadline);
  }
  EXPECT_NE(receiver.generation("asya-r"), seen)
      << "a notify after the wake file was re-created did not arrive";
}

// notify() gives a new wake file its byte by a write, and later only reads it (IN_ACCESS: cheaper
// than a write); both wake the receivers, and so does a write, which is what older writers do.
TEST(QueueWaker, ANotifyThatReadsTheWakeFileWakesItsReceiversAsAWriteDoes) {
  test::TempDir dir;
  std::filesystem::path database = dir.path() / "queues.db";
  QueueWaker receiver(database);
  QueueWaker publisher(database);
  std::filesystem::path file = QueueWaker::directory_of(database) / "asya-x";
  auto wait_for_change = [&](std::uint64_t seen) {
    Clock::time_point deadline = Clock::now() + 20s;
    while (receiver.generation("asya-x") == seen && Clock::now() < deadline) {
      receiver.wait("asya-x", seen, deadline);
    }
    return receiver.generation("asya-x") != seen;
  };
  std::uint64_t seen = receiver.generation("asya-x");
  ASSERT_EQ(std::filesystem::file_size(file), 0u);
  publisher.notify("asya-x");  // the first: writes the byte
  ASSERT_TRUE(wait_for_change(seen)) << "the first notify (a write) did not wake the receiver";
  ASSERT_EQ(std::filesystem::file_size(file), 1u);
  auto written = std::filesystem::last_write_time(file);

  for (int i = 0; i < 3; ++i) {
    seen = receiver.generation("asya-x");
    publisher.notify("asya-x");  // reads the byte
    EXPECT_TRUE(wait_for_change(seen)) << "notify " << i << " (a read) did not wake the receiver";
  }
  EXPECT_EQ(std::filesystem::last_write_time(file), written) << "a later notify wrote the file";
  EXPECT_EQ(std::filesystem::file_size(file), 1u);

  seen = receiver.generation("asya-x");
  {
    std::ofstream older(file, std::ios::in | std::ios::out | std::ios::binary);  // an older writer
    older << '1';
  }
  EXPECT_TRUE(wait_for_change(seen)) << "a write by an older writer did not wake the receiver";
}

TEST(QueueWaker, InterruptEndsEveryWait) {
  test::TempDir dir;
  QueueWaker waker(dir.path() / "queues.db");
  std::uint64_t seen = waker.generation("asya-i");
  auto waiter = std::async(std::launch::async, [&] {
    waker.wait("asya-i", seen, Clock::now() + 60s);
    return true;
  });
  waker.interrupt();
  ASSERT_EQ(waiter.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(waker.interrupted());
}

// One waiter at a time reads the events; when it returns (its queue changed), another waiter of
// the process takes over, so a later notify of that one's queue still wakes it long before its
// fallback.
TEST(QueueWaker, WhenTheWaiterReadingTheEventsReturnsAnotherTakesOver) {
  test::TempDir dir;
  std::filesystem::path database = dir.path() / "queues.db";
  QueueWaker receiver(database);
  QueueWaker publisher(database);
  for (int round = 0; round < 20; ++round) {
    std::uint64_t a = receiver.generation("asya-a");
    std::uint64_t b = receiver.generation("asya-b");
    auto waiter_a = std::async(std::launch::async, [&] {
      receiver.wait("asya-a", a, Clock::now() + 60s);
      return receiver.generation("asya-a");
    });
    auto waiter_b = std::async(std::launch::async, [&] {
      receiver.wait("asya-b", b, Clock::now() + 60s);
      return receiver.generation("asya-b");
    });
    publisher.notify("asya-a");
    ASSERT_EQ(waiter_a.wait_for(20s), std::future_status::ready) << "round " << round;
    EXPECT_GT(waiter_a.get(), a);
    publisher.notify("asya-b");
    ASSERT_EQ(waiter_b.wait_for(20s), std::future_status::ready) << "round " << round;
    EXPECT_GT(waiter_b.get(), b);
  }
}

// stop() while a waiter polls the events: the waiter returns, and stop() returns after it (the
// descriptors it polls are closed only then).
TEST(QueueWaker, StopEndsAWaitThatPollsTheEvents) {
  test::TempDir dir;
  QueueWaker waker(dir.path() / "queues.db");
  std::uint64_t seen = waker.generation("asya-s");
  auto waiter = std::async(std::launch::async, [&] {
    waker.wait("asya-s", seen, Clock::now() + 60s);
    return true;
  });
  auto stopped = std::async(std::launch::async, [&] {
    waker.stop();
    return true;
  });
  ASSERT_EQ(waiter.wait_for(20s), std::future_status::ready);
  ASSERT_EQ(stopped.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(waker.interrupted());
  EXPECT_FALSE(waker.watching("asya-s"));
}

// A message committed without any wake-up (a writer killed between its commit and the wake
// file, or an older Asya) is still received, at the fallback poll, long before the wait ends.
TEST(QueueWaker, AMessageWithoutAWakeUpIsReceivedAtTheFallbackPoll) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.poll_interval = 200ms;
  auto consumer = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(consumer->ensure_queue("asya-quiet").ok());
  auto received = std::async(std::launch::async, [&] {
    auto got = consumer->receive("asya-quiet", 1, 60000ms);
    return std::make_pair(
        got.ok() && got->size() == 1 ? std::string(got->front().body) : std::string("none"),
        Clock::now());
  });
  std::this_thread::sleep_for(300ms);  // let it block (the outcome does not depend on it)
  // Straight into the tables, as a writer that dies before notify() leaves it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(settings.path.c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* error = nullptr;
  int rc = sqlite3_exec(db,
                        "BEGIN IMMEDIATE;"
                        "INSERT INTO messages(queue, visible_at_ms, delivery_count, lease, "
                        "sent_at_ms) VALUES('asya-quiet', 0, 0, NULL, 0);"
                        "INSERT INTO bodies(id, body) VALUES(last_insert_rowid(), 'silent');"
                        "COMMIT;",
                        nullptr, nullptr, &error);
  ASSERT_EQ(rc, SQLITE_OK) << (error ? error : "");
  sqlite3_close(db);
  Clock::time_point committed = Clock::now();
  ASSERT_EQ(received.wait_for(60s), std::future_status::ready);
  auto [body, at] = received.get();
  EXPECT_EQ(body, "silent");
  // The poll is 200 ms; 20 s leaves room for a loaded machine and is far below the 60 s wait.
  EXPECT_LT(at - committed, 20000ms) << "the message waited for the end of receive(), not the poll";
}

// A nack from another process wakes a receiver of the queue at once (the nack commits, then
// writes the wake file), not at the fallback poll.
TEST(QueueWaker, NackInAnotherProcessWakesTheQueuesReceiver) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.poll_interval = 60000ms;  // a wake-up can only come from the wake file
  Options options;
  options.visibility_timeout = 600000ms;  // the lease never expires during the test
  {
    auto producer = make_sqlite_transport(options, settings);
    ASSERT_TRUE(producer->send("asya-n", "retry me").ok());
  }
  int leased[2], go[2];
  ASSERT_EQ(pipe(leased), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t holder = spawn([&] {
    auto t = make_sqlite_transport(options, settings);
    auto got = t->receive("asya-n", 1, 10000ms);
    if (!got.ok() || got->size() != 1) return 5;
    char c = 'x';
    if (::write(leased[1], &c, 1) != 1) return 6;
    if (::read(go[0], &c, 1) != 1) return 7;
    return t->nack(got->front(), 0ms).ok() ? 0 : 8;
  });
  char c;
  ASSERT_EQ(::read(leased[0], &c, 1), 1);
  auto consumer = make_sqlite_transport(options, settings);
  auto received = std::async(std::launch::async, [&] {
    auto got = consumer->receive("asya-n", 1, 120000ms);
    return got.ok() && got->size() == 1 ? std::string(got->front().body) : std::string("none");
  });
  std::this_thread::sleep_for(200ms);  // let it block (the outcome does not depend on it)
  Clock::time_point nacked = Clock::now();
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  EXPECT_EQ(wait_exit(holder, Clock::now() + 60s), 0);
  ASSERT_EQ(received.wait_for(60s), std::future_status::ready)
      << "the nack did not wake the receiver (it would wait for the 120 s receive)";
  EXPECT_EQ(received.get(), "retry me");
  EXPECT_LT(Clock::now() - nacked, 60000ms);
  for (int fd : {leased[0], leased[1], go[0], go[1]}) ::close(fd);
}

}  // namespace
}  // namespace asya::transport
