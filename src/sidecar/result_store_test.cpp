// The result store registry: stores are found by URL scheme and read their variables from the
// options' environment, never from setenv. (The file store's behaviour is in end_actor_test.cpp.)
#include "sidecar/result_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>

#include "common/aws/s3.hpp"
#include "common/env.hpp"

namespace asya::sidecar {
namespace {

TEST(ResultStoreRegistry, BuiltInStoresAreRegisteredByScheme) {
  auto schemes = result_store_schemes();
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "file"), schemes.end());
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "s3"), schemes.end());
  EXPECT_TRUE(std::is_sorted(schemes.begin(), schemes.end()));
}

TEST(ResultStoreRegistry, UnknownSchemeNamesTheUrlAndTheRegisteredSchemes) {
  try {
    (void)make_result_store("ftp://x");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("ASYA_RESULT_STORE=\"ftp://x\" is not supported"), std::string::npos)
        << message;
    EXPECT_NE(message.find("file, s3"), std::string::npos) << message;
  }
}

// Against a real S3 API (moto), whose endpoint tests/transport/test_sqs.py puts in
// ASYA_TEST_AWS_ENDPOINT; skipped when that variable is unset.
TEST(S3ResultStore, GetReadsWhatPutStoredAndNothingWhenAbsent) {
  const char* endpoint = std::getenv("ASYA_TEST_AWS_ENDPOINT");
  if (endpoint == nullptr || *endpoint == '\0')
    GTEST_SKIP() << "ASYA_TEST_AWS_ENDPOINT is unset (tests/transport/test_sqs.py sets it)";
  std::string bucket = "asya-results-" + std::to_string(std::random_device()());
  aws::Config config;
  config.endpoint = endpoint;
  config.region = "us-east-1";
  config.credentials = {"testing", "testing", ""};
  ASSERT_TRUE(aws::S3Client(config).create_bucket(bucket));
  ResultStoreOptions options;
  options.url = "s3://" + bucket + "/run";
  options.environment = environment_with({{"ASYA_S3_ENDPOINT", endpoint},
                                          {"AWS_REGION", "us-east-1"},
                                          {"AWS_ACCESS_KEY_ID", "testing"},
                                          {"AWS_SECRET_ACCESS_KEY", "testing"}},
                                         nullptr);
  auto store = make_result_store(options);
  auto absent = store->get("job 1/a");
  ASSERT_TRUE(absent.ok()) << absent.error().message;
  EXPECT_FALSE(absent->has_value());
  ASSERT_TRUE(store->put("job 1/a", R"({"a":1})").ok());
  auto present = store->get("job 1/a");
  ASSERT_TRUE(present.ok()) << present.error().message;
  ASSERT_TRUE(present->has_value());
  EXPECT_EQ(**present, R"({"a":1})");
}

TEST(ResultStoreRegistry, S3StoreReadsItsVariablesFromTheInjectedEnvironment) {
  ResultStoreOptions options;
  options.url = "s3://results/run-1";
  options.environment = environment_with({{"ASYA_S3_ENDPOINT", "http://127.0.0.1:1"},
                                          {"AWS_ACCESS_KEY_ID", "a"},
                                          {"AWS_SECRET_ACCESS_KEY", "b"}},
                                         nullptr);
  auto store = make_result_store(options);  // contacts nothing until the first put
  EXPECT_EQ(store->describe(), "s3://results/run-1");

  options.environment = environment_with({}, nullptr);  // no endpoint, region or credentials
  try {
    (void)make_result_store(options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("AWS_REGION is not set"), std::string::npos) << e.what();
  }
}

class NamedStore : public ResultStore {
 public:
  explicit NamedStore(std::string url) : url_(std::move(url)) {}
  Status put(std::string_view, std::string_view) override { return Status::Ok(); }
  Result<std::optional<std::string>> get(std::string_view) override {
    return std::optional<std::string>();
  }
  std::string describe() const override { return "registered for " + url_; }

 private:
  std::string url_;
};

TEST(ResultStoreRegistry, ARegisteredSchemeGetsTheOptions) {
  register_result_store("memory", [](const ResultStoreOptions& options) {
    return std::make_unique<NamedStore>(options.url);
  });
  EXPECT_EQ(make_result_store("memory://x")->describe(), "registered for memory://x");
  auto schemes = result_store_schemes();
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "memory"), schemes.end());
}

}  // namespace
}  // namespace asya::sidecar
