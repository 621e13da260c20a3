// The join store contract (join_store.hpp), on every registered store that can run here (SQLite;
// PostgreSQL registers itself when built with it). Two store objects on one file stand for two
// replicas.
#include "sidecar/join/join_store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace asya::sidecar::join {
namespace {

using namespace std::chrono_literals;

class JoinStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("join-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<JoinStore> open() {
    JoinStoreOptions o;
    o.url = "sqlite://" + (dir_ / "joins.db").string();
    return make_join_store(o);
  }
  static BranchIn branch(std::string group, std::size_t index, std::size_t count,
                         std::string_view payload, bool failed = false) {
    BranchIn b;
    b.group = std::move(group);
    b.index = index;
    b.count = count;
    b.payload = payload;
    b.failed = failed;
    b.head = R"({"id":"g","route":{"actors":["j"]})";
    b.timeout = 1h;
    return b;
  }
  std::filesystem::path dir_;
};

TEST_F(JoinStoreTest, TheLastBranchCompletesTheGroupOnceAndDuplicatesChangeNothing) {
  auto store = open();
  EXPECT_EQ(store->put_branch(branch("g", 2, 3, "2"))->outcome, PutOutcome::kStored);
  EXPECT_EQ(store->put_branch(branch("g", 2, 3, "2"))->outcome, PutOutcome::kDuplicate);
  EXPECT_EQ(store->put_branch(branch("g", 0, 3, "0"))->outcome, PutOutcome::kStored);
  auto last = store->put_branch(branch("g", 1, 3, "{\"one\":1}", true));
  EXPECT_EQ(last->outcome, PutOutcome::kCompleted);
  EXPECT_EQ(last->stored, 3u);
  EXPECT_EQ(store->counts()->decided, 1);

  auto claimed = store->claim("me", 1min);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->group, "g");
  EXPECT_EQ((*claimed)->reason, DecidedBecause::kComplete);
  EXPECT_EQ((*claimed)->failed, std::vector<std::size_t>{1});
  EXPECT_TRUE((*claimed)->missing.empty());
  std::string seen;
  ASSERT_TRUE(store->read_branches("g", [&](std::size_t i, bool, std::string_view p) {
    seen += std::to_string(i) + "=" + std::string(p) + ";";
    return Status::Ok();
  }));
  EXPECT_EQ(seen, "0=0;1={\"one\":1};2=2;");
  EXPECT_FALSE(store->claim("other", 1min)->has_value());  // leased to "me"
  EXPECT_TRUE(*store->finish("g", "me"));
  // A branch delivered again after the group was published starts no new group.
  EXPECT_EQ(store->put_branch(branch("g", 0, 3, "0"))->outcome, PutOutcome::kAlreadyJoined);
  EXPECT_EQ(store->counts()->open, 0);
}

TEST_F(JoinStoreTest, AnotherReplicaClaimsAGroupWhoseLeaseExpired) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a->put_branch(branch("g", 0, 1, "0")).ok());
  ASSERT_TRUE(a->claim("a", 1ms)->has_value());  // a "dies" holding it
  std::this_thread::sleep_for(5ms);
  auto again = b->claim("b", 1min);
  ASSERT_TRUE(again->has_value());
  EXPECT_FALSE(*a->finish("g", "a"));  // the lease is b's now
  EXPECT_TRUE(*b->finish("g", "b"));
}

TEST_F(JoinStoreTest, ExpiryDecidesATimedOutGroupWithItsMissingIndexes) {
  auto store = open();
  BranchIn b = branch("t", 1, 4, "1");
  b.timeout = 1ms;
  ASSERT_TRUE(store->put_branch(b).ok());
  EXPECT_EQ(*store->expire(std::chrono::system_clock::now() + 1s), 1u);
  auto claimed = store->claim("me", 1min);
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->reason, DecidedBecause::kTimeout);
  EXPECT_EQ((*claimed)->missing, (std::vector<std::size_t>{0, 2, 3}));
  // A late branch of a decided group changes nothing.
  EXPECT_EQ(store->put_branch(branch("t", 2, 4, "2"))->outcome, PutOutcome::kAlreadyJoined);
}

TEST_F(JoinStoreTest, ACountThatDisagreesWithTheGroupIsAnErrorNamingBoth) {
  auto store = open();
  ASSERT_TRUE(store->put_branch(branch("c", 0, 3, "0")).ok());
  auto bad = store->put_branch(branch("c", 1, 4, "1"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "group c: branch 1 says count 4, the group has count 3");
}

TEST_F(JoinStoreTest, AnUnknownSchemeListsTheKnownOnes) {
  JoinStoreOptions o;
  o.url = "redis://x";
  try {
    make_join_store(o);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("registered schemes: sqlite"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace asya::sidecar::join
