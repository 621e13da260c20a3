#include "sidecar/end_actor.hpp"

#include "common/env.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace asya::sidecar {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/asya-end-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FailingStore : public ResultStore {
 public:
  Status put(std::string_view, std::string_view) override { return Error{"disk gone"}; }
  Result<std::optional<std::string>> get(std::string_view) override {
    return std::optional<std::string>();
  }
  std::string describe() const override { return "failing"; }
};

auto constant_backoff = [](int) { return 1500ms; };

TEST(ResultStore, WritesIdJsonAtomicallyAndReplaces) {
  TempDir dir;
  auto store = make_result_store("file://" + dir.path().string());
  ASSERT_TRUE(store->put("abc", R"({"a":1})").ok());
  ASSERT_TRUE(store->put("abc", R"({"a":2})").ok());
  EXPECT_EQ(read(dir.path() / "abc.json"), R"({"a":2})");
  std::size_t files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1u);  // no temporary files left
}

TEST(ResultStore, GetReadsWhatPutStoredAndNothingWhenAbsent) {
  TempDir dir;
  auto store = make_result_store("file://" + dir.path().string());
  auto absent = store->get("../abc");
  ASSERT_TRUE(absent.ok()) << absent.error().message;
  EXPECT_FALSE(absent->has_value());
  ASSERT_TRUE(store->put("../abc", R"({"a":1})").ok());
  auto present = store->get("../abc");
  ASSERT_TRUE(present.ok()) << present.error().message;
  ASSERT_TRUE(present->has_value());
  EXPECT_EQ(**present, R"({"a":1})");
}

TEST(ResultStore, FileNamesCannotEscapeTheDirectory) {
  EXPECT_EQ(result_file_name("abc-1_x.y"), "abc-1_x.y.json");
  EXPECT_EQ(result_file_name("../etc/passwd"), "%2E.%2Fetc%2Fpasswd.json");
  EXPECT_EQ(result_file_name(".hidden"), "%2Ehidden.json");
}

TEST(ResultStore, CreatesTheDirectoryAndRejectsOtherSchemes) {
  TempDir dir;
  auto nested = dir.path() / "a" / "b";
  make_result_store("file://" + nested.string());
  EXPECT_TRUE(std::filesystem::is_directory(nested));
  try {
    make_result_store("ftp://x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_RESULT_STORE=\"ftp://x\""), std::string::npos);
  }
}

TEST(EndActor, HappyEndStoresTheEnvelopeAndReportsSucceededWithTheResult) {
  TempDir dir;
  auto store = make_result_store("file://" + dir.path().string());
  EndActor end("happy-end", false, *store, constant_backoff);
  std::string body =
      R"({"id":"J1","route":{"actors":["a","b"],"current":2,"metadata":{"job_id":"J1"}},"payload":{"x":1.50}})";
  EndOutcome out = end.handle(transport::Delivery{"asya-happy-end", body, 1, "r"});
  EXPECT_EQ(out.then, Then::kAck);
  EXPECT_EQ(out.id, "J1");
  EXPECT_EQ(read(dir.path() / "J1.json"), body);
  EXPECT_EQ(out.final_path, "/envelopes/J1/final");
  EXPECT_EQ(
      out.final_body,
      R"({"id":"J1","status":"succeeded","result":{"x":1.50},"actors":["a","b"],"current_actor_idx":1})");
}

TEST(EndActor, ErrorEndReportsFailedWithErrorAndDetails) {
  TempDir dir;
  auto store = make_result_store("file://" + dir.path().string());
  EndActor end("error-end", true, *store, constant_backoff);
  std::string body =
      R"({"id":"J2","route":{"actors":["a","b"],"current":1,"metadata":{"job_id":"J2"}},"payload":{"error":"processing_error",)"
      R"("details":{"message":"boom","type":"ValueError","traceback":"tb"},"actor":"b","original_payload":{"k":1}}})";
  EndOutcome out = end.handle(transport::Delivery{"asya-error-end", body, 1, "r"});
  EXPECT_EQ(out.then, Then::kAck);
  EXPECT_EQ(read(dir.path() / "J2.json"), body);
  EXPECT_EQ(
      out.final_body,
      R"({"id":"J2","status":"failed","error":"processing_error","error_details":{"message":"boom","type":"ValueError","traceback":"tb"},"actors":["a","b"],"current_actor_idx":1})");
}

TEST(EndActor, UnparseableBodyIsWrappedAndStored) {
  TempDir dir;
  auto store = make_result_store("file://" + dir.path().string());
  EndActor end("error-end", true, *store, constant_backoff);
  EndOutcome out = end.handle(transport::Delivery{"asya-error-end", "garbage", 1, "r"});
  EXPECT_EQ(out.then, Then::kAck);
  EXPECT_TRUE(out.id.starts_with("unparseable-"));
  auto stored = json::parse(read(dir.path() / (out.id + ".json"))).as_object();
  EXPECT_EQ(stored["payload"].at("raw"), "garbage");
  EXPECT_TRUE(out.final_body.empty()) << "no gateway job has the id of a body that was no envelope";
}

TEST(EndActor, EnvelopeOfNoGatewayJobIsStoredAndNotReported) {
  TempDir dir;
  auto store = make_result_store("file://" + dir.path().string());
  EndActor end("happy-end", false, *store, constant_backoff);
  std::string body =
      R"({"id":"S","route":{"actors":["a"],"current":1,"metadata":{"tool":"t"}},"payload":1})";
  EndOutcome out = end.handle(transport::Delivery{"asya-happy-end", body, 1, "r"});
  EXPECT_EQ(out.then, Then::kAck);
  EXPECT_EQ(read(dir.path() / "S.json"), body);
  EXPECT_TRUE(out.final_body.empty());
}

TEST(EndActor, StoreFailureNacksWithBackoffAndReportsNothing) {
  FailingStore store;
  EndActor end("happy-end", false, store, constant_backoff);
  EndOutcome out = end.handle(transport::Delivery{
      "asya-happy-end", R"({"id":"J","route":{"actors":["a"]},"payload":1})", 2, "r"});
  EXPECT_EQ(out.then, Then::kNack);
  EXPECT_EQ(out.nack_delay, 1500ms);
  EXPECT_TRUE(out.final_body.empty());
  EXPECT_EQ(out.failure.code(), FailureCode::kResultStoreError);
}

}  // namespace
}  // namespace asya::sidecar
