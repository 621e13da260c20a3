// JoinHolds (join_holds.hpp): the holds of branches waiting in a join store are rewritten from
// the store, by a new instance too (a restarted sidecar), until their group is finished. A SQLite
// join store and a file payload store in a temporary directory.
#include "sidecar/join/join_holds.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <thread>

#include "common/test_temp_dir.hpp"
#include "envelope/fanout.hpp"
#include "payload/lifetime.hpp"

namespace asya::sidecar::join {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

const std::string kSha0(64, 'a');
const std::string kSha2(64, 'b');

class JoinHoldsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    JoinStoreOptions o;
    o.url = "sqlite://" + (dir_.path / "joins.db").string();
    joins_ = make_join_store(o);
    payload::PayloadStoreOptions p;
    p.url = "file://" + (dir_.path / "payloads").string();
    payloads_ = payload::make_payload_store(p);
    // Group src@1 of 3: branches 0 and 2 are references, 1 is inline.
    store_branch(0, kSha0);
    store_branch(1, "");
    store_branch(2, kSha2);
  }
  void store_branch(std::size_t index, std::string_view sha) {
    BranchIn b;
    b.actor = "j";
    b.group = "src@1";
    b.index = index;
    b.count = 3;
    b.payload = "{}";
    b.head = R"({"id":"src","route":{"actors":["a","j"],"current":1}})";
    b.held_sha256 = sha;
    ASSERT_TRUE(joins_->put_branch(b).ok());
  }
  // When each hold was last written, by key.
  std::map<std::string, Clock::time_point> holds() {
    std::map<std::string, Clock::time_point> out;
    auto listed = payloads_->list("holds/");
    EXPECT_TRUE(listed.ok());
    if (listed)
      for (const auto& h : *listed) out[h.key] = h.modified;
    return out;
  }
  // Moves every hold's modification time an hour back, as if it had not been rewritten since.
  void age_holds() {
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(dir_.path / "payloads" / "holds"))
      if (entry.is_regular_file())
        std::filesystem::last_write_time(
            entry.path(), std::filesystem::file_time_type::clock::now() - std::chrono::hours(1));
  }
  bool all_fresh() {
    auto h = holds();
    if (h.size() != 2) return false;
    for (const auto& [key, modified] : h)
      if (Clock::now() - modified > 10min) return false;
    return true;
  }

  test::TempDir dir_;
  std::unique_ptr<JoinStore> joins_;
  std::unique_ptr<payload::PayloadStore> payloads_;
};

TEST(BranchId, IsTheSourceForIndexZeroAndTheFanOutChildIdOtherwise) {
  EXPECT_EQ(branch_id("E@2", 0), "E");
  EXPECT_EQ(branch_id("E@2", 3), envelope::fanout_child_id("E", 2, 3));
  EXPECT_EQ(branch_id("a@b@0", 1), envelope::fanout_child_id("a@b", 0, 1));
}

TEST_F(JoinHoldsTest, APassWritesTheHoldOfEachReferenceBranchUnderItsId) {
  JoinHolds renewer(*joins_, *payloads_, "j", 1h);
  auto pass = renewer.renew_all();
  ASSERT_TRUE(pass.ok()) << pass.error().message;
  EXPECT_EQ(pass->rewritten, 2u);
  EXPECT_EQ(pass->failed, 0u);
  auto h = holds();
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(h.contains(payload::hold_key(kSha0, "src")));
  EXPECT_TRUE(h.contains(payload::hold_key(kSha2, envelope::fanout_child_id("src", 1, 2))));
}

TEST_F(JoinHoldsTest, ANewInstanceRewritesAgedHoldsAtOnceFromTheStoreAlone) {
  // What a restarted sidecar does: nothing in memory, the join store lists what waits.
  { JoinHolds first(*joins_, *payloads_, "j", 1h); }
  ASSERT_TRUE(payload::hold(*payloads_, kSha0, "src"));
  age_holds();
  ASSERT_FALSE(all_fresh());
  JoinHolds restarted(*joins_, *payloads_, "j", 1h);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!all_fresh() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(all_fresh());
}

TEST_F(JoinHoldsTest, AHoldIsRewrittenEveryIntervalWhileTheGroupWaits) {
  JoinHolds renewer(*joins_, *payloads_, "j", 100ms);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!all_fresh() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(all_fresh());
  for (int round = 0; round < 2; ++round) {
    age_holds();
    while (!all_fresh() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(all_fresh()) << "round " << round;
  }
}

TEST_F(JoinHoldsTest, NothingIsRewrittenForAnotherActorOrOnceTheGroupIsFinished) {
  JoinHolds other(*joins_, *payloads_, "another-join", 1h);
  auto none = other.renew_all();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->rewritten, 0u);
  // The group is complete (SetUp stored 3 of 3): decided, still held until it is finished.
  JoinHolds renewer(*joins_, *payloads_, "j", 1h);
  EXPECT_EQ(renewer.renew_all()->rewritten, 2u);
  auto claimed = joins_->claim("j", "me", 1min);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  ASSERT_TRUE(*joins_->finish("src@1", "me"));
  EXPECT_EQ(renewer.renew_all()->rewritten, 0u);
}

}  // namespace
}  // namespace asya::sidecar::join
