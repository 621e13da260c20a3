// The join input streamed from the store (join_input.hpp) on SQLite (always) and PostgreSQL (when
// ASYA_TEST_DATABASE_URL is set: tests/sidecar/test_join_postgres.py runs every
// *JoinStoreTest*postgresql* case, so this fixture's name starts like the store contract's).
#include "sidecar/join/join_input.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/postgres/connection.hpp"
#include "common/random_id.hpp"
#include "payload/offload.hpp"
#include "payload/payload_store.hpp"

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

// A payload store in its own directory (for both join stores).
struct FilePayloads {
  FilePayloads()
      : dir(std::filesystem::temp_directory_path() / ("join-payloads-" + random_hex(12))) {
    payload::PayloadStoreOptions o;
    o.url = "file://" + dir.string();
    store = payload::make_payload_store(o);
  }
  ~FilePayloads() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  std::unique_ptr<payload::PayloadStore> store;
};

std::string streamed(const wire::StreamedRequest& request) {
  std::string out;
  Status st = request.write_body([&](std::string_view part) {
    out.append(part);
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

TEST_P(JoinStoreTestInput, ABranchThatIsAReferenceIsStreamedAsItsObjectsBytes) {
  FilePayloads payloads;
  const std::string big = R"({"data":")" + std::string(100000, 'b') + R"("})";
  auto reference = payload::store_payload(*payloads.store, big, "src-1");
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  put(0, 3, R"({"a":0})");
  put(1, 3, reference->json());
  put(2, 3, R"({"a":2})");
  ClaimedGroup group = decided(3, DecidedBecause::kComplete, {}, {});
  const std::string expected = std::string(kHead) + R"(,"join":{"group":")" + group_ +
                               R"(","count":3,"reason":"complete","failed":[],"missing":[]},)" +
                               R"("payload":[{"a":0},)" + big + R"(,{"a":2}]})";
  BranchReferences references(*payloads.store, "j");
  auto request = join_input_request(*store_, group, &references);
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->size, expected.size());
  EXPECT_EQ(streamed(*request), expected);
  EXPECT_EQ(references.references(), std::vector<std::size_t>{1});
  // Without the payload store the reference is passed on as stored.
  auto plain = build_join_input(*store_, group);
  ASSERT_TRUE(plain.ok());
  EXPECT_NE(plain->find("asya-payload-ref"), std::string::npos);
}

TEST_P(JoinStoreTestInput, AMissingObjectMakesItsSlotPayloadUnavailableAndItsIndexFailed) {
  FilePayloads payloads;
  const std::string lost = R"({"data":"never stored"})";
  const std::string sha = payload::sha256_hex(lost);
  const std::string ref = R"({"asya-payload-ref":{"url":")" + payloads.store->url() + "/objects/" +
                          sha + R"(","size":)" + std::to_string(lost.size()) + R"(,"sha256":")" +
                          sha + R"("}})";
  put(0, 3, R"({"a":0})");
  put(1, 3, R"({"error":"processing_error"})", /*failed=*/true);
  put(2, 3, ref);
  ClaimedGroup group = decided(3, DecidedBecause::kComplete, {1}, {});
  BranchReferences references(*payloads.store, "j");
  auto request = join_input_request(*store_, group, &references);
  ASSERT_TRUE(request.ok()) << request.error().message;
  const std::string text = streamed(*request);
  EXPECT_EQ(request->size, text.size());
  auto input = boost::json::parse(text).as_object();
  EXPECT_EQ(input.at("join").at("failed"), boost::json::parse("[1,2]"));
  const auto& slot = input.at("payload").as_array().at(2).as_object();
  EXPECT_EQ(slot.at("error"), "payload_unavailable");
  EXPECT_EQ(slot.at("actor"), "j");
  EXPECT_EQ(slot.at("original_payload"), boost::json::parse(ref));
  EXPECT_EQ(slot.at("details").at("reference"), boost::json::parse(ref));
  const std::string message(slot.at("details").at("message").as_string());
  EXPECT_NE(message.find(sha), std::string::npos) << message;
  EXPECT_NE(message.find("branch 2"), std::string::npos) << message;
  // The `[]` answer's whole input is the same text.
  auto whole = build_join_input(*store_, group, &references);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(*whole, text);
}

TEST_P(JoinStoreTestInput, AnObjectThatChangesBetweenThePassesFailsTheStream) {
  FilePayloads payloads;
  const std::string big = R"({"data":")" + std::string(5000, 'c') + R"("})";
  auto reference = payload::store_payload(*payloads.store, big, "src");
  ASSERT_TRUE(reference.ok()) << reference.error().message;
  put(0, 1, reference->json());
  ClaimedGroup group = decided(1, DecidedBecause::kComplete, {}, {});
  BranchReferences references(*payloads.store, "j");
  auto request = join_input_request(*store_, group, &references);
  ASSERT_TRUE(request.ok()) << request.error().message;
  std::string damaged = big;
  damaged[10] = 'd';
  // Changed in place through the file system (a put() would vouch for the digest in its key and
  // mark the file verified: payload/file/verified_mark.hpp).
  auto path = payloads.store->local_path(payload::object_key(reference->sha256));
  ASSERT_TRUE(path);
  std::ofstream(*path, std::ios::trunc | std::ios::binary) << damaged;
  Status st = request->write_body([](std::string_view) { return Status::Ok(); });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("changed"), std::string::npos) << st.message();
}

INSTANTIATE_TEST_SUITE_P(Stores, JoinStoreTestInput, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace asya::sidecar::join
