// send_many / ack_many on SQLite (transport.hpp): a batch's sends and acks share write
// transactions; a failed shared write commits nothing and fails every message of it; an ack of a
// lease no longer held fails alone and changes nothing (acks are idempotent); and a process
// killed (SIGKILL) while it settles batches loses nothing and duplicates at most the batch it was
// settling.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"
#include "transport/sqlite/write_lock_stats.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using sqlite::WriteLockStats;

std::string numbered(std::string prefix, std::size_t n) {
  prefix += std::to_string(n);
  return prefix;
}

std::vector<OutgoingMessage> messages_to(const std::string& queue,
                                         const std::vector<std::string>& bodies) {
  std::vector<OutgoingMessage> out;
  for (const std::string& b : bodies) out.push_back(OutgoingMessage{queue, b, 0ms});
  return out;
}

std::vector<const Delivery*> pointers(const std::vector<Delivery>& deliveries) {
  std::vector<const Delivery*> out;
  for (const Delivery& d : deliveries) out.push_back(&d);
  return out;
}

std::vector<Delivery> receive_all(Transport& t, const std::string& queue, std::size_t n) {
  std::vector<Delivery> all;
  Clock::time_point deadline = Clock::now() + 60s;
  while (all.size() < n && Clock::now() < deadline) {
    auto got = t.receive(queue, n - all.size(), 500ms);
    EXPECT_TRUE(got.ok());
    if (!got.ok()) break;
    for (Delivery& d : *got) all.push_back(std::move(d));
  }
  return all;
}

TEST(SqliteSettleMany, ABatchOfSendsAndABatchOfAcksTakeOneWriteTransactionEach) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  ASSERT_TRUE(t->ensure_queue("asya-in").ok());
  std::vector<std::string> bodies;
  for (std::size_t i = 0; i < 32; ++i) bodies.push_back(numbered("m", i));
  for (const Status& s : t->send_many(messages_to("asya-in", bodies))) ASSERT_TRUE(s.ok());
  std::vector<Delivery> in = receive_all(*t, "asya-in", 32);
  ASSERT_EQ(in.size(), 32u);

  std::vector<std::string> outputs;
  for (const Delivery& d : in) outputs.push_back("out-" + d.body);
  std::uint64_t before = WriteLockStats::snapshot().transactions;
  std::vector<Status> sent = t->send_many(messages_to("asya-out", outputs));
  std::uint64_t after_sends = WriteLockStats::snapshot().transactions;
  std::vector<Status> acked = t->ack_many(pointers(in));
  std::uint64_t after_acks = WriteLockStats::snapshot().transactions;
  ASSERT_EQ(sent.size(), 32u);
  ASSERT_EQ(acked.size(), 32u);
  for (const Status& s : sent) EXPECT_TRUE(s.ok()) << s.message();
  for (const Status& s : acked) EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(after_sends - before, 1u) << "32 sends of one call share one transaction";
  EXPECT_EQ(after_acks - after_sends, 1u) << "32 acks of one call share one transaction";

  auto stats = t->stats("asya-in");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->ready + stats->in_flight + stats->delayed, 0u);
  // The outputs come out in the order of the call.
  std::vector<Delivery> out = receive_all(*t, "asya-out", 32);
  ASSERT_EQ(out.size(), 32u);
  for (std::size_t i = 0; i < 32; ++i) EXPECT_EQ(out[i].body, "out-m" + std::to_string(i));
}

// The write lock is held by another connection past the busy timeout: the shared BEGIN fails, so
// every message of the call fails with that error, and nothing of it is committed: no output is
// visible and every input is still leased, to be acked once the lock is free.
TEST(SqliteSettleMany, AFailedSharedWriteCommitsNothingAndFailsEveryMessage) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.busy_timeout = 200ms;
  auto t = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(t->ensure_queue("asya-in").ok());
  ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  std::vector<std::string> bodies{"a", "b", "c", "d"};
  for (const Status& s : t->send_many(messages_to("asya-in", bodies))) ASSERT_TRUE(s.ok());
  std::vector<Delivery> in = receive_all(*t, "asya-in", 4);
  ASSERT_EQ(in.size(), 4u);

  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(settings.path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::vector<Status> sent = t->send_many(messages_to("asya-out", bodies));
  std::vector<Status> acked = t->ack_many(pointers(in));
  ASSERT_EQ(sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);

  ASSERT_EQ(sent.size(), 4u);
  ASSERT_EQ(acked.size(), 4u);
  for (const Status& s : sent) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("send to queue \"asya-out\""), std::string::npos) << s.message();
  }
  for (const Status& s : acked) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("ack on queue \"asya-in\""), std::string::npos) << s.message();
  }
  auto out = t->stats("asya-out");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->ready + out->in_flight + out->delayed, 0u) << "no output may be committed";
  auto still = t->stats("asya-in");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->in_flight, 4u) << "no input may be acked";
  // The lock is free again: the same acks succeed.
  for (const Status& s : t->ack_many(pointers(in))) EXPECT_TRUE(s.ok()) << s.message();
}

// Acking a batch twice: the second call fails for each message (the lease is no longer held) and
// changes nothing; a message of the same queue that was not in the call stays leased. A receipt
// of another transport fails alone; the other acks of that call succeed.
TEST(SqliteSettleMany, AcksAreIdempotentAndABadOneFailsAlone) {
  test::TempDir dir;
  auto t = make_sqlite_transport(Options{}, dir.settings());
  ASSERT_TRUE(t->ensure_queue("asya-in").ok());
  std::vector<std::string> bodies{"a", "b", "c", "d"};
  for (const Status& s : t->send_many(messages_to("asya-in", bodies))) ASSERT_TRUE(s.ok());
  std::vector<Delivery> in = receive_all(*t, "asya-in", 4);
  ASSERT_EQ(in.size(), 4u);
  Delivery foreign{"asya-in", "x", 1, "not-a-receipt"};
  std::vector<const Delivery*> first{&in[0], &foreign, &in[1], &in[2]};
  std::vector<Status> acked = t->ack_many(first);
  ASSERT_EQ(acked.size(), 4u);
  EXPECT_TRUE(acked[0].ok()) << acked[0].message();
  EXPECT_FALSE(acked[1].ok());
  EXPECT_NE(acked[1].message().find("was not produced by the sqlite transport"), std::string::npos)
      << acked[1].message();
  EXPECT_TRUE(acked[2].ok()) << acked[2].message();
  EXPECT_TRUE(acked[3].ok()) << acked[3].message();

  std::vector<const Delivery*> again{&in[0], &in[1], &in[2]};
  for (const Status& s : t->ack_many(again)) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("the lease is no longer held"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("nothing was changed"), std::string::npos) << s.message();
  }
  auto stats = t->stats("asya-in");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->in_flight, 1u) << "d, not in either call, is still leased";
  EXPECT_EQ(stats->ready, 0u);
  EXPECT_TRUE(t->ack(in[3]).ok());
}

// A message over the limit fails alone with message_too_large; a body stored as a file and
// bodies stored inline go in the same call and come back intact.
TEST(SqliteSettleMany, ATooLargeMessageFailsAloneAndBodyFilesGoInTheSameCall) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  settings.file_body_bytes = 1000;
  Options options;
  options.max_message_bytes = 5000;
  auto t = make_sqlite_transport(options, settings);
  ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  std::vector<std::string> bodies{"small", std::string(3000, 'f'), std::string(6000, 'x'), "last"};
  std::vector<Status> sent = t->send_many(messages_to("asya-out", bodies));
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_TRUE(sent[0].ok()) << sent[0].message();
  EXPECT_TRUE(sent[1].ok()) << sent[1].message();
  ASSERT_FALSE(sent[2].ok());
  EXPECT_TRUE(sent[2].message().starts_with("message_too_large:")) << sent[2].message();
  EXPECT_TRUE(sent[3].ok()) << sent[3].message();
  std::vector<Delivery> out = receive_all(*t, "asya-out", 3);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].body, "small");
  EXPECT_EQ(out[1].body, bodies[1]);
  EXPECT_EQ(out[2].body, "last");
  for (const Status& s : t->ack_many(pointers(out))) EXPECT_TRUE(s.ok()) << s.message();
  // The body file went with its ack.
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(settings.path + ".bodies")) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 0u);
}

// A process forwarding `asya-in` to `asya-out` in batches of up to 32, as a batching sidecar
// settles them: receive, one send_many of the outputs, one ack_many of the inputs. Runs until
// `stop_file` exists and `asya-in` is empty.
int forward_batches(const SqliteSettings& settings, const std::string& stop_file) {
  auto t = make_sqlite_transport(Options{}, settings);
  for (;;) {
    auto got = t->receive("asya-in", 32, 100ms);
    if (!got.ok()) return 4;
    if (got->empty() && ::access(stop_file.c_str(), F_OK) == 0) return 0;
    std::vector<OutgoingMessage> outputs;
    for (const Delivery& d : *got) outputs.push_back(OutgoingMessage{"asya-out", d.body, 0ms});
    for (const Status& s : t->send_many(outputs))
      if (!s.ok()) return 5;
    for (const Status& s : t->ack_many(pointers(*got)))
      if (!s.ok()) return 6;
  }
}

// SIGKILL of a batch forwarder at several moments while it settles batches: every input reaches
// `asya-out` (nothing lost: an input is acked only after its output committed), `asya-in` drains,
// and each kill duplicates at most the batch being settled (outputs committed, acks not).
TEST(SqliteSettleMany, SigkillWhileSettlingBatchesLosesNothing) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto t = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(t->ensure_queue("asya-in").ok());
  ASSERT_TRUE(t->ensure_queue("asya-out").ok());
  constexpr std::size_t kMessages = 3000;
  constexpr int kKills = 4;
  std::vector<std::string> bodies;
  for (std::size_t i = 0; i < kMessages; ++i) bodies.push_back(numbered("m", i));
  for (const Status& s : t->send_many(messages_to("asya-in", bodies))) ASSERT_TRUE(s.ok());
  std::string stop_file = (dir.path() / "stop").string();
  auto out_count = [&] {
    auto s = t->stats("asya-out");
    return s.ok() ? s->ready : 0;
  };
  for (int kill_number = 1; kill_number <= kKills; ++kill_number) {
    std::uint64_t target = kMessages * static_cast<std::uint64_t>(kill_number) / (kKills + 2);
    pid_t pid = test::spawn([&] { return forward_batches(settings, stop_file); });
    Clock::time_point deadline = Clock::now() + 120s;
    while (out_count() < target && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_LT(Clock::now(), deadline) << "the forwarder did not reach " << target << " outputs";
    ::kill(pid, SIGKILL);
    EXPECT_EQ(test::wait_exit(pid, Clock::now() + 60s), 128 + SIGKILL);
  }
  std::ofstream(stop_file).put('x');
  // The next forwarder releases the killed ones' leases on open and finishes the work.
  pid_t last = test::spawn([&] { return forward_batches(settings, stop_file); });
  EXPECT_EQ(test::wait_exit(last, Clock::now() + 300s), 0);
  test::wait_drained(*t, "asya-in", Clock::now() + 60s);

  std::map<std::string, int> seen;
  for (;;) {
    auto got = t->receive("asya-out", 500, 200ms);
    ASSERT_TRUE(got.ok());
    if (got->empty()) break;
    for (const Delivery& d : *got) ++seen[d.body];
    for (const Status& s : t->ack_many(pointers(*got))) ASSERT_TRUE(s.ok());
  }
  std::size_t duplicates = 0;
  for (const std::string& b : bodies) {
    EXPECT_GE(seen[b], 1) << b << " was lost";
    if (seen[b] > 1) duplicates += static_cast<std::size_t>(seen[b] - 1);
  }
  EXPECT_EQ(seen.size(), kMessages);
  EXPECT_LE(duplicates, static_cast<std::size_t>(kKills) * 32)
      << "a kill may duplicate only the batch whose outputs committed before its acks";
}

}  // namespace
}  // namespace asya::transport
