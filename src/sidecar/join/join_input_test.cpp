// The join input streamed from the store (join_input.hpp) on SQLite (always) and PostgreSQL (when
// ASYA_TEST_DATABASE_URL is set: tests/sidecar/test_join_postgres.py runs every
// *JoinStoreTest*postgresql* case, so this fixture's name starts like the store contract's).
#include "sidecar/join/join_input.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>

#include "common/postgres/connection.hpp"
#include "common/random_id.hpp"

namespace asya::sidecar::join {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kHead = R"({"id":"src","route":{"actors":["split","j"],"current":1})";

class JoinStoreTestInput : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      const char* url = std::getenv("ASYA_TEST_DATABASE_URL");
      if (!url || !*url) GTEST_SKIP() << "ASYA_TEST_DATABASE_URL not set";
      url_ = url;
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("join-input-" + random_hex(12));
      std::filesystem::create_directories(dir_);
      url_ = "sqlite://" + (dir_ / "joins.db").string();
    }
    JoinStoreOptions o;
    o.url = url_;
    store_ = make_join_store(o);
    group_ = random_hex(8) + "@1";
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void put(std::size_t index, std::size_t count, std::string_view payload, bool failed = false) {
    BranchIn b;
    b.actor = "j";
    b.group = group_;
    b.index = index;
    b.count = count;
    b.payload = payload;
    b.failed = failed;
    b.head = kHead;
    b.timeout = 1h;
    auto put = store_->put_branch(b);
    ASSERT_TRUE(put.ok()) << put.error().message;
  }
  ClaimedGroup decided(std::size_t count, DecidedBecause reason, std::vector<std::size_t> failed,
                       std::vector<std::size_t> missing) const {
    ClaimedGroup g;
    g.group = group_;
    g.reason = reason;
    g.count = count;
    g.head = std::string(kHead);
    g.failed = std::move(failed);
    g.missing = std::move(missing);
    return g;
  }
  std::string url_;
  std::filesystem::path dir_;
  std::unique_ptr<JoinStore> store_;
  std::string group_;
};

TEST_P(JoinStoreTestInput, TheStreamedInputIsTheBranchesInIndexOrderWithNullForMissingOnes) {
  put(3, 5, R"({"a":3})");
  put(0, 5, R"({"a":0})");
  put(2, 5, R"({"error":"processing_error"})", /*failed=*/true);
  ClaimedGroup group = decided(5, DecidedBecause::kTimeout, {2}, {1, 4});
  const std::string expected =
      std::string(kHead) + R"(,"join":{"group":")" + group_ +
      R"(","count":5,"reason":"timeout","failed":[2],"missing":[1,4]},"payload":[{"a":0},null,)"
      R"({"error":"processing_error"},{"a":3},null]})";
  auto whole = build_join_input(*store_, group);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_EQ(*whole, expected);
  auto request = join_input_request(*store_, group);
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->size, expected.size());
  std::string streamed;
  ASSERT_TRUE(request
                  ->write_body([&](std::string_view part) {
                    streamed.append(part);
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(streamed, expected);
  EXPECT_TRUE(boost::json::parse(streamed).is_object());
}

TEST_P(JoinStoreTestInput, NoPartHandedToTheSocketIsLargerThanOneBranch) {
  // 2,000 branches of 1 kB: the sink never gets more than one branch at once, so the sidecar
  // holds one branch, not the 2 MB group.
  const std::size_t count = 2000;
  const std::string payload = "\"" + std::string(1000, 'x') + "\"";
  for (std::size_t i = 0; i < count; ++i) put(i, count, payload);
  ClaimedGroup group = decided(count, DecidedBecause::kComplete, {}, {});
  auto request = join_input_request(*store_, group);
  ASSERT_TRUE(request.ok()) << request.error().message;
  std::size_t largest = 0;
  std::uint64_t total = 0;
  std::size_t parts = 0;
  ASSERT_TRUE(request
                  ->write_body([&](std::string_view part) {
                    largest = std::max(largest, part.size());
                    total += part.size();
                    ++parts;
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(total, request->size);
  EXPECT_GT(total, count * payload.size());
  EXPECT_LE(largest, std::max(payload.size(), kHead.size() + 200));
  EXPECT_GE(parts, count);
}

TEST_P(JoinStoreTestInput, ASinkErrorStopsTheStreamAndIsReturned) {
  for (std::size_t i = 0; i < 10; ++i) put(i, 10, "1");
  ClaimedGroup group = decided(10, DecidedBecause::kComplete, {}, {});
  std::size_t calls = 0;
  Status st = write_join_input(*store_, group, [&](std::string_view) -> Status {
    return ++calls == 4 ? Status(Error{"socket closed"}) : Status::Ok();
  });
  EXPECT_EQ(st.message(), "socket closed");
  EXPECT_EQ(calls, 4u);
  // The store is usable after a stream stopped halfway.
  auto whole = build_join_input(*store_, group);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_NE(whole->find(R"("payload":[1,1,1,1,1,1,1,1,1,1]})"), std::string::npos) << *whole;
}

INSTANTIATE_TEST_SUITE_P(Stores, JoinStoreTestInput, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::sidecar::join
