#include "payload/lifetime.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <set>
#include <thread>

#include "common/random_id.hpp"
#include "payload/offload.hpp"
#include "payload/reference.hpp"

namespace asya::payload {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class LifetimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-lifetime-test-" + random_hex(8));
    PayloadStoreOptions options;
    options.url = "file://" + dir_.string();
    store_ = make_payload_store(options);
    policy_.grace = 10min;
    policy_.orphan_age = 24h;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string put_object(std::string_view bytes) {
    std::string sha = sha256_hex(bytes);
    EXPECT_TRUE(store_->put(object_key(sha), bytes).ok());
    return sha;
  }
  bool present(const std::string& sha) { return *store_->exists(object_key(sha)); }
  SweepReport sweep_at(std::chrono::system_clock::duration from_now) {
    auto report = sweep(*store_, policy_, std::chrono::system_clock::now() + from_now);
    EXPECT_TRUE(report.ok());
    return *report;
  }

  fs::path dir_;
  std::unique_ptr<PayloadStore> store_;
  SweepPolicy policy_;
};

TEST_F(LifetimeTest, HeldObjectIsKeptUntilItsEnvelopeIsReleasedAndGracePassed) {
  std::string sha = put_object("payload");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  sweep_at(1h);  // held, not released: kept however long (below the orphan age)
  EXPECT_TRUE(present(sha));
  ASSERT_TRUE(release(*store_, "env-1").ok());
  sweep_at(1min);  // released, grace not passed
  EXPECT_TRUE(present(sha));
  SweepReport report = sweep_at(11min);
  EXPECT_FALSE(present(sha));
  EXPECT_EQ(report.objects_deleted, 1u);
  EXPECT_TRUE(store_->list("holds/")->empty());
}

TEST_F(LifetimeTest, SharedObjectWaitsForEveryHolder) {
  std::string sha = put_object("shared");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  ASSERT_TRUE(hold(*store_, sha, "env-1-1").ok());  // a fan-out child with the same payload
  ASSERT_TRUE(release(*store_, "env-1").ok());
  sweep_at(11min);
  EXPECT_TRUE(present(sha));
  ASSERT_TRUE(release(*store_, "env-1-1").ok());
  sweep_at(11min);
  EXPECT_FALSE(present(sha));
}

TEST_F(LifetimeTest, HoldNewerThanTheReleaseKeepsTheObject) {
  // A duplicate delivered again after its envelope ended holds the object anew.
  std::string sha = put_object("redelivered");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  ASSERT_TRUE(release(*store_, "env-1").ok());
  std::this_thread::sleep_for(20ms);  // distinct modification times
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  sweep_at(11min);
  EXPECT_TRUE(present(sha));
}

TEST_F(LifetimeTest, UnheldObjectIsAnOrphanSweptAfterTheOrphanAge) {
  std::string sha = put_object("orphan");
  sweep_at(23h);
  EXPECT_TRUE(present(sha));
  sweep_at(25h);
  EXPECT_FALSE(present(sha));
}

TEST_F(LifetimeTest, ObjectWhoseHoldsAllOutlivedTheOrphanAgeIsSwept) {
  std::string sha = put_object("lost lineage");
  ASSERT_TRUE(hold(*store_, sha, "env-never-ended").ok());
  sweep_at(25h);
  EXPECT_FALSE(present(sha));
  EXPECT_TRUE(store_->list("holds/")->empty());
}

// docs/protocol.md §10 "Outputs waiting in a queue": copies of one envelope processed twice
// publish outputs under one envelope id; the first copy's lineage ends and releases the id while
// the second copy's output still waits in a queue. Its own hold token keeps the object.
TEST_F(LifetimeTest, AQueuedOutputsHoldTokenOutlivesTheReleaseOfItsEnvelopeId) {
  const std::string payload = "\"" + std::string(1000, 'q') + "\"";
  auto first = store_payload(*store_, payload, "env-1");   // copy 1's output
  auto second = store_payload(*store_, payload, "env-1");  // copy 2's output, same object
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->sha256, second->sha256);
  EXPECT_EQ(first->hold.size(), kHoldTokenHexDigits);
  EXPECT_NE(first->hold, second->hold);
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(release_token(*store_, first->hold).ok());  // copy 1's output consumed
  ASSERT_TRUE(release(*store_, "env-1").ok());            // and its lineage ended
  sweep_at(11min);
  EXPECT_TRUE(present(first->sha256)) << "deleted under the queued output of copy 2";
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(release_token(*store_, second->hold).ok());  // copy 2's output consumed
  ASSERT_TRUE(release(*store_, "env-1").ok());             // and its lineage ended again
  sweep_at(11min);
  EXPECT_FALSE(present(first->sha256));
  EXPECT_TRUE(store_->list("holds/")->empty());
}

TEST_F(LifetimeTest, WithoutTokensTheQueuedOutputOfTheSecondCopyLosesItsObject) {
  // The defect tokens fix, as holds keyed by envelope id alone record it.
  std::string sha = put_object("twin output");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());  // copy 1's output published
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());  // copy 2's output published, then queued
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(release(*store_, "env-1").ok());  // copy 1's lineage ended
  sweep_at(11min);
  EXPECT_FALSE(present(sha));
}

TEST_F(LifetimeTest, AHoldTokenNeverReleasedEndsAtTheOrphanAge) {
  // Its consumer died between its ack and the token's release: kept, but not forever.
  auto stored = store_payload(*store_, "\"" + std::string(1000, 'k') + "\"", "env-1");
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(release(*store_, "env-1").ok());
  sweep_at(11min);
  EXPECT_TRUE(present(stored->sha256));
  sweep_at(25h);
  EXPECT_FALSE(present(stored->sha256));
}

// An object some envelope always refers to (a payload every job sends) is never deleted; the done
// holds of the envelopes and messages that referred to it before must not pile up under it.
TEST_F(LifetimeTest, DoneHoldsOfAnObjectStillHeldAreRemoved) {
  std::string sha = put_object("popular");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  ASSERT_TRUE(hold_token(*store_, sha, "token-1").ok());
  ASSERT_TRUE(hold(*store_, sha, "env-2").ok());  // another envelope, still under way
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(release(*store_, "env-1").ok());
  ASSERT_TRUE(release_token(*store_, "token-1").ok());
  SweepReport report = sweep_at(11min);
  EXPECT_TRUE(present(sha));
  EXPECT_EQ(report.records_deleted, 2u);
  auto holds = store_->list("holds/");
  ASSERT_TRUE(holds.ok());
  ASSERT_EQ(holds->size(), 1u);
  EXPECT_EQ(holds->front().key, hold_key(sha, "env-2"));
  // Its last holder ends: the object goes, as before.
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(release(*store_, "env-2").ok());
  sweep_at(11min);
  EXPECT_FALSE(present(sha));
  EXPECT_TRUE(store_->list("holds/")->empty());
}

// A send that failed leaves its outputs' tokens unreleased (the message may have been queued all
// the same): kept for the orphan age, not for ever, also under an object that lives on.
TEST_F(LifetimeTest, AFailedSendsUnreleasedTokenEndsAtTheOrphanAgeWhileItsObjectLivesOn) {
  std::string sha = put_object("retried output");
  ASSERT_TRUE(hold_token(*store_, sha, "token-of-the-failed-send").ok());
  ASSERT_TRUE(hold_token(*store_, sha, "token-of-the-retry").ok());  // queued, not consumed
  const fs::path failed = dir_ / hold_key(sha, "token-of-the-failed-send");
  fs::last_write_time(failed, fs::last_write_time(failed) - 25h);  // written a day ago
  SweepReport report = sweep_at(0s);
  EXPECT_TRUE(present(sha));
  EXPECT_EQ(report.records_deleted, 1u);
  EXPECT_FALSE(fs::exists(failed));
  EXPECT_TRUE(*store_->exists(hold_key(sha, "token-of-the-retry")));
}

// A store that runs `before_list` before its n-th listing of holds/ (a writer acting between the
// sweep's looks).
class InterleavedStore : public PayloadStore {
 public:
  InterleavedStore(PayloadStore& inner, int n, std::function<void()> before_list)
      : inner_(inner), n_(n), before_list_(std::move(before_list)) {}
  Status put(std::string_view key, std::string_view bytes) override {
    return inner_.put(key, bytes);
  }
  Status read(std::string_view key, std::string& out) override { return inner_.read(key, out); }
  Result<bool> exists(std::string_view key) override { return inner_.exists(key); }
  Status remove(std::string_view key) override { return inner_.remove(key); }
  Result<std::vector<StoredObject>> list(std::string_view prefix) override {
    if (prefix == "holds/" && ++holds_listed_ == n_) before_list_();
    return inner_.list(prefix);
  }
  std::string url() const override { return inner_.url(); }

 private:
  PayloadStore& inner_;
  int n_;
  std::function<void()> before_list_;
  int holds_listed_ = 0;
};

TEST_F(LifetimeTest, ADoneHoldRewrittenWhileTheSweepRunsIsKept) {
  // A late copy of env-1 is received (its hold written again) after the sweep judged the old
  // hold done and before it removes it: the rewritten hold is a live one and stays.
  std::string sha = put_object("late copy");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  ASSERT_TRUE(hold(*store_, sha, "env-2").ok());
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(release(*store_, "env-1").ok());
  std::this_thread::sleep_for(20ms);
  InterleavedStore racing(*store_, 2, [&] { ASSERT_TRUE(hold(*store_, sha, "env-1").ok()); });
  auto report = sweep(racing, policy_, std::chrono::system_clock::now() + 11min);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->records_deleted, 0u);
  EXPECT_TRUE(*store_->exists(hold_key(sha, "env-1")));
  // env-2 ends too: env-1's rewritten hold is newer than its release and keeps the object.
  ASSERT_TRUE(release(*store_, "env-2").ok());
  sweep_at(11min);
  EXPECT_TRUE(present(sha));
}

TEST_F(LifetimeTest, HoldTokensAreDistinctHex) {
  std::set<std::string> tokens;
  for (int i = 0; i < 1000; ++i) {
    std::string token = new_hold_token();
    ASSERT_EQ(token.size(), kHoldTokenHexDigits);
    ASSERT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
    tokens.insert(token);
  }
  EXPECT_EQ(tokens.size(), 1000u);
}

}  // namespace
}  // namespace asya::payload
