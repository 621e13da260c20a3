#include "payload/hold_renewer.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/random_id.hpp"
#include "payload/reference.hpp"

namespace asya::payload {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Duplicates of one envelope in flight at once share one hold (docs/protocol.md §10 "Lifetime"),
// with a real file store: the sweep is given `now`, the records carry their real times.
class HoldRenewerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("asya-renewer-test-" + random_hex(8));
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
  void sweep_at(std::chrono::system_clock::duration from_now) {
    EXPECT_TRUE(sweep(*store_, policy_, std::chrono::system_clock::now() + from_now).ok());
  }
  // Distinct modification times for records written one after the other.
  static void tick() { std::this_thread::sleep_for(20ms); }

  fs::path dir_;
  std::unique_ptr<PayloadStore> store_;
  SweepPolicy policy_;
};

TEST_F(HoldRenewerTest, WithoutRenewalTheSecondCopyInFlightLosesItsObject) {
  // The defect renewal fixes: both copies held on receipt, the first one ended and released, the
  // second one still running: the shared hold is older than the release.
  std::string sha = put_object("twin");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());  // copy 1 received
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());  // copy 2 received
  tick();
  ASSERT_TRUE(release(*store_, "env-1").ok());  // copy 1 ended
  sweep_at(11min);                              // copy 2 still running
  EXPECT_FALSE(present(sha));
}

TEST_F(HoldRenewerTest, ARenewedHoldKeepsTheObjectPastAReleaseOfAnotherCopy) {
  std::string sha = put_object("twin");
  HoldRenewer renewer(*store_, 1h);  // its thread stays out of the way: renew_due by hand
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  auto copy_one = renewer.keep(sha, "env-1");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  auto copy_two = renewer.keep(sha, "env-1");
  EXPECT_EQ(renewer.renewing(), 1u);  // one key, shared
  tick();
  ASSERT_TRUE(release(*store_, "env-1").ok());
  copy_one.reset();  // copy 1 settled; copy 2 still holds the renewal
  EXPECT_EQ(renewer.renewing(), 1u);
  EXPECT_EQ(renewer.renew_due(SteadyClock::now()), 0u);  // not due yet
  tick();
  EXPECT_EQ(renewer.renew_due(SteadyClock::now() + 1h), 1u);
  sweep_at(11min);
  EXPECT_TRUE(present(sha)) << "deleted under the copy still in flight";
  copy_two.reset();
  EXPECT_EQ(renewer.renewing(), 0u);
  EXPECT_EQ(renewer.renew_due(SteadyClock::now() + 3h), 0u);
  // Copy 2's output ends too (a release newer than its last renewal): deleted after the grace.
  tick();
  ASSERT_TRUE(release(*store_, "env-1").ok());
  sweep_at(5min);
  EXPECT_TRUE(present(sha));
  sweep_at(11min);
  EXPECT_FALSE(present(sha));
}

TEST_F(HoldRenewerTest, AHoldOfACrashedCopyIsAnOrdinaryHoldAgain) {
  // A crash drops the renewal with its process: the hold keeps its last renewal's time and goes
  // by the ordinary rule (here: no later release, so the orphan age).
  std::string sha = put_object("crashed");
  {
    HoldRenewer renewer(*store_, 1h);
    ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
    auto renewal = renewer.keep(sha, "env-1");
    tick();
    ASSERT_TRUE(release(*store_, "env-1").ok());  // the other copy ended
    tick();
    ASSERT_EQ(renewer.renew_due(SteadyClock::now() + 1h), 1u);
  }  // the process dies: nothing renews the hold any more
  sweep_at(11min);
  EXPECT_TRUE(present(sha));  // renewed after the release: it may still be delivered again
  sweep_at(25h);
  EXPECT_FALSE(present(sha));
  EXPECT_TRUE(store_->list("holds/")->empty());
}

TEST_F(HoldRenewerTest, TheThreadRenewsEveryIntervalUntilTheRenewalIsDestroyed) {
  std::string sha = put_object("threaded");
  ASSERT_TRUE(hold(*store_, sha, "env-1").ok());
  const fs::path hold_file = dir_ / hold_key(sha, "env-1");
  const auto written = fs::last_write_time(hold_file);
  HoldRenewer renewer(*store_, 20ms);
  auto renewal = renewer.keep(sha, "env-1");
  const auto deadline = SteadyClock::now() + 30s;
  while (fs::last_write_time(hold_file) == written && SteadyClock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_NE(fs::last_write_time(hold_file), written) << "never renewed";
  renewal.reset();
  EXPECT_EQ(renewer.renewing(), 0u);
}

TEST_F(HoldRenewerTest, ARenewalThatOutlivesItsRenewerIsHarmless) {
  std::unique_ptr<HoldRenewer::Renewal> renewal;
  {
    HoldRenewer renewer(*store_, 1h);
    renewal = renewer.keep(std::string(64, 'a'), "env-1");
  }
  renewal.reset();  // no crash, no write
  EXPECT_TRUE(store_->list("holds/")->empty());
}

TEST_F(HoldRenewerTest, TheThreadWritesTheReleaseOfAConsumedMessagesToken) {
  std::string sha = put_object("consumed");
  const std::string token = new_hold_token();
  ASSERT_TRUE(hold(*store_, sha, token).ok());
  HoldRenewer renewer(*store_, 1h);  // woken by the release, not by its interval
  renewer.release_later(token);
  const fs::path released = dir_ / release_key(token);
  const auto deadline = SteadyClock::now() + 30s;
  while (!fs::exists(released) && SteadyClock::now() < deadline) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(fs::exists(released)) << "never released";
  sweep_at(11min);
  EXPECT_FALSE(present(sha));
}

TEST_F(HoldRenewerTest, ReleasesWaitingWhenTheRenewerStopsAreWritten) {
  const std::string token = new_hold_token();
  {
    HoldRenewer renewer(*store_, 1h);
    renewer.release_later(token);
  }  // a clean stop: written, not left to the orphan age
  EXPECT_TRUE(fs::exists(dir_ / release_key(token)));
}

TEST(RenewalIntervalTest, IsAQuarterOfTheGraceAtMostAMinute) {
  EXPECT_EQ(renewal_interval(1s), 250ms);
  EXPECT_EQ(renewal_interval(2min), 30s);
  EXPECT_EQ(renewal_interval(15min), 1min);
  EXPECT_EQ(renewal_interval(0ms), 100ms);
}

}  // namespace
}  // namespace asya::payload
