// The cancellation log (JobStore::cancel appends, cancellations_after reads; PROTOCOL §7 GET
// /envelopes/cancellations), on SQLite (always) and PostgreSQL (when ASYA_TEST_DATABASE_URL is
// set; tests/gateway/test_store.py runs every *postgres* case of this binary).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "gateway/store/job_store.hpp"
#include "gateway/store/test_database.hpp"

namespace asya::gateway {
namespace {

class CancellationLogTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    db_.emplace(GetParam());
    if (db_->skipped()) GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set";
    store_ = db_->open();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }
  std::string create(JobStore& store) {
    std::string id = testing::unique_id("job");
    NewJob job{id, "tool", {"a", "b"},  R"({"actors":["a","b"],"current":0})", "{}", std::nullopt,
               "", false,  std::nullopt};
    EXPECT_TRUE(store.create(job).ok());
    return id;
  }
  CancellationPage page(std::int64_t after, std::size_t limit = 100, JobStore* store = nullptr) {
    auto read = (store ? store : store_.get())->cancellations_after(after, limit);
    EXPECT_TRUE(read.ok()) << read.error().message;
    return read.ok() ? read.value() : CancellationPage{};
  }
  static std::vector<std::string> ids(const CancellationPage& p) {
    std::vector<std::string> out;
    for (const auto& c : p.cancellations) out.push_back(c.job_id);
    return out;
  }

  std::optional<testing::TestDatabase> db_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(CancellationLogTest, AnAppliedCancelIsLoggedOnceInOrder) {
  CancellationPage empty = page(-1);
  EXPECT_TRUE(empty.cancellations.empty());
  EXPECT_EQ(empty.next_after, 0);
  std::string a = create(*store_), b = create(*store_), done = create(*store_);
  ASSERT_TRUE(store_->cancel(a, "first").ok());
  ASSERT_TRUE(store_->cancel(b, "second").ok());
  // A repeated cancel, a cancel of a finished job and of an unknown one add nothing.
  ASSERT_TRUE(store_->cancel(a, "again").ok());
  ASSERT_TRUE(store_->fail(done, "broke").ok());
  ASSERT_TRUE(store_->cancel(done, "too late").ok());
  ASSERT_TRUE(store_->cancel(testing::unique_id("nope"), "x").ok());
  CancellationPage all = page(-1);
  EXPECT_EQ(ids(all), (std::vector<std::string>{a, b}));
  EXPECT_FALSE(all.reset);
  EXPECT_FALSE(all.more);
  ASSERT_EQ(all.cancellations.size(), 2u);
  EXPECT_LT(all.cancellations[0].sequence, all.cancellations[1].sequence);
  EXPECT_EQ(all.next_after, all.cancellations[1].sequence);
  // Continuing after a position gives only what came later; at the end, nothing, same position.
  EXPECT_EQ(ids(page(all.cancellations[0].sequence)), (std::vector<std::string>{b}));
  CancellationPage end = page(all.next_after);
  EXPECT_TRUE(end.cancellations.empty());
  EXPECT_EQ(end.next_after, all.next_after);
  std::string c = create(*store_);
  ASSERT_TRUE(store_->cancel(c, "third").ok());
  EXPECT_EQ(ids(page(all.next_after)), (std::vector<std::string>{c}));
}

TEST_P(CancellationLogTest, PagesSayMoreFollows) {
  std::vector<std::string> cancelled;
  for (int i = 0; i < 5; ++i) {
    cancelled.push_back(create(*store_));
    ASSERT_TRUE(store_->cancel(cancelled.back(), "x").ok());
  }
  std::vector<std::string> seen;
  std::int64_t after = -1;
  for (int pages = 0; pages < 10; ++pages) {
    CancellationPage p = page(after, 2);
    for (auto& id : ids(p)) seen.push_back(id);
    after = p.next_after;
    if (!p.more) break;
    EXPECT_EQ(p.cancellations.size(), 2u);
  }
  EXPECT_EQ(seen, cancelled);
}

TEST_P(CancellationLogTest, APositionThisLogNeverHadStartsOver) {
  std::string a = create(*store_);
  ASSERT_TRUE(store_->cancel(a, "x").ok());
  // A sidecar that followed another database (or one recreated) asks beyond the newest entry.
  CancellationPage p = page(1'000'000);
  EXPECT_TRUE(p.reset);
  EXPECT_EQ(ids(p), (std::vector<std::string>{a}));
}

TEST_P(CancellationLogTest, EntriesSurviveARestartAndTheSequenceGoesOn) {
  std::string a = create(*store_);
  ASSERT_TRUE(store_->cancel(a, "x").ok());
  const std::int64_t position = page(-1).next_after;
  store_.reset();
  store_ = db_->open();  // the gateway restarted
  EXPECT_EQ(ids(page(-1)), (std::vector<std::string>{a}));
  std::string b = create(*store_);
  ASSERT_TRUE(store_->cancel(b, "y").ok());
  CancellationPage next = page(position);
  EXPECT_FALSE(next.reset);
  EXPECT_EQ(ids(next), (std::vector<std::string>{b}));
}

TEST_P(CancellationLogTest, OldEntriesArePrunedButTheNewestStays) {
  std::string a = create(*store_), b = create(*store_);
  ASSERT_TRUE(store_->cancel(a, "x").ok());
  const std::int64_t after_a = page(-1).next_after;
  // The entry looks two days old; the next cancel prunes (a process that never pruned yet).
  db_->run("UPDATE gateway_cancellations SET cancelled_ms = cancelled_ms - 172800000");
  store_.reset();
  store_ = db_->open();
  ASSERT_TRUE(store_->cancel(b, "y").ok());
  EXPECT_EQ(ids(page(-1)), (std::vector<std::string>{b}));
  // A reader that had seen a still reads b (no reset: nothing it missed was pruned).
  CancellationPage p = page(after_a);
  EXPECT_FALSE(p.reset);
  EXPECT_EQ(ids(p), (std::vector<std::string>{b}));
  // A reader behind the pruned entries starts over at the oldest kept.
  EXPECT_TRUE(page(0).reset);
}

TEST_P(CancellationLogTest, ReplicasCancellingAtOnceAreSeenInOrderWithNoEntryPassed) {
  // Two replicas cancel concurrently while a reader follows the log: every entry is returned
  // once, and a position once read never hides an entry committed later below it.
  auto other = db_->open();
  constexpr int kPerReplica = 20;
  std::vector<std::string> jobs_a, jobs_b;
  for (int i = 0; i < kPerReplica; ++i) {
    jobs_a.push_back(create(*store_));
    jobs_b.push_back(create(*other));
  }
  std::atomic<int> finished{0};
  auto cancel_all = [&](JobStore* store, const std::vector<std::string>& jobs) {
    for (const auto& id : jobs) EXPECT_TRUE(store->cancel(id, "race").ok());
    ++finished;
  };
  auto reader = db_->open();
  std::thread ta(cancel_all, store_.get(), jobs_a), tb(cancel_all, other.get(), jobs_b);
  std::vector<std::string> seen;
  std::int64_t after = -1;
  bool last_pass = false;
  while (true) {
    const bool done = finished.load() == 2;
    CancellationPage p = page(after, 7, reader.get());
    EXPECT_FALSE(p.reset);
    for (auto& id : ids(p)) seen.push_back(id);
    after = p.next_after;
    if (p.more) continue;
    if (last_pass) break;
    last_pass = done;
  }
  ta.join();
  tb.join();
  std::set<std::string> unique(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), unique.size());
  EXPECT_EQ(unique.size(), 2u * kPerReplica);
}

INSTANTIATE_TEST_SUITE_P(Stores, CancellationLogTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::gateway
