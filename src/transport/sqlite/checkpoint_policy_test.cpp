// When connections checkpoint the WAL (CheckpointPolicy, connection.hpp): the decisions of the
// policy alone, and the outcome on a file that several transport instances write in turn (each
// with its own connections, as the processes of `asya up` do) — the WAL is still backfilled and
// reset, also after a reader held it, and no message is lost or received twice.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include "transport/sqlite/connection.hpp"
#include "transport/sqlite/sqlite_transport.hpp"
#include "transport/sqlite/test_support.hpp"

namespace asya::transport {
namespace {

using namespace std::chrono_literals;
using sqlite::CheckpointPolicy;

TEST(CheckpointPolicy, ChecksAtTheThresholdThenOnlyAfterAStepOfGrowthOrAReset) {
  CheckpointPolicy policy;
  EXPECT_FALSE(policy.checkpoint_after_commit(10));
  EXPECT_FALSE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames - 1));
  EXPECT_TRUE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames + 3));
  // Other processes' commits keep the WAL above the threshold: not at every commit again.
  EXPECT_FALSE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames + 10));
  EXPECT_FALSE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames +
                                              CheckpointPolicy::kStepFrames));
  EXPECT_TRUE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames + 3 +
                                             CheckpointPolicy::kStepFrames));
  // Reset by another connection and grown past the threshold again, below the last size seen.
  EXPECT_TRUE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames + 1));
  // Reset and below the threshold: the next crossing checkpoints at once.
  EXPECT_FALSE(policy.checkpoint_after_commit(5));
  EXPECT_TRUE(policy.checkpoint_after_commit(CheckpointPolicy::kFirstFrames));
}

// Frames in the WAL now (PRAGMA wal_checkpoint's second column, read before its own checkpoint).
std::int64_t wal_frames(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &s, nullptr), SQLITE_OK);
  std::int64_t frames = -1;
  if (sqlite3_step(s) == SQLITE_ROW) frames = sqlite3_column_int64(s, 1);
  sqlite3_finalize(s);
  sqlite3_close_v2(db);
  return frames;
}

// Two instances forward `count` messages in turn (each: receive, send to the other's queue, ack),
// checking that every message arrives once.
void forward_in_turn(Transport& a, Transport& b, int count, int& next_id) {
  std::set<std::string> seen;
  for (int i = 0; i < count; ++i) {
    std::string body = "m-" + std::to_string(next_id++);
    ASSERT_TRUE(a.send("asya-first", body).ok());
    auto got = b.receive("asya-first", 1, 5s);
    ASSERT_TRUE(got.ok() && got->size() == 1u);
    ASSERT_EQ(std::string(got->front().body), body);
    ASSERT_TRUE(b.send("asya-second", body).ok());
    ASSERT_TRUE(b.ack(got->front()).ok());
    auto out = a.receive("asya-second", 1, 5s);
    ASSERT_TRUE(out.ok() && out->size() == 1u);
    ASSERT_TRUE(seen.insert(std::string(out->front().body)).second) << "received twice";
    ASSERT_TRUE(a.ack(out->front()).ok());
  }
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(count));
}

TEST(SqliteCheckpoints, WritersTakingTurnsKeepTheWalBackfilledAndResetEvenAfterAPinningReader) {
  test::TempDir dir;
  SqliteSettings settings = dir.settings();
  auto a = make_sqlite_transport(Options{}, settings);
  auto b = make_sqlite_transport(Options{}, settings);
  ASSERT_TRUE(a->ensure_queue("asya-first").ok());
  ASSERT_TRUE(a->ensure_queue("asya-second").ok());
  int next_id = 0;
  // About ten frames per message: some 30,000 frames in all, which without a checkpoint (or with
  // one that never resets the WAL) would stay in it.
  forward_in_turn(*a, *b, 1500, next_id);
  if (HasFatalFailure()) return;
  EXPECT_LT(wal_frames(settings.path), 2 * CheckpointPolicy::kFirstFrames);

  // A reader holding a snapshot: no checkpoint can backfill past it, so the WAL grows meanwhile.
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(settings.path.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM messages;", nullptr, nullptr, nullptr),
      SQLITE_OK);
  forward_in_turn(*a, *b, 300, next_id);
  if (HasFatalFailure()) return;
  EXPECT_GT(wal_frames(settings.path), 2 * CheckpointPolicy::kFirstFrames);
  ASSERT_EQ(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close_v2(reader);

  // Released: the next checkpoints backfill it all and the WAL starts over.
  forward_in_turn(*a, *b, 1500, next_id);
  if (HasFatalFailure()) return;
  EXPECT_LT(wal_frames(settings.path), 2 * CheckpointPolicy::kFirstFrames);
  auto left = a->stats("asya-first");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->ready + left->in_flight + left->delayed, 0u);
}

}  // namespace
}  // namespace asya::transport
