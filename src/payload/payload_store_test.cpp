#include "payload/payload_store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "common/aws/s3.hpp"
#include "common/random_id.hpp"

namespace asya::payload {
namespace {

namespace fs = std::filesystem;

// The file store always; the S3 store against moto when ASYA_TEST_AWS_ENDPOINT is set (the
// system tests in tests/payload start it).
class PayloadStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "file") {
      dir_ = fs::temp_directory_path() /
             ("asya-payload-test-" + std::to_string(::getpid()) + "-" + random_hex(8));
      PayloadStoreOptions options;
      options.url = "file://" + dir_.string();
      store_ = make_payload_store(options);
      return;
    }
    const char* endpoint = std::getenv("ASYA_TEST_AWS_ENDPOINT");
    if (!endpoint) GTEST_SKIP() << "ASYA_TEST_AWS_ENDPOINT not set (moto)";
    std::string bucket = "asya-payload-test-" + random_hex(8);
    PayloadStoreOptions options;
    options.url = "s3://" + bucket + "/some/prefix";
    std::string endpoint_text = endpoint;
    options.environment = [endpoint_text](std::string_view name) -> std::optional<std::string> {
      std::string_view n = name;
      if (n == "ASYA_S3_ENDPOINT") return endpoint_text;
      if (n == "AWS_ACCESS_KEY_ID" || n == "AWS_SECRET_ACCESS_KEY") return std::string("test");
      if (n == "AWS_REGION") return std::string("us-east-1");
      return std::nullopt;
    };
    aws::S3Client client(
        aws::Config::from_env("ASYA_S3_ENDPOINT", "S3", Environment(options.environment)));
    ASSERT_TRUE(client.create_bucket(bucket).ok());
    store_ = make_payload_store(options);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<PayloadStore> store_;
};

TEST_P(PayloadStoreTest, PutThenReadAppendsTheSameBytes) {
  std::string bytes(3 << 20, 'x');
  bytes[12345] = 'y';
  ASSERT_TRUE(store_->put("objects/abc", bytes).ok());
  std::string out = "prefix:";
  ASSERT_TRUE(store_->read("objects/abc", out).ok());
  EXPECT_EQ(out, "prefix:" + bytes);
  auto found = store_->exists("objects/abc");
  ASSERT_TRUE(found.ok());
  EXPECT_TRUE(*found);
}

TEST_P(PayloadStoreTest, MissingObjectIsNotFoundAndRemoveIsIdempotent) {
  std::string out;
  Status st = store_->read("objects/missing", out);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.message().starts_with(kNotFound)) << st.message();
  EXPECT_TRUE(out.empty());
  auto found = store_->exists("objects/missing");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
  EXPECT_TRUE(store_->remove("objects/missing").ok());
}

TEST_P(PayloadStoreTest, ListGivesKeysUnderAPrefixWithSizes) {
  ASSERT_TRUE(store_->put("holds/s1/a", "1").ok());
  ASSERT_TRUE(store_->put("holds/s1/b", "22").ok());
  ASSERT_TRUE(store_->put("holds/s2/c", "333").ok());
  ASSERT_TRUE(store_->put("objects/s1", "x").ok());
  auto listed = store_->list("holds/s1/");
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  std::vector<std::string> keys;
  for (const auto& o : *listed) keys.push_back(o.key + "=" + std::to_string(o.size_bytes));
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"holds/s1/a=1", "holds/s1/b=2"}));
  auto all = store_->list("holds/");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  ASSERT_TRUE(store_->remove("holds/s1/a").ok());
  ASSERT_TRUE(store_->list("holds/").ok());
  EXPECT_EQ(store_->list("holds/")->size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Stores, PayloadStoreTest, ::testing::Values("file", "s3"));

TEST(PayloadStoreRegistry, UnknownSchemeNamesTheVariableAndTheAcceptedOnes) {
  PayloadStoreOptions options;
  options.url = "ftp://x";
  try {
    (void)make_payload_store(options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ASYA_PAYLOAD_STORE=\"ftp://x\""), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("file, s3"), std::string::npos);
  }
}

TEST(PayloadStoreRegistry, FileStoreUrlIsAbsolute) {
  fs::path dir = fs::temp_directory_path() / ("asya-payload-url-" + random_hex(8));
  PayloadStoreOptions options;
  options.url = "file://" + dir.string() + "/";
  auto store = make_payload_store(options);
  EXPECT_EQ(store->url(), "file://" + dir.string());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace asya::payload
