// The join store contract (join_store.hpp) on SQLite (always) and PostgreSQL (when
// ASYA_TEST_DATABASE_URL is set; tests/sidecar/test_join_postgres.py starts a real PostgreSQL 15
// and runs this binary against it; each case starts with the join tables dropped). Two store
// objects on one database stand for two replicas; group names are unique per test.
#include "sidecar/join/join_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include "common/postgres/connection.hpp"
#include "common/random_id.hpp"

namespace asya::sidecar::join {
namespace {

using namespace std::chrono_literals;

class JoinStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
      if (!url || !*url)
        GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set (tests/sidecar/test_join_postgres.py sets "
                        "it)";
      url_ = url;
      postgres::Connection db(url_);
      ASSERT_TRUE(db.connected()) << db.error();
      ASSERT_TRUE(db.script(
          "drop", "DROP TABLE IF EXISTS asya_join_groups, asya_join_branches, asya_join_held"))
          << "cannot drop the join tables";
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("join-store-" + random_hex(12));
      std::filesystem::create_directories(dir_);
      url_ = "sqlite://" + (dir_ / "joins.db").string();
    }
    prefix_ = random_hex(8) + "-";
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<JoinStore> open() {
    JoinStoreOptions o;
    o.url = url_;
    return make_join_store(o);
  }
  // A group name unique to this test run.
  std::string g(const std::string& name) const { return prefix_ + name; }
  static BranchIn branch(std::string group, std::size_t index, std::size_t count,
                         std::string_view payload, bool failed = false,
                         std::string_view held_sha256 = {}) {
    BranchIn b;
    b.actor = "j";
    b.group = std::move(group);
    b.index = index;
    b.count = count;
    b.payload = payload;
    b.failed = failed;
    b.held_sha256 = held_sha256;
    b.head = R"({"id":"g","route":{"actors":["j"]})";
    b.timeout = 1h;
    return b;
  }
  std::string url_;
  std::string prefix_;
  std::filesystem::path dir_;
};

TEST_P(JoinStoreTest, TheLastBranchCompletesTheGroupOnceAndDuplicatesChangeNothing) {
  auto store = open();
  EXPECT_EQ(store->put_branch(branch(g("g"), 2, 3, "2"))->outcome, PutOutcome::kStored);
  EXPECT_EQ(store->put_branch(branch(g("g"), 2, 3, "2"))->outcome, PutOutcome::kDuplicate);
  EXPECT_EQ(store->put_branch(branch(g("g"), 0, 3, "0"))->outcome, PutOutcome::kStored);
  auto last = store->put_branch(branch(g("g"), 1, 3, "{\"one\":1}", true));
  EXPECT_EQ(last->outcome, PutOutcome::kCompleted);
  EXPECT_EQ(last->stored, 3u);
  EXPECT_EQ(store->counts()->decided, 1);

  auto claimed = store->claim("j", "me", 1min);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  EXPECT_EQ((*claimed)->group, g("g"));
  EXPECT_EQ((*claimed)->reason, DecidedBecause::kComplete);
  EXPECT_EQ((*claimed)->failed, std::vector<std::size_t>{1});
  EXPECT_TRUE((*claimed)->missing.empty());
  std::string seen;
  ASSERT_TRUE(store->read_branches(g("g"), [&](std::size_t i, bool, std::string_view p) {
    seen += std::to_string(i) + "=" + std::string(p) + ";";
    return Status::Ok();
  }));
  EXPECT_EQ(seen, "0=0;1={\"one\":1};2=2;");
  EXPECT_FALSE(store->claim("j", "other", 1min)->has_value());  // leased to "me"
  EXPECT_TRUE(*store->finish(g("g"), "me"));
  // A branch delivered again after the group was published starts no new group.
  EXPECT_EQ(store->put_branch(branch(g("g"), 0, 3, "0"))->outcome, PutOutcome::kAlreadyJoined);
  EXPECT_EQ(store->counts()->open, 0);
}

TEST_P(JoinStoreTest, AnotherReplicaClaimsAGroupWhoseLeaseExpired) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a->put_branch(branch(g("g"), 0, 1, "0")).ok());
  ASSERT_TRUE(a->claim("j", "a", 1ms)->has_value());  // a "dies" holding it
  std::this_thread::sleep_for(5ms);
  auto again = b->claim("j", "b", 1min);
  ASSERT_TRUE(again->has_value());
  EXPECT_FALSE(*a->finish(g("g"), "a"));  // the lease is b's now
  // b fails to publish and releases it: claimable again at once (retry_after 0).
  ASSERT_TRUE(b->release(g("g"), "b", 0ms, "the runtime was unavailable"));
  auto third = a->claim("j", "a", 1min);
  ASSERT_TRUE(third->has_value());
  EXPECT_EQ((*third)->group, g("g"));
  EXPECT_TRUE(*a->finish(g("g"), "a"));
}

TEST_P(JoinStoreTest, EveryClaimCountsAnAttemptAndSeesWhyThePreviousOneFailed) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a->put_branch(branch(g("g"), 0, 1, "0")).ok());
  auto first = a->claim("j", "a", 1min);
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->owner, "a");
  EXPECT_EQ((*first)->attempts, 1u);
  EXPECT_EQ((*first)->last_error, "");
  ASSERT_TRUE(a->release(g("g"), "a", 0ms, "runtime call failed (runtime_unavailable): gone"));
  auto second = b->claim("j", "b", 1ms);  // b "dies" holding it: no release, no error recorded
  ASSERT_TRUE(second->has_value());
  EXPECT_EQ((*second)->attempts, 2u);
  EXPECT_EQ((*second)->last_error, "runtime call failed (runtime_unavailable): gone");
  std::this_thread::sleep_for(5ms);
  auto third = a->claim("j", "a", 1min);
  ASSERT_TRUE(third->has_value());
  EXPECT_EQ((*third)->attempts, 3u);
  EXPECT_EQ((*third)->last_error, "runtime call failed (runtime_unavailable): gone");
}

TEST_P(JoinStoreTest, ARenewTellsAReplicaWhoseExpiredLeaseAnotherReplicaClaimed) {
  // The duplicate publish: a's lease runs out while it publishes (a slow gateway, a slow send),
  // b claims the group. a must learn that before it sends, and only b may finish the group.
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a->put_branch(branch(g("g"), 0, 1, "0")).ok());
  ASSERT_TRUE(a->claim("j", "a", 1ms)->has_value());
  std::this_thread::sleep_for(5ms);
  // Expired, but nobody claimed it since: still a's, and renewing makes it a's again.
  EXPECT_TRUE(*a->renew(g("g"), "a", 1ms));
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(b->claim("j", "b", 1min)->has_value());
  EXPECT_FALSE(*a->renew(g("g"), "a", 1min));  // lost: a sends nothing
  EXPECT_TRUE(*b->renew(g("g"), "b", 1min));
  EXPECT_FALSE(a->claim("j", "a", 1min)->has_value());  // the renewed lease holds
  EXPECT_FALSE(*a->finish(g("g"), "a"));
  EXPECT_TRUE(*b->finish(g("g"), "b"));
  EXPECT_FALSE(*b->renew(g("g"), "b", 1min));  // finished: nobody's any more
}

TEST_P(JoinStoreTest, ExpiryDecidesATimedOutGroupWithItsMissingIndexes) {
  auto store = open();
  BranchIn b = branch(g("t"), 1, 4, "1");
  b.timeout = 1ms;
  ASSERT_TRUE(store->put_branch(b).ok());
  EXPECT_EQ(*store->expire(std::chrono::system_clock::now() + 1s), 1u);
  auto claimed = store->claim("j", "me", 1min);
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->reason, DecidedBecause::kTimeout);
  EXPECT_EQ((*claimed)->missing, (std::vector<std::size_t>{0, 2, 3}));
  // A late branch of a decided group changes nothing.
  EXPECT_EQ(store->put_branch(branch(g("t"), 2, 4, "2"))->outcome, PutOutcome::kAlreadyJoined);
}

TEST_P(JoinStoreTest, AJoinActorClaimsOnlyItsOwnGroups) {
  // Nested joins (and `asya up`) put several join actors in one store.
  auto store = open();
  BranchIn inner = branch(g("inner"), 0, 1, "1");
  inner.actor = "inner-join";
  ASSERT_EQ(store->put_branch(inner)->outcome, PutOutcome::kCompleted);
  EXPECT_FALSE(store->claim("outer-join", "o", 1min)->has_value());
  auto mine = store->claim("inner-join", "i", 1min);
  ASSERT_TRUE(mine->has_value());
  EXPECT_EQ((*mine)->group, g("inner"));
  EXPECT_TRUE(*store->finish(g("inner"), "i"));
}

TEST_P(JoinStoreTest, ACountThatDisagreesWithTheGroupIsAnErrorNamingBoth) {
  auto store = open();
  ASSERT_TRUE(store->put_branch(branch(g("c"), 0, 3, "0")).ok());
  auto bad = store->put_branch(branch(g("c"), 1, 4, "1"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "group " + g("c") + ": branch 1 says count 4, the group has count 3");
}

TEST_P(JoinStoreTest, ReplicasStoringBranchesAtOnceDecideEachGroupExactlyOnce) {
  // Four replicas (threads, each with its own store object: its own connection) store every
  // branch of 20 groups of 8, each branch twice (a redelivery), in interleaved orders.
  constexpr int kReplicas = 4, kGroups = 20, kCount = 8;
  std::vector<std::unique_ptr<JoinStore>> replicas;
  for (int r = 0; r < kReplicas; ++r) replicas.push_back(open());
  std::atomic<int> completed{0}, duplicates{0}, errors{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      for (int round = 0; round < 2; ++round) {
        for (int k = 0; k < kGroups * kCount; ++k) {
          const int n = (k * 7 + r * 13 + round * 5) % (kGroups * kCount);
          const std::string payload = std::to_string(n);
          std::string group = g("p");
          group.append(std::to_string(n / kCount));
          auto put = replicas[r]->put_branch(branch(group, n % kCount, kCount, payload));
          if (!put) {
            ++errors;
            ADD_FAILURE() << put.error().message;
          } else if (put->outcome == PutOutcome::kCompleted) {
            ++completed;
          } else if (put->outcome != PutOutcome::kStored) {
            ++duplicates;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(completed.load(), kGroups);
  EXPECT_EQ(duplicates.load(), (2 * kReplicas - 1) * kGroups * kCount);
  EXPECT_EQ(replicas[0]->counts()->decided, kGroups);
  // Claimed concurrently, every group goes to exactly one replica.
  std::atomic<int> claimed{0};
  threads.clear();
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      const std::string owner = "r" + std::to_string(r);
      while (true) {
        auto c = replicas[r]->claim("j", owner, 1min);
        if (!c || !c->has_value()) break;
        std::string seen;
        EXPECT_TRUE(
            replicas[r]->read_branches((*c)->group, [&](std::size_t i, bool, std::string_view p) {
              seen += std::to_string(i) + ":" + std::string(p) + ",";
              return Status::Ok();
            }));
        const int first = std::stoi((*c)->group.substr(g("p").size())) * kCount;
        std::string expected;
        for (int i = 0; i < kCount; ++i) {
          // Appended piece by piece: GCC 12's -Wrestrict misfires on the operator+ chain here.
          expected += std::to_string(i);
          expected += ':';
          expected += std::to_string(first + i);
          expected += ',';
        }
        EXPECT_EQ(seen, expected);
        EXPECT_TRUE(*replicas[r]->finish((*c)->group, owner));
        ++claimed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.load(), kGroups);
  EXPECT_EQ(replicas[1]->counts()->decided, 0);
}

TEST_P(JoinStoreTest, ACallbackErrorStopsReadingAndTheStoreStaysUsable) {
  auto store = open();
  for (std::size_t i = 0; i < 50; ++i)
    ASSERT_TRUE(store->put_branch(branch(g("s"), i, 50, "1")).ok());
  std::size_t calls = 0;
  Status st = store->read_branches(g("s"), [&](std::size_t i, bool, std::string_view) {
    ++calls;
    return i == 9 ? Status(Error{"enough"}) : Status::Ok();
  });
  EXPECT_EQ(st.message(), "enough");
  EXPECT_EQ(calls, 10u);
  auto claimed = store->claim("j", "me", 1min);
  ASSERT_TRUE(claimed.ok()) << claimed.error().message;
  ASSERT_TRUE(claimed->has_value());
  EXPECT_EQ((*claimed)->group, g("s"));
}

// (group, index, sha256) of every held branch `store` lists for actor "j" (and `group`), read
// `page` at a time.
std::vector<std::string> held(JoinStore& store, std::string_view group = {},
                              std::size_t page = 100) {
  std::vector<std::string> out;
  std::optional<HeldBranch> after;
  for (;;) {
    auto rows = store.held_branches("j", group, after ? &*after : nullptr, page);
    EXPECT_TRUE(rows.ok()) << rows.error().message;
    if (!rows) return out;
    for (const auto& b : *rows)
      out.push_back(b.group + "/" + std::to_string(b.index) + "/" + b.sha256);
    if (rows->size() < page) return out;
    after = rows->back();
  }
}

TEST_P(JoinStoreTest, HeldBranchesAreListedWhileTheirGroupIsNotFinished) {
  auto store = open();
  ASSERT_TRUE(store->put_branch(branch(g("h"), 2, 3, "{}", false, "bb")).ok());
  ASSERT_TRUE(store->put_branch(branch(g("h"), 0, 3, "{}", false, "aa")).ok());
  ASSERT_TRUE(store->put_branch(branch(g("h"), 0, 3, "{}", false, "zz")).ok());  // duplicate
  ASSERT_TRUE(store->put_branch(branch(g("i"), 0, 2, "{}", false, "cc")).ok());
  BranchIn other = branch(g("o"), 0, 2, "{}", false, "dd");
  other.actor = "other";
  ASSERT_TRUE(store->put_branch(other).ok());
  const std::vector<std::string> both = {g("h") + "/0/aa", g("h") + "/2/bb", g("i") + "/0/cc"};
  EXPECT_EQ(held(*store), both);
  EXPECT_EQ(held(*store, g("h")), std::vector<std::string>(both.begin(), both.begin() + 2));
  // Decided (complete) but not published: still held; finished: gone.
  EXPECT_EQ(store->put_branch(branch(g("h"), 1, 3, "1"))->outcome, PutOutcome::kCompleted);
  EXPECT_EQ(held(*store), both);
  auto claimed = store->claim("j", "me", 1min);
  ASSERT_TRUE(claimed.ok() && claimed->has_value());
  ASSERT_TRUE(*store->finish(g("h"), "me"));
  EXPECT_EQ(held(*store), std::vector<std::string>{g("i") + "/0/cc"});
  EXPECT_EQ(held(*store, g("h")), std::vector<std::string>{});
}

TEST_P(JoinStoreTest, HeldBranchesArePagedInGroupAndIndexOrder) {
  auto store = open();
  std::vector<std::string> expected;
  for (const char* name : {"p1", "p2"})
    for (std::size_t i = 0; i < 5; ++i) {
      ASSERT_TRUE(
          store->put_branch(branch(g(name), i, 9, "{}", false, "s" + std::to_string(i))).ok());
      expected.push_back(g(name) + "/" + std::to_string(i) + "/s" + std::to_string(i));
    }
  EXPECT_EQ(held(*store, {}, 3), expected);
  EXPECT_EQ(held(*store, {}, 10), expected);
  EXPECT_EQ(held(*store, g("p2"), 2),
            std::vector<std::string>(expected.begin() + 5, expected.end()));
}

TEST_P(JoinStoreTest, ABranchOfADecidedGroupSaysWhetherTheGroupReadsItsIndex) {
  auto store = open();
  BranchIn first = branch(g("late"), 0, 3, "0");
  first.timeout = 1ms;
  ASSERT_TRUE(store->put_branch(first).ok());
  ASSERT_EQ(*store->expire(std::chrono::system_clock::now() + 1s), 1u);
  auto late = store->put_branch(branch(g("late"), 2, 3, "2"));
  EXPECT_EQ(late->outcome, PutOutcome::kAlreadyJoined);
  EXPECT_TRUE(late->unused);  // decided without it
  auto again = store->put_branch(branch(g("late"), 0, 3, "0"));
  EXPECT_EQ(again->outcome, PutOutcome::kAlreadyJoined);
  EXPECT_FALSE(again->unused);  // the group reads its stored copy
  ASSERT_TRUE(store->claim("j", "me", 1min)->has_value());
  ASSERT_TRUE(*store->finish(g("late"), "me"));
  EXPECT_TRUE(store->put_branch(branch(g("late"), 0, 3, "0"))->unused);  // published
}

TEST(JoinStoreRegistry, AnUnknownSchemeListsTheKnownOnes) {
  JoinStoreOptions o;
  o.url = "redis://x";
  try {
    make_join_store(o);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("registered schemes: postgres, postgresql, sqlite"),
              std::string::npos)
        << e.what();
  }
}

TEST(JoinStoreRegistry, AnUnreachablePostgresIsAConfigErrorWithTheRedactedUrl) {
  JoinStoreOptions o;
  o.url = "postgresql://asya:s3cret@127.0.0.1:1/none?connect_timeout=2";
  try {
    make_join_store(o);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ASYA_JOIN_STORE: cannot connect to the join store: PostgreSQL "
                        "postgresql://asya:***@127.0.0.1:1/none"),
              std::string::npos)
        << what;
    EXPECT_EQ(what.find("s3cret"), std::string::npos) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, JoinStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::sidecar::join
